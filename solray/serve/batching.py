"""``@serve.batch``: calls made one item at a time run the function once per batch."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("solray.serve")


def batch(_func: Callable | None = None, max_batch_size: int = 10, batch_wait_timeout_s: float = 0.01) -> Any:
    """Decorate ``async def f(self, items: list) -> list``; callers ``await self.f(item)``.

    A batch runs once it has ``max_batch_size`` items or its first item has waited
    ``batch_wait_timeout_s``; each caller gets the result at its item's position.
    """
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise ValueError(f"max_batch_size must be an integer >= 1, got {max_batch_size!r}.")
    if isinstance(batch_wait_timeout_s, bool) or not isinstance(batch_wait_timeout_s, (int, float)) \
            or batch_wait_timeout_s < 0:
        raise ValueError(f"batch_wait_timeout_s must be a non-negative number, got {batch_wait_timeout_s!r}.")

    def decorate(func: Callable) -> Callable:
        if not inspect.iscoroutinefunction(func):
            raise TypeError("@serve.batch must decorate an async function or method.")
        params = list(inspect.signature(func).parameters)
        is_method = bool(params) and params[0] == "self"
        queues: dict[int, _BatchQueue] = {}

        @functools.wraps(func)
        async def call(*args: Any) -> Any:
            owner = args[0] if is_method else None
            if len(args) != (2 if is_method else 1):
                raise TypeError(f"{func.__name__} is batched: call it with exactly one item.")
            queue = queues.get(id(owner))
            if queue is None:
                handler = functools.partial(func, owner) if is_method else func
                queue = queues[id(owner)] = _BatchQueue(handler, max_batch_size, batch_wait_timeout_s)
            return await queue.submit(args[-1])

        return call

    return decorate(_func) if _func is not None else decorate


class _BatchQueue:
    def __init__(self, handler: Callable, max_batch_size: int, timeout_s: float) -> None:
        self.handler = handler
        self.max_batch_size = max_batch_size
        self.timeout_s = timeout_s
        self.items: list[tuple[Any, asyncio.Future]] = []
        self.full = asyncio.Event()
        self.worker: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        fut = asyncio.get_running_loop().create_future()
        self.items.append((item, fut))
        if len(self.items) >= self.max_batch_size:
            self.full.set()
        if self.worker is None or self.worker.done():
            self.worker = asyncio.ensure_future(self._run())
        return await fut

    async def _run(self) -> None:
        while self.items:
            if len(self.items) < self.max_batch_size:
                try:
                    await asyncio.wait_for(self.full.wait(), self.timeout_s)
                except asyncio.TimeoutError:
                    pass
            batch, self.items = self.items[: self.max_batch_size], self.items[self.max_batch_size:]
            if len(self.items) < self.max_batch_size:
                self.full.clear()
            await self._execute(batch)

    async def _execute(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        try:
            results = await self.handler([item for item, _ in batch])
            if not isinstance(results, (list, tuple)) or len(results) != len(batch):
                raise TypeError(
                    f"A batched function must return a list of one result per item: got "
                    f"{type(results).__name__} for {len(batch)} items."
                )
        except BaseException as e:  # noqa: BLE001 - every caller of the batch gets the error
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)
