"""``@serve.multiplexed``: many models per replica, loaded on demand, least recently used evicted."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("solray.serve")


def multiplexed(func: Callable | None = None, max_num_models_per_replica: int = 3) -> Any:
    """Decorate ``async def get_model(self, model_id)``: calls return the cached model,
    loading it once; past ``max_num_models_per_replica`` the least recently used is dropped."""
    if isinstance(max_num_models_per_replica, bool) or not isinstance(max_num_models_per_replica, int) \
            or (max_num_models_per_replica < 1 and max_num_models_per_replica != -1):
        raise ValueError("max_num_models_per_replica must be a positive integer or -1 (no limit).")

    def decorate(load: Callable) -> Callable:
        if not inspect.iscoroutinefunction(load):
            raise TypeError("@serve.multiplexed must decorate an async function or method.")
        params = list(inspect.signature(load).parameters)
        is_method = bool(params) and params[0] == "self"
        caches: dict[int, _ModelCache] = {}

        @functools.wraps(load)
        async def get(*args: Any) -> Any:
            owner = args[0] if is_method else None
            model_id = args[-1]
            if not isinstance(model_id, str) or not model_id:
                raise TypeError(f"The model id must be a non-empty string, got {model_id!r}.")
            cache = caches.get(id(owner))
            if cache is None:
                cache = caches[id(owner)] = _ModelCache(max_num_models_per_replica)
            return await cache.get(model_id, lambda: load(*args))

        get._serve_model_caches = caches
        return get

    return decorate(func) if func is not None else decorate


class _ModelCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.models: OrderedDict[str, Any] = OrderedDict()
        self.loading: dict[str, asyncio.Future] = {}

    async def get(self, model_id: str, load: Callable) -> Any:
        if model_id in self.models:
            self.models.move_to_end(model_id)
            return self.models[model_id]
        pending = self.loading.get(model_id)
        if pending is not None:  # another request is loading it: share the load
            return await asyncio.shield(pending)
        fut = asyncio.get_running_loop().create_future()
        self.loading[model_id] = fut
        try:
            while self.capacity != -1 and len(self.models) >= self.capacity:
                evicted_id, evicted = self.models.popitem(last=False)
                logger.info("serve: unloading model %r to make room for %r", evicted_id, model_id)
                await _unload(evicted)
            model = await load()
            self.models[model_id] = model
            fut.set_result(model)
            return model
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody shares it
            raise
        finally:
            self.loading.pop(model_id, None)


async def _unload(model: Any) -> None:
    release = getattr(model, "__del__", None)
    if callable(release):
        result = release()
        if inspect.isawaitable(result):
            await result
