"""Stoppers (``solray.tune.stopper``): ``stopper(trial_id, result)`` says whether that trial
stops; ``stop_all()`` whether the whole experiment does. ``RunConfig(stop=)`` also takes a
dict of thresholds (a trial stops once any result value reaches its threshold) or a plain
function ``(trial_id, result) -> bool``."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

import numpy as np

from solray.air._internal.storage import flatten


class Stopper:
    """Base class: subclasses implement ``__call__`` and ``stop_all``."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        raise NotImplementedError

    def stop_all(self) -> bool:
        raise NotImplementedError


class NoopStopper(Stopper):
    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return False


class FunctionStopper(Stopper):
    """Wraps ``function(trial_id, result) -> bool``."""

    def __init__(self, function: Callable[[str, dict], bool]):
        if not callable(function):
            raise ValueError(f"stop={function!r}: expected a dict, a function or a tune.Stopper")
        self._function = function

    def __call__(self, trial_id: str, result: dict) -> bool:
        return bool(self._function(trial_id, result))

    def stop_all(self) -> bool:
        return False


class DictStopper(Stopper):
    """``{"metric": threshold}``: stop a trial when any ``result[metric] >= threshold``."""

    def __init__(self, criteria: dict):
        for key, threshold in criteria.items():
            if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
                raise ValueError(f"stop={{{key!r}: {threshold!r}}}: thresholds must be numbers")
        self.criteria = dict(criteria)

    def __call__(self, trial_id: str, result: dict) -> bool:
        flat = flatten(result)  # "env_runners/episode_return_mean" names a nested value
        return any(
            (value := result.get(key, flat.get(key))) is not None and value >= threshold
            for key, threshold in self.criteria.items()
        )

    def stop_all(self) -> bool:
        return False


class MaximumIterationStopper(Stopper):
    """Stop each trial after ``max_iter`` results."""

    def __init__(self, max_iter: int):
        self._max_iter = max_iter
        self._iterations: dict[str, int] = defaultdict(int)

    def __call__(self, trial_id: str, result: dict) -> bool:
        self._iterations[trial_id] += 1
        return self._iterations[trial_id] >= self._max_iter

    def stop_all(self) -> bool:
        return False


class TrialPlateauStopper(Stopper):
    """Stop a trial once the std of its last ``num_results`` values of ``metric`` is below
    ``std`` (after ``grace_period`` results), or it crossed ``metric_threshold``."""

    def __init__(self, metric: str, std: float = 0.01, num_results: int = 4, grace_period: int = 4,
                 metric_threshold: float | None = None, mode: str | None = None):
        if metric_threshold is not None and mode not in ("min", "max"):
            raise ValueError("TrialPlateauStopper: metric_threshold needs mode='min' or 'max'")
        self._metric = metric
        self._std = std
        self._num_results = num_results
        self._grace_period = grace_period
        self._threshold = metric_threshold
        self._mode = mode
        self._window: dict[str, deque] = defaultdict(lambda: deque(maxlen=num_results))
        self._count: dict[str, int] = defaultdict(int)

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self._metric not in result:
            return False
        value = result[self._metric]
        self._count[trial_id] += 1
        self._window[trial_id].append(value)
        if self._threshold is not None:
            crossed = value < self._threshold if self._mode == "min" else value > self._threshold
            if not crossed:
                return False
        if self._count[trial_id] < self._grace_period or len(self._window[trial_id]) < self._num_results:
            return False
        return float(np.std(self._window[trial_id])) <= self._std

    def stop_all(self) -> bool:
        return False


class ExperimentPlateauStopper(Stopper):
    """Stop the experiment once the top ``top`` values of ``metric`` change by less than
    ``std`` over ``patience`` results."""

    def __init__(self, metric: str, std: float = 0.001, top: int = 10, mode: str = "min", patience: int = 0):
        if mode not in ("min", "max"):
            raise ValueError(f"ExperimentPlateauStopper(mode={mode!r}): must be 'min' or 'max'")
        self._metric, self._std, self._top, self._mode, self._patience = metric, std, top, mode, patience
        self._values: list[float] = []
        self._calm = 0

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self._metric in result:
            self._values.append(float(result[self._metric]))
            ordered = sorted(self._values, reverse=self._mode == "max")[: self._top]
            if len(ordered) >= self._top and float(np.std(ordered)) <= self._std:
                self._calm += 1
            else:
                self._calm = 0
        return self.stop_all()

    def stop_all(self) -> bool:
        return len(self._values) >= self._top and self._calm > self._patience


class TimeoutStopper(Stopper):
    """Stop the experiment after ``timeout`` seconds (a number or a ``datetime.timedelta``)."""

    def __init__(self, timeout: Any):
        seconds = timeout.total_seconds() if hasattr(timeout, "total_seconds") else timeout
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ValueError(f"TimeoutStopper(timeout={timeout!r}): must be > 0 seconds")
        self._budget = float(seconds)
        self._start: float | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        if self._start is None:
            self._start = time.monotonic()
        return time.monotonic() - self._start >= self._budget


class CombinedStopper(Stopper):
    """Stops when any of ``stoppers`` would."""

    def __init__(self, *stoppers: Stopper):
        self._stoppers = stoppers

    def __call__(self, trial_id: str, result: dict) -> bool:
        return any([s(trial_id, result) for s in self._stoppers])  # every stopper sees every result

    def stop_all(self) -> bool:
        return any(s.stop_all() for s in self._stoppers)


def as_stopper(stop: Any) -> Stopper | None:
    """``RunConfig(stop=)`` as a ``Stopper`` (None for no stopping)."""
    if stop is None:
        return None
    if isinstance(stop, Stopper):
        return stop
    if isinstance(stop, dict):
        return DictStopper(stop)
    if callable(stop):
        return FunctionStopper(stop)
    raise ValueError(f"RunConfig(stop={stop!r}): expected a dict, a function or a tune.Stopper")


__all__ = [
    "CombinedStopper",
    "ExperimentPlateauStopper",
    "FunctionStopper",
    "MaximumIterationStopper",
    "NoopStopper",
    "Stopper",
    "TimeoutStopper",
    "TrialPlateauStopper",
]
