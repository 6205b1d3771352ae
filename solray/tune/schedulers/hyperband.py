"""Synchronous HyperBand: trials fill brackets of successive halving. A bracket's trials run
to its milestone and pause; when all have arrived, the best 1/reduction_factor go on to the
next milestone (×reduction_factor) and the rest stop, until ``max_t``."""

from __future__ import annotations

import math
from typing import Any

from solray.tune.schedulers.trial_scheduler import TrialScheduler


class _Bracket:
    def __init__(self, size: int, milestone: float, max_t: float, eta: float):
        self.size = size
        self.milestone = milestone
        self.max_t = max_t
        self.eta = eta
        self.live: list[Any] = []
        self.scores: dict[str, float] = {}  # score at the current milestone

    def full(self) -> bool:
        return len(self.live) >= self.size

    def all_arrived(self) -> bool:
        return bool(self.live) and all(t.trial_id in self.scores for t in self.live)

    def halve(self) -> tuple[list, list]:
        """Keep the best ``len/eta`` (at least one); the milestone grows ×eta."""
        ranked = sorted(self.live, key=lambda t: self.scores[t.trial_id], reverse=True)
        keep = max(1, int(len(ranked) / self.eta))
        winners, losers = ranked[:keep], ranked[keep:]
        self.live = winners
        self.scores = {}
        self.milestone = min(self.milestone * self.eta, self.max_t)
        return winners, losers


class HyperBandScheduler(TrialScheduler):
    """Brackets ``s = s_max..0`` with ``ceil((s_max+1)/(s+1) · eta^s)`` trials starting at
    ``max_t / eta^s`` iterations; trials join brackets in order as they are added."""

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: float = 81,
        reduction_factor: float = 3,
        stop_last_trials: bool = True,
    ):
        super().__init__(metric, mode, time_attr)
        if max_t <= 0:
            raise ValueError(f"HyperBandScheduler(max_t={max_t!r}): must be > 0")
        if reduction_factor <= 1:
            raise ValueError(f"HyperBandScheduler(reduction_factor={reduction_factor!r}): must be > 1")
        self._max_t = max_t
        self._eta = reduction_factor
        self._stop_last_trials = stop_last_trials
        self._s_max = int(math.log(max_t) / math.log(reduction_factor) + 1e-9)
        self._next_s = self._s_max
        self._brackets: list[_Bracket] = []
        self._bracket_of: dict[str, _Bracket] = {}

    def _new_bracket(self) -> _Bracket:
        s = self._next_s
        self._next_s = self._next_s - 1 if self._next_s > 0 else self._s_max
        size = int(math.ceil((self._s_max + 1) / (s + 1) * self._eta ** s))
        bracket = _Bracket(size, self._max_t / self._eta ** s, self._max_t, self._eta)
        self._brackets.append(bracket)
        return bracket

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._require_metric()
        bracket = self._brackets[-1] if self._brackets and not self._brackets[-1].full() else self._new_bracket()
        bracket.live.append(trial)
        self._bracket_of[trial.trial_id] = bracket

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        bracket = self._bracket_of.get(trial.trial_id)
        if bracket is None or self._time_attr not in result:
            return self.CONTINUE
        time = result[self._time_attr]
        if time >= self._max_t and self._stop_last_trials:
            return self.STOP
        score = self._score(result)
        if score is None or time < bracket.milestone:
            return self.CONTINUE
        bracket.scores[trial.trial_id] = score
        return self._maybe_halve(tune_controller, bracket, trial)

    def _maybe_halve(self, tune_controller: Any, bracket: _Bracket, current: Any) -> str:
        """Pause ``current`` at the milestone unless the bracket is complete; then stop the
        losers and let the winners (the current one included) go on."""
        if not bracket.all_arrived() or (not bracket.full() and self._pending_may_join(tune_controller)):
            return self.PAUSE
        winners, losers = bracket.halve()
        decision = self.CONTINUE
        for trial in losers:
            if trial is current:
                decision = self.STOP
            elif tune_controller is not None:
                tune_controller.stop_trial(trial)
        if tune_controller is not None:
            for trial in winners:
                if trial is not current:
                    # Paused, or still on its way to pausing (its actor has not stopped
                    # yet): the controller resumes it either way.
                    tune_controller.resume_trial(trial)
        return decision

    def _pending_may_join(self, tune_controller: Any) -> bool:
        return bool(tune_controller is not None and getattr(tune_controller, "more_trials_coming", lambda: False)())

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict | None) -> None:
        self._leave(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._leave(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._leave(tune_controller, trial)

    def _leave(self, tune_controller: Any, trial: Any) -> None:
        bracket = self._bracket_of.pop(trial.trial_id, None)
        if bracket is None or trial not in bracket.live:
            return
        bracket.live.remove(trial)
        bracket.scores.pop(trial.trial_id, None)
        if bracket.all_arrived():
            # The trial that left was the one the paused others were waiting for.
            self._maybe_halve(tune_controller, bracket, None)

    def choose_trial_to_run(self, tune_controller: Any, trials: list | None = None) -> Any:
        """Only pending trials: paused ones wait for their bracket and are resumed
        (made pending again) by ``resume_trial`` when they win."""
        trials = trials if trials is not None else tune_controller.trials
        return next((t for t in trials if t.status == "PENDING"), None)

    def debug_string(self) -> str:
        parts = [f"{len(b.live)}/{b.size} live, milestone {b.milestone:g}" for b in self._brackets]
        return "Using HyperBand: " + "; ".join(parts)
