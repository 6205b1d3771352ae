"""Authenticated, bidirectional request/reply connections over asyncio streams.

Every connection starts with an AUTH frame carrying the cluster token; the accepting side
compares it in constant time and closes the connection on mismatch, so nothing a peer sends
is dispatched (let alone unpickled) before it proved it holds the token. Both sides may send
requests and notifications once connected. Writes made during one loop iteration are
coalesced into one ``writelines`` call, which matters for task throughput.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import socket
import traceback
from collections.abc import Callable
from typing import Any

from solray._private.protocol import frames
from solray._private.protocol.frames import AUTH, AUTH_FAILED, ERROR, NOTIFY, REPLY, REQUEST

logger = logging.getLogger(__name__)

# handler(conn, method, payload, tail) -> result | awaitable | Raw
Handler = Callable[["Connection", str, Any, Any], Any]


class RpcError(Exception):
    """The peer's handler raised; ``remote_type`` names the exception class."""

    def __init__(self, remote_type: str, message: str, remote_traceback: str = ""):
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback
        super().__init__(f"{remote_type}: {message}")


class ConnectionLost(ConnectionError):
    """The connection closed before the reply arrived."""


class Raw:
    """A handler result carrying a raw tail buffer next to the msgpack body."""

    __slots__ = ("body", "tail")

    def __init__(self, body: Any, tail: bytes | memoryview | None):
        self.body = body
        self.tail = tail


class Connection(asyncio.Protocol):
    def __init__(
        self,
        handler: Handler | None,
        token: str,
        *,
        is_client: bool,
        name: str = "",
        on_close: Callable[[Connection], None] | None = None,
        hello: Any = None,
    ):
        self._handler = handler
        self._token = token
        self._is_client = is_client
        self._authenticated = is_client
        self._refused = False  # a stranger's token was refused: read nothing more from it
        self._hello = hello
        self.peer_hello: Any = None
        self.name = name
        self._on_close = on_close
        self._buf = bytearray()
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._out: list = []
        self._flush_scheduled = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future] = []
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.close_reason: str | None = None
        self.loop = asyncio.get_event_loop()
        self.closed_future: asyncio.Future = self.loop.create_future()
        # Free-form per-connection state owned by the handler (e.g. which functions were sent).
        self.state: dict = {}

    # ---- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._is_client:
            self._write(frames.encode_frame([AUTH, self._token, self._hello]))

    def connection_lost(self, exc):
        self.closed = True
        reason = self.close_reason or exc
        err = ConnectionLost(f"connection {self.name} closed" + (f": {reason}" if reason else ""))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        if not self.closed_future.done():
            self.closed_future.set_result(None)
        if self._on_close is not None:
            try:
                self._on_close(self)
            except Exception:
                logger.exception("on_close callback of %s failed", self.name)

    def pause_writing(self):
        self._paused = True

    def resume_writing(self):
        self._paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def data_received(self, data):
        if self._refused:
            return
        buf = self._buf
        buf += data
        pos = 0
        n = len(buf)
        try:
            while n - pos >= frames.HEADER_SIZE:
                body_len, tail_len = frames.HEADER.unpack_from(buf, pos)
                frames.check_sizes(body_len, tail_len, self._authenticated)
                end = pos + frames.HEADER_SIZE + body_len + tail_len
                if end > n:
                    break
                start = pos + frames.HEADER_SIZE
                body_bytes = bytes(buf[start : start + body_len])
                tail = bytes(buf[start + body_len : end]) if tail_len else None
                pos = end
                self._on_frame(body_bytes, tail)
                if self.closed or self._refused:
                    return
        except frames.FrameError as e:
            logger.warning("closing connection %s: %s", self.name, e)
            self.close()
            return
        if pos:
            del buf[:pos]

    # ---- frames -----------------------------------------------------------------------
    def _on_frame(self, body_bytes: bytes, tail):
        try:
            msg = frames.unpack(body_bytes)
            if not isinstance(msg, list) or not msg:
                raise ValueError("a message is a non-empty array")
            kind = msg[0]
        except Exception as e:  # malformed body: framing is intact, so drop just this frame
            if not self._authenticated:
                logger.warning("closing unauthenticated connection %s: malformed frame", self.name)
                self.close()
            else:
                logger.warning("dropping malformed frame on %s: %s", self.name, e)
            return
        if not self._authenticated:
            if (
                kind == AUTH
                and len(msg) >= 2
                and isinstance(msg[1], str)
                and hmac.compare_digest(msg[1].encode(), self._token.encode())
            ):
                self._authenticated = True
                self.peer_hello = msg[2] if len(msg) > 2 else None
            else:
                logger.warning("closing connection %s: authentication failed", self.name)
                # Tell the peer, stop reading, and hang up once it has had time to read the
                # verdict (closing with its unread request queued would reset the connection
                # and lose the verdict).
                self._refused = True
                self._write(frames.encode_frame([AUTH_FAILED]))
                self._flush()
                self.transport.pause_reading()
                self.loop.call_later(1.0, self.close)
            return
        try:
            if kind == REQUEST:
                _, rid, method, payload = msg
                self._dispatch(rid, method, payload, tail)
            elif kind == REPLY or kind == ERROR:
                fut = self._pending.pop(msg[1], None)
                if fut is None or fut.done():
                    return
                if kind == REPLY:
                    fut.set_result(msg[2] if tail is None else (msg[2], tail))
                else:
                    fut.set_exception(RpcError(*msg[2]))
            elif kind == NOTIFY:
                _, method, payload = msg
                self._dispatch(None, method, payload, tail)
            elif kind == AUTH_FAILED and self._is_client:
                self.close_reason = (
                    "the peer refused this process's cluster token (authentication failed); "
                    "set SOLRAY_TOKEN to the token of the cluster"
                )
                self.close()
            else:
                logger.warning("dropping frame of unknown kind %r on %s", kind, self.name)
        except (ValueError, TypeError, LookupError) as e:  # wrong arity or shape
            logger.warning("dropping malformed message on %s: %s", self.name, e)

    def _dispatch(self, rid, method, payload, tail):
        if self._handler is None:
            if rid is not None:
                self._reply_error(rid, LookupError(f"no handler for {method!r}"))
            return
        try:
            result = self._handler(self, method, payload, tail)
        except Exception as e:
            if rid is not None:
                self._reply_error(rid, e)
            else:
                logger.exception("notification %s on %s failed", method, self.name)
            return
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            task = asyncio.ensure_future(result)
            task.add_done_callback(lambda t: self._finish_async(rid, method, t))
        elif rid is not None:
            self._reply(rid, result)

    def _finish_async(self, rid, method, task: asyncio.Future):
        if task.cancelled():
            if rid is not None:
                self._reply_error(rid, asyncio.CancelledError("handler cancelled"))
            return
        exc = task.exception()
        if exc is not None:
            if rid is not None:
                self._reply_error(rid, exc)
            else:
                logger.error("notification %s on %s failed: %r", method, self.name, exc)
            return
        if rid is not None:
            self._reply(rid, task.result())

    def _reply(self, rid, result):
        if self.closed:
            return
        if isinstance(result, Raw):
            self._write(frames.encode_frame([REPLY, rid, result.body], result.tail))
        else:
            self._write(frames.encode_frame([REPLY, rid, result]))

    def _reply_error(self, rid, exc: BaseException):
        if self.closed:
            return
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self._write(frames.encode_frame([ERROR, rid, [type(exc).__name__, str(exc), tb]]))

    # ---- sending ----------------------------------------------------------------------
    def _write(self, chunks: list):
        self._out.extend(chunks)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self):
        self._flush_scheduled = False
        out, self._out = self._out, []
        if out and not self.closed and self.transport is not None:
            self.transport.writelines(out)

    def request(self, method: str, payload: Any = None, tail=None) -> asyncio.Future:
        """Send a request; the returned future gets the reply body (or ``(body, tail)``)."""
        fut = self.loop.create_future()
        if self.closed:
            reason = f": {self.close_reason}" if self.close_reason else ""
            fut.set_exception(ConnectionLost(f"connection {self.name} is closed{reason}"))
            return fut
        rid = next(self._ids)
        self._pending[rid] = fut
        self._write(frames.encode_frame([REQUEST, rid, method, payload], tail))
        return fut

    def notify(self, method: str, payload: Any = None, tail=None) -> None:
        if not self.closed:
            self._write(frames.encode_frame([NOTIFY, method, payload], tail))

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        if self._paused and not self.closed:
            w = self.loop.create_future()
            self._drain_waiters.append(w)
            await w

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self._flush()
            self.transport.close()
        self.closed = True


async def connect(
    host: str,
    port: int,
    token: str,
    handler: Handler | None = None,
    *,
    name: str = "",
    on_close: Callable[[Connection], None] | None = None,
    hello: Any = None,
    timeout: float = 10.0,
) -> Connection:
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(
            lambda: Connection(
                handler, token, is_client=True, name=name or f"{host}:{port}", on_close=on_close, hello=hello
            ),
            host,
            port,
        ),
        timeout,
    )
    return conn


async def serve(
    host: str,
    port: int,
    token: str,
    handler: Handler,
    *,
    name: str = "server",
    on_close: Callable[[Connection], None] | None = None,
) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: Connection(handler, token, is_client=False, name=name, on_close=on_close),
        host,
        port,
        reuse_address=True,
        backlog=1024,
    )
