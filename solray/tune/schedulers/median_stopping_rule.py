"""Median stopping: stop a trial whose best score so far is worse than the median of the
other trials' running means at the same point in time."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from solray.tune.schedulers.trial_scheduler import TrialScheduler


class MedianStoppingRule(TrialScheduler):
    """``grace_period`` (in ``time_attr`` units) passes before any judgement;
    ``min_samples_required`` other trials must have reported at that time;
    ``hard_stop=False`` pauses instead of stopping."""

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: str | None = None,
        mode: str | None = None,
        grace_period: float = 60.0,
        min_samples_required: int = 3,
        min_time_slice: float = 0,
        hard_stop: bool = True,
    ):
        super().__init__(metric, mode, time_attr)
        if grace_period < 0:
            raise ValueError(f"MedianStoppingRule(grace_period={grace_period!r}): must be >= 0")
        self._grace_period = grace_period
        self._min_samples = min_samples_required
        self._hard_stop = hard_stop
        self._results: dict[str, list[tuple[float, float]]] = defaultdict(list)  # (time, score)
        self._stopped: set[str] = set()

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._require_metric()

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self._time_attr not in result or (score := self._score(result)) is None:
            return self.CONTINUE
        time = result[self._time_attr]
        self._results[trial.trial_id].append((time, score))
        if time < self._grace_period:
            return self.CONTINUE
        others = [self._running_mean(tid, time) for tid in self._results if tid != trial.trial_id]
        others = [m for m in others if m is not None]
        if len(others) < self._min_samples:
            return self.CONTINUE
        best = max(s for _, s in self._results[trial.trial_id])
        if best < float(np.median(others)):
            self._stopped.add(trial.trial_id)
            return self.STOP if self._hard_stop else self.PAUSE
        return self.CONTINUE

    def _running_mean(self, trial_id: str, time: float) -> float | None:
        scores = [s for t, s in self._results[trial_id] if t <= time]
        return float(np.mean(scores)) if scores else None

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict | None) -> None:
        if result and self._time_attr in result and (score := self._score(result)) is not None:
            history = self._results[trial.trial_id]
            if not history or history[-1][0] != result[self._time_attr]:
                history.append((result[self._time_attr], score))

    def debug_string(self) -> str:
        return f"Using MedianStoppingRule: {len(self._stopped)} of {len(self._results)} trials stopped."
