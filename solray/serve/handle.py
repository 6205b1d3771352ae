"""``DeploymentHandle``: call a deployment from Python; ``DeploymentResponse``: its result.

``handle.remote(...)`` never blocks: when a replica has room it is called at once from the
caller's thread; otherwise the request waits on the client's event loop. A response can be
awaited, read with ``.result()``, or passed to another handle call, which then receives the
value without this process ever waiting for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any

import solray
from solray import exceptions
from solray.serve._internal.client import get_client
from solray.serve._internal.router import Router

_UNSET = object()


class DeploymentHandle:
    """Calls one deployment of one application. Picklable; pass it to other deployments."""

    def __init__(self, deployment_name: str, app_name: str, *, method_name: str = "__call__",
                 stream: bool = False, multiplexed_model_id: str = "") -> None:
        self.deployment_name = deployment_name
        self.app_name = app_name
        self._method_name = method_name
        self._stream = stream
        self._model_id = multiplexed_model_id

    def options(self, *, method_name: Any = _UNSET, stream: Any = _UNSET, multiplexed_model_id: Any = _UNSET,
                use_new_handle_api: Any = _UNSET, **unknown: Any) -> DeploymentHandle:
        if unknown:
            raise TypeError(f"Unknown handle options: {sorted(unknown)}.")
        return DeploymentHandle(
            self.deployment_name, self.app_name,
            method_name=self._method_name if method_name is _UNSET else method_name,
            stream=self._stream if stream is _UNSET else bool(stream),
            multiplexed_model_id=self._model_id if multiplexed_model_id is _UNSET else str(multiplexed_model_id),
        )

    def __getattr__(self, name: str) -> DeploymentHandle:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.options(method_name=name)

    def __reduce__(self):
        return (_rebuild, (self.deployment_name, self.app_name, self._method_name, self._stream, self._model_id))

    def __repr__(self) -> str:
        return f"DeploymentHandle(deployment={self.deployment_name!r}, app={self.app_name!r})"

    def remote(self, *args: Any, **kwargs: Any) -> DeploymentResponse | DeploymentResponseGenerator:
        client = get_client()
        router = client.router(self.app_name, self.deployment_name)
        meta = (self._method_name, self._model_id, router.max_ongoing)
        if self._stream:
            return DeploymentResponseGenerator(router, client.run(_start_stream(router, meta, args, kwargs)))
        args, kwargs, pending = _resolved(args, kwargs)
        if not pending:
            chosen = router.try_assign(self._model_id)
            if chosen is not None:
                return DeploymentResponse(router, _call(router, chosen, meta, args, kwargs), chosen[0])
        return DeploymentResponse(router, client.run(_assign_and_call(router, meta, args, kwargs)))


def _rebuild(deployment: str, app: str, method: str, stream: bool, model_id: str) -> DeploymentHandle:
    return DeploymentHandle(deployment, app, method_name=method, stream=stream, multiplexed_model_id=model_id)


def _resolved(args: tuple, kwargs: dict) -> tuple[tuple, dict, bool]:
    """Responses among the arguments become their object refs (the replica gets the values)."""
    pending = False

    def one(v: Any) -> Any:
        nonlocal pending
        if isinstance(v, DeploymentResponse):
            if v._ref is not None:
                return v._ref
            pending = True
        return v

    return tuple(one(a) for a in args), {k: one(v) for k, v in kwargs.items()}, pending


async def _await_responses(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    async def one(v: Any) -> Any:
        return await v._to_object_ref() if isinstance(v, DeploymentResponse) else v

    return tuple([await one(a) for a in args]), {k: await one(v) for k, v in kwargs.items()}


def _call(router: Router, chosen: tuple[str, Any], meta: tuple, args: tuple, kwargs: dict) -> Any:
    rid, actor = chosen
    try:
        ref = actor.handle_request.remote(meta, *args, **kwargs)
    except BaseException:
        router.release(rid)
        raise
    worker = ref._worker_or_current()
    if not worker.store.add_callback(ref.binary(), lambda _entry: router.release(rid)):
        router.release(rid)
    return ref


async def _assign_and_call(router: Router, meta: tuple, args: tuple, kwargs: dict) -> tuple[Any, str]:
    args, kwargs = await _await_responses(args, kwargs)
    chosen = await router.assign(meta[1])
    meta = (*meta[:2], router.max_ongoing)  # the limit may have arrived while this waited
    return _call(router, chosen, meta, args, kwargs), chosen[0]


class DeploymentResponse:
    """The future result of a handle call: ``await`` it, ``.result()``, or pass it on."""

    def __init__(self, router: Router, ref_or_future: Any, rid: str | None = None) -> None:
        self._router = router
        if isinstance(ref_or_future, concurrent.futures.Future):
            self._ref, self._future, self._rid = None, ref_or_future, None
        else:
            self._ref, self._future, self._rid = ref_or_future, None, rid

    def _take(self, ref_and_rid: tuple[Any, str]) -> Any:
        self._ref, self._rid = ref_and_rid
        return self._ref

    def _to_object_ref_sync(self, timeout_s: float | None = None) -> Any:
        if self._ref is None:
            try:
                self._take(self._future.result(timeout_s))
            except concurrent.futures.TimeoutError:
                raise TimeoutError(f"The request was not assigned to a replica within {timeout_s}s.") from None
        return self._ref

    async def _to_object_ref(self) -> Any:
        if self._ref is None:
            self._take(await asyncio.wrap_future(self._future))
        return self._ref

    def result(self, *, timeout_s: float | None = None, _skip_asyncio_check: bool = False) -> Any:
        """The call's return value; raises the deployment's exception, or TimeoutError."""
        start = time.monotonic()
        ref = self._to_object_ref_sync(timeout_s)
        remaining = None if timeout_s is None else max(0.0, timeout_s - (time.monotonic() - start))
        try:
            return solray.get(ref, timeout=remaining)
        except exceptions.RayActorError:
            self._router.mark_dead(self._rid)
            raise

    def __await__(self):
        return self._await().__await__()

    async def _await(self) -> Any:
        ref = await self._to_object_ref()
        try:
            return await ref
        except exceptions.RayActorError:
            self._router.mark_dead(self._rid)
            raise

    def cancel(self) -> None:
        if self._ref is not None:
            solray.cancel(self._ref)
        elif self._future is not None:
            self._future.cancel()


async def _start_stream(router: Router, meta: tuple, args: tuple, kwargs: dict) -> tuple[Any, str, Any]:
    args, kwargs = await _await_responses(args, kwargs)
    rid, actor = await router.assign(meta[1])
    try:
        stream_id = await actor.start_stream.remote(meta, *args, **kwargs)
    except BaseException:
        router.release(rid)
        raise
    return actor, rid, stream_id


class DeploymentResponseGenerator:
    """The items a streaming call (``options(stream=True)``) yields, as they come."""

    def __init__(self, router: Router, started: concurrent.futures.Future) -> None:
        self._router = router
        self._started = started
        self._buffer: list = []
        self._done = False
        self._released = False

    def _finish(self) -> None:
        self._done = True
        if not self._released:
            self._released = True
            actor, rid, _ = self._started.result()
            self._router.release(rid)

    def _take(self, chunk: tuple[list, bool]) -> None:
        items, done = chunk
        self._buffer.extend(items)
        if done:
            self._finish()

    def __iter__(self) -> DeploymentResponseGenerator:
        return self

    def __next__(self) -> Any:
        while not self._buffer:
            if self._done:
                raise StopIteration
            actor, rid, stream_id = self._started.result()
            try:
                self._take(solray.get(actor.next_chunks.remote(stream_id)))
            except BaseException:
                self._finish()
                raise
        return self._buffer.pop(0)

    def __aiter__(self) -> DeploymentResponseGenerator:
        return self

    async def __anext__(self) -> Any:
        while not self._buffer:
            if self._done:
                raise StopAsyncIteration
            actor, rid, stream_id = await asyncio.wrap_future(self._started)
            try:
                self._take(await actor.next_chunks.remote(stream_id))
            except BaseException:
                self._finish()
                raise
        return self._buffer.pop(0)

    def cancel(self) -> None:
        if not self._done and self._started.done() and not self._started.exception():
            actor, rid, stream_id = self._started.result()
            actor.cancel_stream.remote(stream_id)
            self._finish()
