"""The scheduler interface: the Tuner tells a scheduler about each trial's results and the
scheduler answers ``CONTINUE``, ``PAUSE`` or ``STOP``; it also picks the next trial to run.

Schedulers are pure decision logic. They read ``trial.trial_id``, ``trial.config``,
``trial.status``, ``trial.last_result`` and ``trial.checkpoint``; the few that act on other
trials (HyperBand stops losers, PBT restarts a trial from another's checkpoint) call the
controller's ``stop_trial(trial)`` / ``restart_trial(trial, config, checkpoint)``.
"""

from __future__ import annotations

from typing import Any

from solray.tune._internal.objective import Objective


class TrialScheduler(Objective):
    """Base class: FIFO order, never stops anything early."""

    CONTINUE = "CONTINUE"
    PAUSE = "PAUSE"
    STOP = "STOP"
    NOOP = "NOOP"

    #: Whether results must be acted on before the trial goes on (early-stopping
    #: schedulers); a FIFO run lets trials report ahead of the driver.
    _needs_each_result = True

    def __init__(self, metric: str | None = None, mode: str | None = None, time_attr: str = "training_iteration"):
        super().__init__(metric, mode)
        self._time_attr = time_attr

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if metric is not None and self._metric is not None and metric != self._metric:
            raise ValueError(
                f"{type(self).__name__} was given metric={self._metric!r} but TuneConfig says {metric!r}: "
                "set it in one place"
            )
        if mode is not None and self._mode is not None and mode != self._mode:
            raise ValueError(
                f"{type(self).__name__} was given mode={self._mode!r} but TuneConfig says {mode!r}: set it in one place"
            )
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def _require_metric(self) -> None:
        if self._metric is None or self._mode is None:
            raise ValueError(
                f"{type(self).__name__} needs metric and mode: pass them to it or to TuneConfig(metric=, mode=)"
            )

    def _score(self, result: dict) -> float | None:
        """The result's metric, sign-flipped so that larger is always better."""
        if self._metric not in result:
            return None
        value = float(result[self._metric])
        return -value if self._mode == "min" else value

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        pass

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        pass

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict | None) -> None:
        pass

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        pass

    def choose_trial_to_run(self, tune_controller: Any, trials: list | None = None) -> Any:
        """The next trial to start: the first pending one, else the first paused one."""
        trials = trials if trials is not None else tune_controller.trials
        for status in ("PENDING", "PAUSED"):
            for trial in trials:
                if trial.status == status:
                    return trial
        return None

    def debug_string(self) -> str:
        return f"Using {type(self).__name__}."


class FIFOScheduler(TrialScheduler):
    """Run trials in the order they were created; never stop one early."""

    _needs_each_result = False

    def __init__(self) -> None:
        super().__init__()

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True
