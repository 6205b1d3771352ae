"""The HTTP proxy actor: uvicorn on port 8000, routing each request by ``route_prefix`` to
a replica of the application's ingress deployment with one direct actor call.

Every failure becomes a status, never a crash: unknown routes 404, oversized bodies 413,
slow bodies 408, full queues 503, failed or dead replicas 500 with the cause.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from typing import Any

from solray import exceptions
from solray.serve._internal.client import get_client
from solray.serve._internal.constants import MODEL_ID_HEADER, ROUTES_KEY
from solray.serve.config import HTTPOptions
from solray.serve.exceptions import BackPressureError, DeploymentUnavailableError

logger = logging.getLogger("solray.serve")
_SCOPE_KEYS = ("type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "query_string",
               "headers", "client", "server")
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class _Reject(Exception):
    def __init__(self, status: int, text: str):
        self.status = status
        self.text = text


def _access_logger(session_dir: str | None) -> logging.Logger:
    log = logging.getLogger(f"solray.serve.access.{os.getpid()}")
    log.propagate = False
    log.setLevel(logging.INFO)
    folder = os.path.join(session_dir or "/tmp", "logs", "serve")
    os.makedirs(folder, exist_ok=True)
    handler = logging.FileHandler(os.path.join(folder, f"proxy_{os.getpid()}.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s proxy: %(message)s"))
    log.addHandler(handler)
    return log


class ServeProxy:
    async def __init__(self, http_options: dict) -> None:
        import uvicorn

        from solray._private.worker import state

        self.opts = HTTPOptions.from_value(http_options)
        self.routes: list[tuple[str, str, str]] = []  # (prefix, app, ingress), longest prefix first
        self.client = get_client()
        self.client.watch(ROUTES_KEY, self._on_routes)
        self.access = _access_logger(getattr(state.get_core_worker(), "session_dir", None))
        sock = socket.socket(socket.AF_INET6 if ":" in self.opts.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.opts.host, self.opts.port))
        sock.listen(2048)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.asgi, lifespan="off", access_log=False, log_level="warning", interface="asgi3",
                                timeout_keep_alive=self.opts.keep_alive_timeout_s)
        self.server = uvicorn.Server(config)
        self.serving = asyncio.ensure_future(self.server.serve(sockets=[sock]))
        while not self.server.started and not self.serving.done():
            await asyncio.sleep(0.005)
        if self.serving.done():
            self.serving.result()

    async def ready(self) -> dict:
        return {"port": self.port, "pid": os.getpid()}

    async def watch(self) -> None:
        await asyncio.Event().wait()

    def _on_routes(self, routes: dict | None) -> None:
        table = [(prefix, app, dep) for prefix, (app, dep) in (routes or {}).items()]
        self.routes = sorted(table, key=lambda r: len(r[0]), reverse=True)

    def _match(self, path: str) -> tuple[str, str, str] | None:
        for prefix, app, dep in self.routes:
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                return prefix, app, dep
        return None

    # ---- ASGI ----------------------------------------------------------------------------
    async def asgi(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        start = time.perf_counter()
        status = 500
        try:
            status = await self._serve(scope, receive, send)
        except _Reject as r:
            status = r.status
            await _send_text(send, r.status, r.text)
        except Exception as e:  # noqa: BLE001 - the proxy answers and carries on
            logger.exception("serve proxy: request %s %s failed", scope.get("method"), scope.get("path"))
            await _send_text(send, 500, f"Internal Server Error: {type(e).__name__}: {e}")
        finally:
            self.access.info("%s %s %s %.1fms", scope.get("method"), scope.get("path"), status,
                             (time.perf_counter() - start) * 1000)

    async def _serve(self, scope: dict, receive: Any, send: Any) -> int:
        path = scope["path"]
        if path.startswith("/-/"):
            return await self._builtin(path, send)
        match = self._match(path)
        if match is None:
            raise _Reject(404, f"Path '{path}' not found. Ping http://.../-/routes for the available routes.")
        prefix, app, dep = match
        body = await self._read_body(scope, receive)
        model_id = ""
        for k, v in scope["headers"]:
            if k == MODEL_ID_HEADER.encode():
                model_id = v.decode("latin-1")
        router = self.client.router(app, dep)
        chosen = router.try_assign(model_id)
        if chosen is None:
            try:
                chosen = await router.assign(model_id, self.opts.request_timeout_s)
            except BackPressureError as e:
                raise _Reject(503, str(e)) from None
            except DeploymentUnavailableError as e:
                raise _Reject(503, str(e)) from None
            except TimeoutError as e:
                raise _Reject(408, str(e)) from None
        rid, actor = chosen
        request_scope = {k: scope[k] for k in _SCOPE_KEYS if k in scope}
        request_scope["root_path"] = self.opts.root_path + ("" if prefix == "/" else prefix)
        try:
            ref = actor.handle_http.remote(request_scope, body, router.max_ongoing)
            try:
                if self.opts.request_timeout_s is None:
                    reply = await ref
                else:
                    reply = await asyncio.wait_for(ref, self.opts.request_timeout_s)
            except asyncio.TimeoutError:
                raise _Reject(408, f"Request timed out after {self.opts.request_timeout_s}s.") from None
            except exceptions.RayActorError as e:
                router.mark_dead(rid)
                why = await router.why_lost(rid)
                raise _Reject(500, f"Internal Server Error: the replica serving the request {why.rstrip('.')}. ({e})") from None
            except exceptions.RayTaskError as e:
                raise _Reject(500, f"Internal Server Error: {e}") from None
            status, headers = reply[1], reply[2]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            if reply[0] == "full":
                await send({"type": "http.response.body", "body": reply[3]})
                return status
            await self._stream(actor, rid, router, reply[3], receive, send)
            return status
        finally:
            router.release(rid)

    async def _stream(self, actor: Any, rid: str, router: Any, stream_id: int, receive: Any, send: Any) -> None:
        gone = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            while True:
                pull = asyncio.ensure_future(_await_ref(actor.next_chunks.remote(stream_id)))
                done, _ = await asyncio.wait({pull, gone}, return_when=asyncio.FIRST_COMPLETED)
                if pull not in done:  # the client left: stop the producer
                    pull.cancel()
                    actor.cancel_stream.remote(stream_id)
                    return
                try:
                    items, finished = pull.result()
                except exceptions.RayActorError:
                    router.mark_dead(rid)
                    logger.error("serve proxy: the replica streaming a response died")
                    return
                except exceptions.RayTaskError:
                    logger.exception("serve proxy: the streaming response failed")
                    return
                for chunk in items:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if finished:
                    return
        finally:
            gone.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _read_body(self, scope: dict, receive: Any) -> bytes:
        limit = self.opts.max_request_body_bytes
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    raise _Reject(400, "Invalid Content-Length header.") from None
                if declared > limit:
                    raise _Reject(413, f"Request body of {declared} bytes exceeds the limit of {limit} bytes.")
        parts, size = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.opts.body_timeout_s)
            except asyncio.TimeoutError:
                raise _Reject(408, f"The request body did not arrive within {self.opts.body_timeout_s}s.") from None
            if message["type"] == "http.disconnect":
                raise _Reject(499, "Client disconnected.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Reject(413, f"Request body exceeds the limit of {limit} bytes.")
            parts.append(chunk)
            if not message.get("more_body", False):
                return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _builtin(self, path: str, send: Any) -> int:
        if path == "/-/healthz":
            await _send_text(send, 200, "success")
            return 200
        if path == "/-/routes":
            body = json.dumps({prefix: app for prefix, app, _ in self.routes}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return 200
        raise _Reject(404, f"Path '{path}' not found.")


async def _await_ref(ref: Any) -> Any:
    return await ref


async def _wait_disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_text(send: Any, status: int, text: str) -> None:
    try:
        await send({"type": "http.response.start", "status": status, "headers": _TEXT})
        await send({"type": "http.response.body", "body": text.encode()})
    except Exception:  # noqa: BLE001 - the response had already started, or the client left
        pass
