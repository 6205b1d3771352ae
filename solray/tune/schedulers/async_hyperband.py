"""ASHA (asynchronous successive halving): a trial reaching a rung (grace_period × rf^k)
goes on only if its score is in the top 1/reduction_factor of scores recorded there."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from solray.tune.schedulers.trial_scheduler import TrialScheduler


class _Bracket:
    """Rungs at ``min_t * rf**(k + stage)`` up to ``max_t``, highest first."""

    def __init__(self, min_t: float, max_t: float, reduction_factor: float, stage: int):
        self.rf = reduction_factor
        count = int(math.log(max_t / min_t) / math.log(reduction_factor) - stage + 1 + 1e-9)
        self.rungs: list[tuple[float, dict[str, float]]] = [
            (min_t * reduction_factor ** (k + stage), {}) for k in reversed(range(max(count, 0)))
        ]

    def cutoff(self, recorded: dict[str, float]) -> float | None:
        if not recorded:
            return None
        return float(np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100))

    def on_result(self, trial_id: str, time: float, score: float) -> str:
        for milestone, recorded in self.rungs:
            if time < milestone:
                continue
            if trial_id in recorded:
                return TrialScheduler.CONTINUE  # already judged at the highest rung it reached
            cutoff = self.cutoff(recorded)
            recorded[trial_id] = score
            if cutoff is not None and score < cutoff:
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE
        return TrialScheduler.CONTINUE


class AsyncHyperBandScheduler(TrialScheduler):
    """Early-stop trials that fall behind at each rung; stop every trial at ``max_t``."""

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: float = 100,
        grace_period: float = 1,
        reduction_factor: float = 4,
        brackets: int = 1,
        stop_last_trials: bool = True,
        seed: int | None = None,
    ):
        super().__init__(metric, mode, time_attr)
        if grace_period <= 0:
            raise ValueError(f"{type(self).__name__}(grace_period={grace_period!r}): must be > 0")
        if max_t < grace_period:
            raise ValueError(f"{type(self).__name__}: max_t={max_t!r} must be >= grace_period={grace_period!r}")
        if reduction_factor <= 1:
            raise ValueError(f"{type(self).__name__}(reduction_factor={reduction_factor!r}): must be > 1")
        if not isinstance(brackets, int) or brackets < 1:
            raise ValueError(f"{type(self).__name__}(brackets={brackets!r}): must be an integer >= 1")
        self._max_t = max_t
        self._stop_last_trials = stop_last_trials
        self._brackets = [_Bracket(grace_period, max_t, reduction_factor, s) for s in range(brackets)]
        # Brackets with fewer rungs get fewer trials (Ray's weighting).
        weights = np.array([math.exp(-s) for s in range(brackets)]) if brackets > 1 else np.array([1.0])
        self._weights = weights / weights.sum()
        self._rng = np.random.default_rng(seed)
        self._trial_bracket: dict[str, _Bracket] = {}

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._require_metric()
        index = int(self._rng.choice(len(self._brackets), p=self._weights))
        self._trial_bracket[trial.trial_id] = self._brackets[index]

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self._time_attr not in result:
            return self.CONTINUE
        time = result[self._time_attr]
        if time >= self._max_t and self._stop_last_trials:
            return self.STOP
        score = self._score(result)
        if score is None:
            return self.CONTINUE
        bracket = self._trial_bracket.get(trial.trial_id)
        if bracket is None:
            self.on_trial_add(tune_controller, trial)
            bracket = self._trial_bracket[trial.trial_id]
        return bracket.on_result(trial.trial_id, time, score)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict | None) -> None:
        if result and self._time_attr in result and (score := self._score(result)) is not None:
            bracket = self._trial_bracket.get(trial.trial_id)
            if bracket is not None:
                bracket.on_result(trial.trial_id, result[self._time_attr], score)

    def debug_string(self) -> str:
        rungs = ", ".join(
            f"{milestone:g}: {len(recorded)} trials"
            for bracket in self._brackets for milestone, recorded in bracket.rungs
        )
        return f"Using AsyncHyperBand: rungs {{{rungs}}}"


ASHAScheduler = AsyncHyperBandScheduler
