"""The driver's loop: ask the searcher for configs, start trials as actors while resources
allow, take their results in batches, let the scheduler and stoppers decide, persist the
experiment state, and show progress."""

from __future__ import annotations

import time
import uuid
from typing import Any

import solray
from solray.air._internal.storage import StorageContext
from solray.tune._internal import actors
from solray.tune._internal.protocol import CONTINUE, PAUSE, STOP
from solray.tune._internal.tensorboard import TensorBoardWriter
from solray.tune._internal.trial import ERROR, PAUSED, PENDING, RUNNING, TERMINATED, Trial
from solray.tune.schedulers.trial_scheduler import TrialScheduler
from solray.tune.search.searcher import Searcher

# The experiment state is written when trials change status, at most every
# _SAVE_MIN_INTERVAL_S (it holds every trial: writing it per change is quadratic), and
# every _SAVE_EVERY_S while only results come in. A driver killed in between re-runs at
# most the trials that finished in that window.
_SAVE_EVERY_S = 2.0
_SAVE_MIN_INTERVAL_S = 0.5


class MetricNotReported(ValueError):
    """A trial's result lacks the metric named in ``TuneConfig``."""


class TuneController:
    """Runs one experiment to completion (or until stopped)."""

    def __init__(self, *, setup: Any, trials: list[Trial], searcher: Searcher, scheduler: TrialScheduler,
                 stopper: Any, reporter: Any, callbacks: Any, folder: Any, created: int = 0):
        self.s = setup  # the Tuner's resolved settings (see tuner._Setup)
        self.trials = trials
        self.searcher = searcher
        self.scheduler = scheduler
        self.stopper = stopper
        self.reporter = reporter
        self.callbacks = callbacks
        self.folder = folder
        self.created = created
        self.search_finished = False
        self.pool = actors.ActorPool(setup)
        self.tensorboard = TensorBoardWriter(setup.filesystem, setup.experiment_fs_path)
        self._by_id = {t.trial_id: t for t in trials}
        self._slots: dict[str, actors.Slot] = {}
        self._dirty = True
        self._iteration = 0
        self._checked_metric = False
        self._run_id = uuid.uuid4().hex[:5]
        self._stop_all = False

    # --- hooks the schedulers call ------------------------------------------------------------

    def stop_trial(self, trial: Trial) -> None:
        if trial.status == RUNNING and trial.trial_id in self._slots:
            self._slots[trial.trial_id].request(STOP)
        elif trial.status in (PENDING, PAUSED):
            self._complete(trial, TERMINATED)

    def resume_trial(self, trial: Trial) -> None:
        if trial.status == PAUSED:
            trial.status = PENDING
            self._dirty = True
        elif trial.trial_id in self._slots:
            self._slots[trial.trial_id].resume_after_pause = True

    def restart_trial(self, trial: Trial, config: dict, checkpoint: Any) -> None:
        """PBT's exploit: continue ``trial`` from ``checkpoint`` with ``config``."""
        trial.restart_config = {"config": config, "checkpoint": checkpoint}
        if trial.trial_id in self._slots:
            self._slots[trial.trial_id].request(STOP)

    def more_trials_coming(self) -> bool:
        return not self.search_finished

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        self.callbacks.setup(stop=self.s.stopper, num_samples=self.s.num_samples)
        for trial in self.trials:
            if trial.status in (PENDING, PAUSED):
                self.scheduler.on_trial_add(self, trial)
        start = time.monotonic()
        try:
            while True:
                if self._budget_spent(start):
                    self._stop_everything()
                if not self._stop_all:
                    self._launch()
                if not self._slots:
                    if self._stop_all:
                        break
                    if self._revive_paused():
                        continue
                    if not self._launchable():
                        if not self.search_finished:
                            actors.warn("the searcher suggests nothing while no trial runs; ending the experiment")
                        break
                    self.pool.wait_for_capacity()  # pending trials that do not fit yet
                    continue
                self._process(self.pool.wait(self._slots, timeout=0.5))
                self._maybe_save()
                self.reporter.maybe_report(self.trials, self.pool.used, self.pool.capacity)
        finally:
            self._shutdown()
        self.callbacks.on_experiment_end(trials=self.trials)
        self.reporter.maybe_report(self.trials, self.pool.used, self.pool.capacity, force=True)

    def _budget_spent(self, start: float) -> bool:
        budget = self.s.time_budget_s
        if budget is not None and time.monotonic() - start >= budget:
            return True
        return self.stopper is not None and not self._stop_all and self.stopper.stop_all()

    def _stop_everything(self) -> None:
        if self._stop_all:
            return
        self._stop_all = True
        self.search_finished = True
        for slot in self._slots.values():
            slot.request(STOP)

    def _launchable(self) -> bool:
        return any(t.status == PENDING for t in self.trials)

    def _revive_paused(self) -> bool:
        """Nothing runs and nothing is pending: paused trials would wait forever."""
        paused = [t for t in self.trials if t.status == PAUSED]
        if not paused or not self.search_finished:
            return False
        for trial in paused:
            trial.status = PENDING
        return True

    def _launch(self) -> None:
        limit = self.s.max_concurrent_trials
        while not limit or len(self._slots) < limit:
            trial = self.scheduler.choose_trial_to_run(self, self.trials)
            if trial is None:
                trial = self._new_trial()
                if trial is None:
                    return
            if not self.pool.fits(trial.resources):
                return
            self._start(trial)

    def _new_trial(self) -> Trial | None:
        if self.search_finished:
            return None
        limit = self.s.num_samples_limit
        if limit is not None and self.created >= limit:
            self.search_finished = True
            return None
        trial_id = f"{self._run_id}_{self.created:05d}"
        config = self.searcher.suggest(trial_id)
        if config == Searcher.FINISHED:
            self.search_finished = True
            return None
        if config is None:
            return None
        self.created += 1
        if limit is not None and self.created >= limit:
            self.search_finished = True
        trial = self.s.make_trial(trial_id, config, self.created - 1)
        self.pool.check_feasible(trial.resources)
        self.trials.append(trial)
        self._by_id[trial_id] = trial
        self.scheduler.on_trial_add(self, trial)
        self._dirty = True
        return trial

    def _start(self, trial: Trial) -> None:
        restoring = trial.checkpoint is not None
        if trial.restart_config is not None:
            trial.config = trial.restart_config["config"]
            trial.checkpoint = trial.restart_config["checkpoint"]
            trial.restart_config = None
        self._slots[trial.trial_id] = self.pool.start(trial)
        trial.status = RUNNING
        self._dirty = True
        hook = self.callbacks.on_trial_restore if restoring else self.callbacks.on_trial_start
        hook(iteration=self._iteration, trials=self.trials, trial=trial)

    # --- results ------------------------------------------------------------------------------

    def _process(self, replies: list[tuple[actors.Slot, list | BaseException]]) -> None:
        for slot, events in replies:
            self._iteration += 1
            trial = slot.trial
            if isinstance(events, BaseException):
                self._failed(slot, actors.describe(events), None, actor_died=True)
                continue
            ended = False
            for event in events:
                kind = event[0]
                if kind == "result" and slot.decision == CONTINUE:
                    self._on_result(slot, event[1], event[2])
                elif kind == "result":
                    trial.update_result(event[1])  # ran ahead of a stop: record, do not act
                    self.tensorboard.result(trial.trial_dir_name, {**event[1], "config": trial.config})
                    self._note_checkpoint(trial, event[1], event[2])
                elif kind == "checkpoint":
                    self._note_checkpoint(trial, {"training_iteration": event[2],
                                                  "time_total_s": trial.last_result.get("time_total_s", 0)},
                                          event[1])
                elif kind == "done":
                    self._ended(slot)
                    ended = True
                elif kind == "error":
                    self._failed(slot, event[1], event[2], actor_died=False)
                    ended = True
            if not ended:
                slot.poll()

    def _on_result(self, slot: actors.Slot, row: dict, checkpoint_path: str | None) -> None:
        trial = slot.trial
        self._check_metric(trial, row)
        trial.update_result(row)
        self.tensorboard.result(trial.trial_dir_name, {**row, "config": trial.config})
        self._note_checkpoint(trial, row, checkpoint_path)
        self.searcher.on_trial_result(trial.trial_id, row)
        decision = self.scheduler.on_trial_result(self, trial, row)
        if self.stopper is not None and self.stopper(trial.trial_id, row):
            decision = STOP
        self.callbacks.on_trial_result(iteration=self._iteration, trials=self.trials, trial=trial, result=row)
        if row.get("done"):
            decision = STOP
        if trial.restart_config is not None:
            decision = STOP
        if decision in (STOP, PAUSE):
            slot.request(decision)
        self._dirty = self._dirty or checkpoint_path is not None

    def _check_metric(self, trial: Trial, row: dict) -> None:
        metric = self.s.metric
        if metric is None or metric in row or _flat_has(row, metric):
            return
        user_keys = sorted(k for k in row if k not in _AUTO_KEYS)
        raise MetricNotReported(
            f"Trial {trial.trial_name} reported a result without the metric {metric!r} that "
            f"TuneConfig(metric=...) names; it reported {user_keys}. Report it with "
            f"tune.report({{{metric!r}: ...}}) or fix TuneConfig(metric=...)."
        )

    def _note_checkpoint(self, trial: Trial, row: dict, path: str | None) -> None:
        if path is None:
            return
        from solray.train._checkpoint import Checkpoint

        trial.checkpoint = Checkpoint(path, self.s.filesystem)
        trial.checkpoint_iteration = row.get("training_iteration", 0)
        trial.checkpoint_time = row.get("time_total_s", 0.0)
        self.callbacks.on_checkpoint(iteration=self._iteration, trials=self.trials, trial=trial,
                                     checkpoint=trial.checkpoint)

    def _ended(self, slot: actors.Slot) -> None:
        trial, decision = slot.trial, slot.decision
        self.pool.release(slot, reusable=True)
        del self._slots[trial.trial_id]
        if trial.restart_config is not None and not self._stop_all:
            trial.status = PENDING
            self._dirty = True
            if self.pool.fits(trial.resources):
                self._start(trial)
            return
        if decision == PAUSE and not self._stop_all:
            trial.status = PENDING if slot.resume_after_pause else PAUSED
            self._dirty = True
            return
        self._complete(trial, TERMINATED)

    def _failed(self, slot: actors.Slot, text: str, blob: bytes | None, actor_died: bool) -> None:
        trial = slot.trial
        self.pool.release(slot, reusable=not actor_died)
        del self._slots[trial.trial_id]
        trial.num_failures += 1
        max_failures = self.s.failure_config.max_failures
        if not self._stop_all and (max_failures == -1 or trial.num_failures <= max_failures):
            trial.status = PENDING  # retried from its latest checkpoint
            self._dirty = True
            return
        trial.error, trial.error_blob = text, blob
        StorageContext(self.s.storage_path, self.s.experiment_dir_name, trial.trial_dir_name,
                       storage_filesystem=self.s.filesystem).write_error(trial.exception())
        self._complete(trial, ERROR)
        if self.s.failure_config.fail_fast:
            self._stop_everything()
            if self.s.failure_config.fail_fast == "raise":
                raise trial.exception()

    def _complete(self, trial: Trial, status: str) -> None:
        trial.status = status
        self.tensorboard.trial_ended(trial.trial_dir_name)
        self._dirty = True
        error = status == ERROR
        self.searcher.on_trial_complete(trial.trial_id, trial.last_result or None, error=error)
        if error:
            self.scheduler.on_trial_error(self, trial)
            self.callbacks.on_trial_error(iteration=self._iteration, trials=self.trials, trial=trial)
        else:
            self.scheduler.on_trial_complete(self, trial, trial.last_result or None)
            self.callbacks.on_trial_complete(iteration=self._iteration, trials=self.trials, trial=trial)
        self.reporter.trial_finished(trial)

    # --- persistence and teardown -------------------------------------------------------------

    def _maybe_save(self, force: bool = False) -> None:
        if not self._dirty:
            return
        since = self.folder.seconds_since_save()
        if force or since >= _SAVE_EVERY_S or (since >= _SAVE_MIN_INTERVAL_S and self._status_changed()):
            self.save()

    def _status_changed(self) -> bool:
        statuses = tuple(t.status for t in self.trials)
        changed = statuses != getattr(self, "_saved_statuses", None)
        return changed

    def save(self) -> None:
        self._saved_statuses = tuple(t.status for t in self.trials)
        state = {"trials": [t.state() for t in self.trials], "searcher": self.searcher, "created": self.created,
                 "search_finished": self.search_finished, "run_id": self._run_id}
        try:
            self.folder.write_state(state)
        except Exception as e:  # noqa: BLE001 - a searcher that cannot be pickled: keep the trials
            state["searcher"] = None
            self.folder.write_state(state)
            actors.warn(f"could not save the searcher's state ({e!r}); a restore will not resume the search")
        self._dirty = False

    def _shutdown(self) -> None:
        for slot in list(self._slots.values()):
            trial = slot.trial
            self.pool.release(slot, reusable=False)
            if trial.status == RUNNING:
                trial.status = PENDING  # interrupted: a restore runs it again
        self._slots.clear()
        self.pool.shutdown()
        self.save()
        self.tensorboard.close()


def _flat_has(row: dict, metric: str) -> bool:
    node: Any = row
    for part in metric.split("/"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


_AUTO_KEYS = {
    "trial_id", "timestamp", "time_this_iter_s", "time_total_s", "time_since_restore", "iterations_since_restore",
    "pid", "hostname", "date", "done", "training_iteration", "checkpoint_dir_name", "config", "node_ip",
}

__all__ = ["MetricNotReported", "TuneController", "solray"]
