"""Hostile bytes on the cluster's sockets: the connection closes, nothing is unpickled, and
the cluster keeps working (DESIGN §4).

The peers probed are the node daemon, the control service, a worker's core-worker server
and the driver's own. A frame is ``!II`` (body length, tail length) + msgpack body + tail;
an unauthenticated peer gets nothing but a closed connection.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct

import pytest

import solray as ray
from solray._private.protocol import frames
from solray._private.protocol.frames import AUTH, NOTIFY, REPLY, REQUEST
from solray._private.worker import state


@ray.remote
def add(a, b):
    return a + b


@ray.remote
def worker_address():
    return state.get_core_worker().address


def _addresses() -> dict[str, str]:
    w = state.get_core_worker()
    return {
        "daemon": w.daemon_address,
        "control": w.control_address,
        "driver": w.address,
        "worker": ray.get(worker_address.remote()),
    }


PEERS = ["daemon", "control", "driver", "worker"]


def _connect(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.settimeout(10)
    return s


def _closed_by_peer(s: socket.socket) -> bool:
    """True once the peer closed: recv returns EOF (or the connection resets)."""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _frame(body, tail: bytes | None = None) -> bytes:
    return b"".join(bytes(c) for c in frames.encode_frame(body, tail))


class Exploit:
    """Unpickling this creates a file: proof that someone unpickled attacker bytes."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _cluster_works() -> None:
    assert ray.get(add.remote(1, 2), timeout=30) == 3


@pytest.mark.parametrize("peer", PEERS)
def test_garbage_bytes_close_the_connection(ray_shared, peer):
    s = _connect(_addresses()[peer])
    s.sendall(os.urandom(64) + b"\xff" * 64)
    assert _closed_by_peer(s)
    s.close()
    _cluster_works()


@pytest.mark.parametrize("peer", PEERS)
def test_unauthenticated_request_is_refused(ray_shared, peer, tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Exploit(str(marker)))
    s = _connect(_addresses()[peer])
    # A well-formed request that would unpickle the payload if dispatched.
    msg = {"t": os.urandom(16), "k": 0, "n": "x", "a": payload, "d": [], "r": 1, "o": "", "f": b"f", "fb": payload}
    s.sendall(_frame([REQUEST, 1, "push_task", msg]) + _frame([NOTIFY, "free_objects", [b"x"]]))
    assert _closed_by_peer(s)
    s.close()
    assert not marker.exists()
    _cluster_works()


@pytest.mark.parametrize("peer", PEERS)
def test_wrong_token_is_refused(ray_shared, peer):
    s = _connect(_addresses()[peer])
    s.sendall(_frame([AUTH, "not-the-token", None]) + _frame([REQUEST, 1, "ping", None]))
    assert _closed_by_peer(s)
    s.close()
    _cluster_works()


@pytest.mark.parametrize("peer", PEERS)
def test_oversized_length_header_closes(ray_shared, peer):
    s = _connect(_addresses()[peer])
    s.sendall(frames.HEADER.pack(0xFFFFFFFF, 0xFFFFFFFF) + b"x" * 32)
    assert _closed_by_peer(s)
    s.close()
    _cluster_works()


@pytest.mark.parametrize("peer", PEERS)
def test_large_frame_before_authentication_closes(ray_shared, peer):
    """An unauthenticated peer cannot make a server buffer a huge frame."""
    s = _connect(_addresses()[peer])
    s.sendall(frames.HEADER.pack(100 * 2**20, 0) + b"\x00" * 1024)
    assert _closed_by_peer(s)
    s.close()
    _cluster_works()


def test_authenticated_peer_gets_replies(ray_shared):
    """The frames above are well formed: with the token the same socket works."""
    token = state.get_core_worker().token
    for peer, address in _addresses().items():
        s = _connect(address)
        s.sendall(_frame([AUTH, token, None]) + _frame([REQUEST, 7, "ping", None]))
        header = _recv_exact(s, frames.HEADER_SIZE)
        body_len, tail_len = frames.HEADER.unpack(header)
        body = frames.unpack(_recv_exact(s, body_len))
        assert body == [REPLY, 7, "pong"], peer
        s.close()


def test_malformed_frame_after_auth_is_dropped(ray_shared):
    token = state.get_core_worker().token
    s = _connect(_addresses()["daemon"])
    bad_body = b"\xc1"  # never valid msgpack
    s.sendall(
        _frame([AUTH, token, None])
        + struct.pack("!II", len(bad_body), 0)
        + bad_body
        + _frame(["not", "a", "message"])
        + _frame([REQUEST, 8, "ping", None])
    )
    header = _recv_exact(s, frames.HEADER_SIZE)
    body_len, _ = frames.HEADER.unpack(header)
    assert frames.unpack(_recv_exact(s, body_len)) == [REPLY, 8, "pong"]
    s.close()
    _cluster_works()


def test_many_hostile_connections(ray_shared):
    addresses = _addresses()
    socks = []
    for _ in range(20):
        for peer in PEERS:
            s = _connect(addresses[peer])
            s.sendall(b"\x00\x00\x00\x05\x00\x00\x00\x00hello")
            socks.append(s)
    for s in socks:
        assert _closed_by_peer(s)
        s.close()
    _cluster_works()


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf
