"""Calls the config's callbacks: its callback classes, then its single-function hooks.

Built once per process that fires hooks (the Algorithm in the driver, each EnvRunner actor), so
callback objects keep their own state there, as in Ray. ``wants(hook)`` lets EnvRunners skip
the per-episode bookkeeping when nobody listens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from solray.rllib.callbacks.callbacks import RLlibCallback

HOOKS = tuple(name for name in vars(RLlibCallback) if name.startswith("on_"))


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class CallbackRunner:
    def __init__(self, callbacks_class: Any = None, functions: dict[str, Any] | None = None) -> None:
        self._objects = [c() if isinstance(c, type) else c for c in _as_list(callbacks_class)]
        self._functions: dict[str, list[Callable]] = {
            hook: _as_list(fns) for hook, fns in (functions or {}).items() if fns}
        self._wanted = {hook for hook in HOOKS
                        if hook in self._functions or any(_overrides(obj, hook) for obj in self._objects)}

    @classmethod
    def from_config(cls, config: Any) -> CallbackRunner:
        return cls(config.callbacks_class, {hook: getattr(config, f"callbacks_{hook}") for hook in HOOKS})

    def wants(self, hook: str) -> bool:
        return hook in self._wanted

    def __call__(self, hook: str, **kwargs: Any) -> None:
        if hook not in self._wanted:
            return
        for obj in self._objects:
            method = getattr(obj, hook, None)
            if method is not None:
                method(**kwargs)
        for fn in self._functions.get(hook, ()):
            fn(**kwargs)


def _overrides(obj: Any, hook: str) -> bool:
    """True when ``obj`` does something on ``hook`` (RLlibCallback's own no-ops do not count)."""
    method = getattr(type(obj), hook, None)
    return method is not None and method is not getattr(RLlibCallback, hook)
