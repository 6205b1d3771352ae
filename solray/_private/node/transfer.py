"""Bulk object transfer between node daemons: ``sendfile`` out, ``recv_into`` a mapping in.

Object bytes never pass through the RPC layer or a Python buffer. The source daemon's
transfer server sends a range of the object's shared-memory file straight from the page
cache to the socket (``sendfile``); the pulling daemon receives it straight into a mapping of
its own copy. Both calls release the GIL, so each transfer runs on a thread and the daemons'
event loops stay free; memory is bounded on both sides (the kernel's socket buffers only).

Wire (after the TCP connect): the client sends ``!H`` token length + token, then requests
``!H`` oid length + oid + ``!QQ`` offset, length; the server answers each with ``!BQ``
status (0 ok, 1 no such object) + length, then the bytes. A wrong token closes the
connection before any request is read.
"""

from __future__ import annotations

import hmac
import logging
import mmap
import os
import socket
import struct
import threading

logger = logging.getLogger(__name__)

_LEN = struct.Struct("!H")
_RANGE = struct.Struct("!QQ")
_REPLY = struct.Struct("!BQ")
OK, MISSING = 0, 1
TIMEOUT_S = 30.0
SOCKET_BUFFER = 4 << 20


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("the peer closed the transfer connection")
        buf += chunk
    return bytes(buf)


class TransferServer:
    """Serves ranges of the object files in ``shm_dir`` to authenticated daemons."""

    def __init__(self, host: str, token: str, shm_dir: str):
        self.token = token.encode()
        self.shm_dir = shm_dir
        self.sock = socket.create_server((host, 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="transfer-accept", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), name="transfer-send", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(TIMEOUT_S)
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
                (n,) = _LEN.unpack(_recv_exact(conn, _LEN.size))
                if not hmac.compare_digest(_recv_exact(conn, n), self.token):
                    logger.warning("transfer connection refused: wrong cluster token")
                    return
                while True:
                    try:
                        (n,) = _LEN.unpack(_recv_exact(conn, _LEN.size))
                    except EOFError:
                        return  # the client is done
                    oid = _recv_exact(conn, n)
                    offset, length = _RANGE.unpack(_recv_exact(conn, _RANGE.size))
                    self._send_range(conn, oid, offset, length)
            except (OSError, EOFError) as e:
                logger.debug("transfer connection ended: %s", e)

    def _send_range(self, conn: socket.socket, oid: bytes, offset: int, length: int) -> None:
        path = os.path.join(self.shm_dir, oid.hex())  # hex: no path tricks possible
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below, after sendfile
        except FileNotFoundError:
            conn.sendall(_REPLY.pack(MISSING, 0))
            return
        with f:
            if os.fstat(f.fileno()).st_size < offset + length:
                conn.sendall(_REPLY.pack(MISSING, 0))
                return
            conn.sendall(_REPLY.pack(OK, length))
            # Unlinked meanwhile (freed, spilled)? The open file still holds the bytes.
            sent = conn.sendfile(f, offset, length)
            if sent != length:
                raise EOFError(f"sent {sent} of {length} bytes of {oid.hex()}")


def fetch(host: str, port: int, token: str, oid: bytes, size: int, dest: str) -> None:
    """Receive bytes ``[0, size)`` of object ``oid`` from a transfer server into a new file
    ``dest`` (created here, pages allocated up front). Runs on a thread: it blocks."""
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        tok = token.encode()
        sock.sendall(_LEN.pack(len(tok)) + tok + _LEN.pack(len(oid)) + oid + _RANGE.pack(0, size))
        status, length = _REPLY.unpack(_recv_exact(sock, _REPLY.size))
        if status != OK or length != size:
            raise FileNotFoundError(f"object {oid.hex()} is no longer on {host}:{port}")
        fd = os.open(dest, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
        try:
            if size == 0:
                return
            os.posix_fallocate(fd, 0, size)
            with mmap.mmap(fd, size) as mm:
                view = memoryview(mm)
                try:
                    pos = 0
                    while pos < size:
                        n = sock.recv_into(view[pos:], min(size - pos, 16 << 20))
                        if n == 0:
                            raise ConnectionError(f"the source of {oid.hex()} closed mid-transfer")
                        pos += n
                finally:
                    view.release()
        finally:
            os.close(fd)
