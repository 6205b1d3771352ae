"""The replica actor: one instance of the user's deployment class (or function).

It serves Python handle calls (``handle_request``), HTTP requests from the proxy
(``handle_http``) and streams (``start_stream`` / ``next_chunks``), counts its ongoing
requests for autoscaling and draining, and answers the controller's health checks.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections import deque
from typing import Any

import cloudpickle

from solray.serve._internal import http_util
from solray.serve.context import ReplicaContext, ReplicaID, _request_model_id, set_replica_context

logger = logging.getLogger("solray.serve")


class ServeReplica:
    async def __init__(self, app_name: str, deployment_name: str, replica_id: str, def_blob: bytes,
                       args_blob: bytes, user_config: Any) -> None:
        target = cloudpickle.loads(def_blob)
        args, kwargs = cloudpickle.loads(args_blob)
        self._tag = f"{app_name}#{deployment_name}#{replica_id}"
        self._context = ReplicaContext(ReplicaID(replica_id, deployment_name, app_name))
        set_replica_context(self._context)
        self._ongoing = 0  # requests here, running or waiting for a slot
        self._running = 0
        self._admission: deque[asyncio.Future] = deque()
        self._idle = asyncio.Event()
        self._idle.set()
        self._streams: dict[int, http_util.ChunkStream] = {}
        self._forever = asyncio.Event()
        if inspect.isclass(target):
            instance = target.__new__(target)
            result = instance.__init__(*args, **kwargs)
            if inspect.isawaitable(result):
                await result
            self._instance = instance
            self._function = None
        else:
            self._instance = None
            self._function = target
        self._context.servable_object = self._instance
        ingress = getattr(target, "_serve_asgi_app", None)
        self._asgi = ingress.bind(self._instance) if ingress is not None else None
        if user_config is not None:
            await self.reconfigure(user_config)

    # ---- bookkeeping --------------------------------------------------------------------
    async def _admit(self, cap: int) -> None:
        """Wait for one of the ``max_ongoing_requests`` slots: each caller's router keeps to
        the limit, but several callers together could exceed it."""
        while self._running >= cap:
            fut = asyncio.get_running_loop().create_future()
            self._admission.append(fut)
            await fut
        self._running += 1

    def _leave(self) -> None:
        self._running -= 1
        while self._admission:
            fut = self._admission.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _begin(self) -> None:
        self._ongoing += 1
        self._idle.clear()

    def _end(self) -> None:
        self._ongoing -= 1
        if self._ongoing == 0:
            self._idle.set()

    def _target(self, method: str) -> Any:
        if self._function is not None:
            return self._function
        try:
            return getattr(self._instance, method)
        except AttributeError:
            raise AttributeError(
                f"Deployment {self._context.deployment!r} has no method {method!r}."
            ) from None

    async def _invoke(self, method: str, args: tuple, kwargs: dict) -> Any:
        result = self._target(method)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    # ---- Python handle calls -------------------------------------------------------------
    async def handle_request(self, meta: tuple, *args: Any, **kwargs: Any) -> Any:
        method, model_id, cap = meta
        token = _request_model_id.set(model_id)
        self._begin()
        admitted = False
        try:
            await self._admit(cap)
            admitted = True
            result = await self._invoke(method, args, kwargs)
            if inspect.isgenerator(result) or inspect.isasyncgen(result):
                raise TypeError(
                    f"Method {method!r} returned a generator: call it with handle.options(stream=True)."
                )
            return result
        finally:
            if admitted:
                self._leave()
            self._end()
            _request_model_id.reset(token)

    async def start_stream(self, meta: tuple, *args: Any, **kwargs: Any) -> int:
        method, model_id, _ = meta
        token = _request_model_id.set(model_id)
        try:
            source = self._target(method)(*args, **kwargs)
            if inspect.isawaitable(source):
                source = await source
        finally:
            _request_model_id.reset(token)
        if not (inspect.isgenerator(source) or inspect.isasyncgen(source)):
            raise TypeError(f"Method {method!r} must be a generator to be called with stream=True.")
        return self._open_stream(lambda stream: http_util.pump(source, stream))

    def _open_stream(self, producer: Any) -> int:
        stream = http_util.ChunkStream()
        self._streams[stream.id] = stream
        self._begin()
        stream.task = asyncio.ensure_future(producer(stream))
        return stream.id

    async def next_chunks(self, stream_id: int) -> tuple[list, bool]:
        stream = self._streams.get(stream_id)
        if stream is None:
            return [], True
        try:
            items, done = await stream.take()
        except BaseException:
            self._close_stream(stream_id)
            raise
        if done:
            self._close_stream(stream_id)
        return items, done

    def _close_stream(self, stream_id: int) -> None:
        if self._streams.pop(stream_id, None) is not None:
            self._end()

    async def cancel_stream(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.cancel()
            self._close_stream(stream_id)

    # ---- HTTP ---------------------------------------------------------------------------
    async def handle_http(self, scope: dict, body: bytes, cap: int) -> tuple:
        model_id = ""
        for k, v in scope["headers"]:
            if k == b"serve_multiplexed_model_id":
                model_id = v.decode("latin-1")
        token = _request_model_id.set(model_id)
        self._begin()
        streaming = admitted = False
        try:
            await self._admit(cap)
            admitted = True
            if self._asgi is not None:
                app = self._asgi
            else:
                from starlette.requests import Request

                async def receive() -> dict:
                    return {"type": "http.request", "body": body, "more_body": False}

                result = await self._invoke("__call__", (Request(scope, receive),), {})
                reply = http_util.plain_response(result)
                if reply is not None:
                    return reply
                app = http_util.as_asgi_response(result)
            reply = await http_util.run_asgi(app, scope, body, self._streams)
            if reply[0] == "stream":
                streaming = True  # the stream holds the request open until it ends
            return reply
        except Exception as e:  # noqa: BLE001 - the client gets a status, the log the traceback
            return _error_reply(e, self._tag)
        finally:
            if admitted:
                self._leave()
            if not streaming:
                self._end()
            _request_model_id.reset(token)

    # ---- controller hooks -----------------------------------------------------------------
    async def reconfigure(self, user_config: Any) -> None:
        hook = getattr(self._instance, "reconfigure", None)
        if hook is None:
            raise ValueError(
                f"Deployment {self._context.deployment!r} has a user_config but no reconfigure(self, config) method."
            )
        result = hook(user_config)
        if inspect.isawaitable(result):
            await result

    async def check_health(self) -> bool:
        hook = getattr(self._instance, "check_health", None)
        if hook is not None:
            result = hook()
            if inspect.isawaitable(result):
                await result
        return True

    async def get_metrics(self) -> dict:
        return {"ongoing": self._ongoing, "time": time.time()}

    async def watch(self) -> None:
        """Never answers while the replica lives: the controller learns of its death at once."""
        await self._forever.wait()

    async def prepare_for_shutdown(self, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) for ongoing requests to finish, then run ``__del__``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - loop.time()))
                # Routers that had not yet heard this replica is leaving may still send a
                # request or two: stop only after a short quiet spell.
                await asyncio.sleep(max(0.0, min(0.1, deadline - loop.time())))
            except asyncio.TimeoutError:
                pass
            if self._idle.is_set() and self._ongoing == 0:
                break
            if loop.time() >= deadline:
                logger.warning("serve: replica %s shut down with %d requests still running", self._tag, self._ongoing)
                break
        hook = getattr(type(self._instance), "__del__", None) if self._instance is not None else None
        if hook is not None:
            try:
                result = hook(self._instance)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001
                logger.exception("serve: __del__ of replica %s failed", self._tag)


def _error_reply(e: Exception, tag: str) -> tuple:
    from starlette.exceptions import HTTPException

    if isinstance(e, HTTPException):
        return http_util.error_reply(e.status_code, str(e.detail))
    if isinstance(e, json.JSONDecodeError):
        return http_util.error_reply(400, f"Malformed JSON in the request body: {e}")
    logger.error("serve: replica %s: the request failed", tag, exc_info=e)
    import traceback

    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return http_util.error_reply(500, f"Internal Server Error: {type(e).__name__}: {e}\n\n{text}")
