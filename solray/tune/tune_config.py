"""``TuneConfig``: what to optimise and how (Ray's fields and defaults)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass
class TuneConfig:
    """``metric``/``mode`` name the objective (``mode`` "min" or "max"); ``num_samples``
    repeats the search space (× every grid; -1: until stopped); ``search_alg`` and
    ``scheduler`` pick and stop trials; ``max_concurrent_trials`` caps trials running at
    once; ``time_budget_s`` ends the run; ``reuse_actors`` (default: yes for function
    trainables and trainers) runs consecutive trials in the same actor."""

    mode: str | None = None
    metric: str | None = None
    search_alg: Any = None
    scheduler: Any = None
    num_samples: int = 1
    max_concurrent_trials: int | None = None
    time_budget_s: float | Any = None
    reuse_actors: bool | None = None
    trial_name_creator: Callable[[Any], str] | None = None
    trial_dirname_creator: Callable[[Any], str] | None = None

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in ("min", "max"):
            raise ValueError(f"TuneConfig(mode={self.mode!r}): mode must be 'min' or 'max'")
        if self.metric is not None and not isinstance(self.metric, str):
            raise ValueError(f"TuneConfig(metric={self.metric!r}): metric must be a string")
        if not isinstance(self.num_samples, int) or isinstance(self.num_samples, bool) or (
                self.num_samples < 1 and self.num_samples != -1):
            raise ValueError(f"TuneConfig(num_samples={self.num_samples!r}): must be an integer >= 1 (or -1)")
        if self.max_concurrent_trials is not None and (
                not isinstance(self.max_concurrent_trials, int) or self.max_concurrent_trials < 1):
            raise ValueError(
                f"TuneConfig(max_concurrent_trials={self.max_concurrent_trials!r}): must be None or an integer >= 1")
        if hasattr(self.time_budget_s, "total_seconds"):
            self.time_budget_s = self.time_budget_s.total_seconds()
        if self.time_budget_s is not None and (
                not isinstance(self.time_budget_s, (int, float)) or self.time_budget_s <= 0):
            raise ValueError(f"TuneConfig(time_budget_s={self.time_budget_s!r}): must be a number of seconds > 0")
