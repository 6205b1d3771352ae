"""HTTP inside a replica: run an ASGI app (or a Starlette response) against a captured send,
and turn plain return values into responses.

A response whose body arrives in one piece comes back whole, in the reply to the proxy's
single call. A response that sends its body in parts (``StreamingResponse``, generators)
becomes a ``ChunkStream`` the proxy drains with ``next_chunks`` calls.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
from typing import Any

logger = logging.getLogger("solray.serve")

JSON_HEADERS = [(b"content-type", b"application/json")]
TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]
BYTES_HEADERS = [(b"content-type", b"application/octet-stream")]
_stream_ids = itertools.count(1)


class ChunkStream:
    """Items produced in a replica, waiting for the caller to pull them."""

    def __init__(self) -> None:
        self.id = next(_stream_ids)
        self.items: list = []
        self.done = False
        self.error: BaseException | None = None
        self.changed = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.task: asyncio.Future | None = None

    def push(self, item: Any) -> None:
        self.items.append(item)
        self.changed.set()

    def finish(self, error: BaseException | None = None) -> None:
        if not self.done:
            self.done = True
            self.error = error
            self.changed.set()

    async def take(self) -> tuple[list, bool]:
        while not self.items and not self.done:
            self.changed.clear()
            await self.changed.wait()
        items, self.items = self.items, []
        if not items and self.error is not None:
            raise self.error
        # Done with an error: the items go first, the error with the next pull.
        return items, self.done and self.error is None

    def cancel(self) -> None:
        self.cancelled.set()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.finish()


def _full(status: int, headers: list, body: bytes) -> tuple:
    return ("full", status, [*headers, (b"content-length", str(len(body)).encode())], body)


def plain_response(result: Any) -> tuple | None:
    """A ``("full", status, headers, body)`` reply for a plain value; None for anything an
    ASGI response has to render."""
    if isinstance(result, (dict, list, int, float, bool)) or result is None:
        try:
            return _full(200, JSON_HEADERS, json.dumps(result, separators=(",", ":")).encode())
        except (TypeError, ValueError):
            return None
    if isinstance(result, str):
        return _full(200, TEXT_HEADERS, result.encode())
    if isinstance(result, (bytes, bytearray, memoryview)):
        return _full(200, BYTES_HEADERS, bytes(result))
    return None


def as_asgi_response(result: Any) -> Any:
    """An ASGI response for what a ``__call__`` returned (Starlette responses pass through)."""
    from starlette.responses import JSONResponse, Response, StreamingResponse

    if isinstance(result, Response):
        return result
    if inspect.isgenerator(result) or inspect.isasyncgen(result):
        return StreamingResponse(result)
    from fastapi.encoders import jsonable_encoder

    return JSONResponse(jsonable_encoder(result))


def error_reply(status: int, text: str) -> tuple:
    return _full(status, TEXT_HEADERS, text.encode())


async def run_asgi(app: Any, scope: dict, body: bytes, streams: dict[int, ChunkStream]) -> tuple:
    """Run ``app`` on one request; the reply once its body is complete or starts streaming."""
    loop = asyncio.get_running_loop()
    first: asyncio.Future = loop.create_future()
    state: dict[str, Any] = {"start": None, "parts": [], "stream": None, "sent_body": False}
    disconnected = asyncio.Event()

    async def receive() -> dict:
        if not state["sent_body"]:
            state["sent_body"] = True
            return {"type": "http.request", "body": body, "more_body": False}
        stream = state["stream"]
        if stream is not None:
            await stream.cancelled.wait()
        else:
            await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            state["start"] = message
            return
        if kind != "http.response.body":
            return
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        stream = state["stream"]
        if stream is not None:
            if chunk:
                stream.push(chunk)
            if not more:
                stream.finish()
            return
        start = state["start"] or {"status": 500, "headers": []}
        if not more:
            state["parts"].append(chunk)
            if not first.done():
                first.set_result(("full", start["status"], list(start.get("headers") or []), b"".join(state["parts"])))
            return
        if not state["parts"] and not chunk:
            return
        stream = ChunkStream()
        streams[stream.id] = stream
        state["stream"] = stream
        stream.push(b"".join(state["parts"]) + chunk)
        state["parts"] = []
        first.set_result(("stream", start["status"], list(start.get("headers") or []), stream.id))

    task = asyncio.ensure_future(app(scope, receive, send))

    def on_done(t: asyncio.Future) -> None:
        disconnected.set()
        error = None if t.cancelled() else t.exception()
        if error is not None and first.done():
            logger.error("serve: the request handler failed after its response began", exc_info=error)
        stream = state["stream"]
        if stream is not None:
            stream.task = None
            stream.finish(error)
        if not first.done():
            if error is not None:
                first.set_exception(error)
            else:
                first.set_exception(RuntimeError("The ASGI app returned without sending a response."))

    task.add_done_callback(on_done)
    reply = await first
    if state["stream"] is not None and not task.done():
        state["stream"].task = task
    return reply


async def pump(source: Any, stream: ChunkStream) -> None:
    """Feed a generator's items into ``stream`` (sync generators step in a thread)."""
    try:
        if inspect.isasyncgen(source):
            async for item in source:
                stream.push(item)
        else:
            loop = asyncio.get_running_loop()
            done = object()
            while True:
                item = await loop.run_in_executor(None, next, source, done)
                if item is done:
                    break
                stream.push(item)
        stream.finish()
    except asyncio.CancelledError:
        stream.finish()
        raise
    except BaseException as e:  # noqa: BLE001 - the caller gets it with its next pull
        stream.finish(e)
