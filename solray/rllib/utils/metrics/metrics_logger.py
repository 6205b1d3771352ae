"""``MetricsLogger``: custom metrics logged in callbacks, reduced into the training results.

Each EnvRunner has one (``metrics_logger`` in the episode callbacks). What it logged during a
``sample()`` call travels back with the samples as raw values (``drain``); the Algorithm's
logger merges every runner's values (``merge``) and reduces them once per iteration, so
windows and moving averages span all runners and iterations, as in Ray:

    metrics_logger.log_value("pole_angle", abs(obs[2]), reduce="max", window=100)
    -> result["env_runners"]["pole_angle"]

Reductions: ``"mean"`` (over the last ``window`` values; without a window an exponential
moving average with ``ema_coeff``, default 0.01), ``"ema"``, ``"min"``/``"max"`` (last
``window`` values, else all), ``"sum"`` (this iteration's values), ``"lifetime_sum"``,
``"item"`` (the last value) and ``"item_series"`` (this iteration's values as a list).
Keys may be tuples for nested results.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

REDUCTIONS = ("mean", "ema", "min", "max", "sum", "lifetime_sum", "item", "item_series")
_DEFAULT_EMA = 0.01


def _key(key: str | tuple) -> tuple:
    return tuple(key) if isinstance(key, (tuple, list)) else (key,)


class _Stat:
    """One key's values and how they reduce."""

    def __init__(self, reduce: str | None, window: int | None, ema_coeff: float | None,
                 clear_on_reduce: bool) -> None:
        reduce = reduce or "mean"
        if reduce not in REDUCTIONS:
            raise ValueError(f"Unknown reduce={reduce!r}; use one of {list(REDUCTIONS)}")
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ValueError(f"window must be a positive int or None, got {window!r}")
        if reduce == "mean" and window is None:
            reduce = "ema"
        self.settings = (reduce, window, ema_coeff, clear_on_reduce)
        self.kind, self.clear_on_reduce = reduce, clear_on_reduce
        self.ema_coeff = _DEFAULT_EMA if ema_coeff is None else float(ema_coeff)
        self.values: deque | list = deque(maxlen=window) if window else []
        self.state: Any = None  # the moving average, running total or running extreme
        self.fresh: list = []  # values since the last reduce (what travels upstream)

    def push(self, value: Any) -> None:
        self.fresh.append(value)
        kind = self.kind
        if kind == "ema":
            self.state = value if self.state is None else (1 - self.ema_coeff) * self.state + self.ema_coeff * value
        elif kind == "lifetime_sum":
            self.state = (self.state or 0) + value
        elif kind in ("min", "max") and isinstance(self.values, list):  # no window: a running extreme
            pick = min if kind == "min" else max
            self.state = value if self.state is None else pick(self.state, value)
        else:
            self.values.append(value)

    def peek(self) -> Any:
        kind, values = self.kind, list(self.values)
        if kind in ("ema", "lifetime_sum") or (kind in ("min", "max") and self.state is not None):
            return self.state
        if kind == "mean":
            return float(np.mean(values)) if values else float("nan")
        if kind in ("min", "max"):
            return (min if kind == "min" else max)(values) if values else float("nan")
        if kind == "sum":
            return sum(values)
        if kind == "item":
            return values[-1] if values else None
        return values  # item_series

    def reduce(self) -> Any:
        value = self.peek()
        self.fresh = []
        if self.kind in ("sum", "item_series") or self.clear_on_reduce:
            self.values.clear()
            if self.clear_on_reduce:
                self.state = None
        return value


class MetricsLogger:
    """Log values under (nested) keys; ``reduce()`` returns them reduced as a nested dict."""

    def __init__(self) -> None:
        self._stats: dict[tuple, _Stat] = {}

    def log_value(self, key: str | tuple, value: Any, *, reduce: str | None = "mean", window: int | None = None,
                  ema_coeff: float | None = None, clear_on_reduce: bool = False, **kwargs: Any) -> None:
        """Add ``value`` under ``key``; the reduce settings of a key are fixed by its first log."""
        path = _key(key)
        stat = self._stats.get(path)
        if stat is None:
            stat = self._stats[path] = _Stat(reduce, window, ema_coeff, clear_on_reduce)
        stat.push(value.item() if isinstance(value, np.generic) else value)

    def log_dict(self, values: dict, *, key: str | tuple | None = None, **settings: Any) -> None:
        """Log every leaf of a (nested) dict, under ``key`` if given."""
        prefix = _key(key) if key is not None else ()
        for name, value in values.items():
            if isinstance(value, dict):
                self.log_dict(value, key=prefix + (name,), **settings)
            else:
                self.log_value(prefix + (name,), value, **settings)

    def peek(self, key: str | tuple, default: Any = None) -> Any:
        """The current reduced value of ``key`` without resetting anything."""
        stat = self._stats.get(_key(key))
        return default if stat is None else stat.peek()

    def reduce(self) -> dict:
        """Every key's reduced value, nested by tuple keys; per-iteration values start over."""
        out: dict = {}
        for path, stat in self._stats.items():
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = stat.reduce()
        return out

    # --- between an EnvRunner and the Algorithm -----------------------------------------------
    def drain(self) -> list[tuple]:
        """The values logged since the last drain, with their settings, for ``merge`` upstream."""
        out = [(path, stat.settings, stat.fresh) for path, stat in self._stats.items() if stat.fresh]
        for stat in self._stats.values():
            stat.fresh = []
            if stat.kind in ("sum", "item_series"):
                stat.values.clear()
        return out

    def merge(self, drained: list[tuple]) -> None:
        """Log the values another logger ``drain``ed, with that logger's settings."""
        for path, (reduce, window, ema_coeff, clear_on_reduce), values in drained:
            for value in values:
                self.log_value(path, value, reduce=reduce, window=window, ema_coeff=ema_coeff,
                               clear_on_reduce=clear_on_reduce)
