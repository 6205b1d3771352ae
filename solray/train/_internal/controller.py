"""The coordinator of one training run: starts the worker group, collects each round of
reports, commits checkpoints, and restarts the group from the latest checkpoint on failure.

It runs in the caller of ``fit()`` (or in a Tune trial) and holds no cluster resources.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import solray
from solray.air._internal import filesystems as fsu
from solray.air._internal.storage import StorageContext
from solray.air.result import Result
from solray.train._internal.checkpoint_manager import CheckpointManager
from solray.train._internal.progress import ProgressLine
from solray.train._internal.worker_group import WorkerGroup


class TrainingFailedError(RuntimeError):
    """Ray's error for a failed run. solray's ``fit()`` does not raise it: the cause is in
    ``Result.error``; kept so that code catching it still imports."""


class _WorkerFailure(Exception):
    pass


def _run_name(trainer_name: str) -> str:
    return f"{trainer_name}_{time.strftime('%Y-%m-%d_%H-%M-%S')}"


class TrainController:
    """Runs ``trainer`` (a DataParallelTrainer) to completion; ``tune_session`` is the Tune
    trial's session when the trainer runs as a Tune trainable."""

    def __init__(self, trainer, tune_session=None):
        self.trainer = trainer
        self.tune_session = tune_session
        run_config = trainer.run_config
        self.name = run_config.name or _run_name(type(trainer).__name__)
        self.failure_config = run_config.failure_config
        self.checkpoint_config = run_config.checkpoint_config
        if tune_session is None:
            self.storage = StorageContext(run_config.storage_path, self.name,
                                          storage_filesystem=run_config.storage_filesystem)
            self.trial_name = self.name
        else:
            self.storage = self._staging_storage(tune_session)
            self.trial_name = _tune_trial_name(tune_session, self.name)
        self.checkpoints = CheckpointManager(self.checkpoint_config, self.storage)
        self.progress = ProgressLine(type(trainer).__name__, run_config.verbose if tune_session is None else 0)
        self.iteration = 0
        self.rows: list[dict] = []
        self.metrics: dict | None = None
        self.started = time.monotonic()

    @staticmethod
    def _staging_storage(tune_session) -> StorageContext:
        """In a trial, Tune persists what is reported; workers stage checkpoints next to the
        trial's folder (shared by all nodes) or, without one, in a local temp folder."""
        storage = getattr(tune_session, "storage", None)
        if storage is not None:
            trial = fsu.join(storage.trial_dir_name or "", ".train_staging").lstrip("/")
            return StorageContext(storage.storage_path, storage.experiment_dir_name, trial,
                                  storage_filesystem=storage.storage_filesystem)
        return StorageContext(tempfile.mkdtemp(prefix="solray-train-"), "staging")

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> Result:
        trainer = self.trainer
        if self.tune_session is None:
            self.storage.make_run_dir()
            self.storage.write_params(trainer._param_dict_for_logging())
        self.next_index = self.storage.next_checkpoint_index()
        resume = trainer.resume_from_checkpoint
        if self.tune_session is not None and self.tune_session.get_checkpoint() is not None:
            resume = self.tune_session.get_checkpoint()
        failures, error = 0, None
        max_failures = self.failure_config.max_failures
        while True:
            start_from = self.checkpoints.latest or resume
            try:
                self._run_attempt(start_from)
                break
            except _WorkerFailure as e:
                cause = e.__cause__ or e
                failures += 1
                if max_failures != -1 and failures > max_failures:
                    error = cause
                    break
                self.progress.message(
                    f"worker failure {failures}/{'inf' if max_failures == -1 else max_failures}: "
                    f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}; restarting "
                    f"the group from {'the latest checkpoint' if self.checkpoints.latest or resume else 'scratch'}"
                )
            except (KeyboardInterrupt, SystemExit):
                self.progress.close()
                raise
            except BaseException as e:  # a setup error (or Tune stopping the trial): no retry
                error = e
                break
        self.progress.close()
        if self.tune_session is not None:
            if error is not None:
                raise error
            return None
        if error is not None:
            self.storage.write_error(error)
            first_line = (str(error).strip().splitlines() or [""])[0]
            print(f"[{type(self.trainer).__name__}] training failed ({type(error).__name__}: {first_line}); "
                  "the cause is in Result.error", file=sys.stderr, flush=True)
        self.storage.close()
        return self._result(error)

    def _result(self, error: BaseException | None) -> Result:
        import pandas as pd

        return Result(
            metrics=self.metrics,
            checkpoint=self.checkpoints.latest,
            error=error,
            path=self.storage.run_fs_path,
            metrics_dataframe=pd.DataFrame(self.rows),
            best_checkpoints=self.checkpoints.best_checkpoints(),
            config=self.trainer._param_dict_for_logging(),
            filesystem=self.storage.storage_filesystem,
        )

    def _run_attempt(self, checkpoint) -> None:
        trainer = self.trainer
        scaling = trainer.scaling_config
        pg = getattr(self.tune_session, "placement_group", None) if self.tune_session else None
        first_bundle = getattr(self.tune_session, "first_worker_bundle", 1) if pg is not None else 1
        shards = trainer._dataset_shards(scaling.num_workers, in_tune=self.tune_session is not None)
        group = WorkerGroup(scaling, pg=pg, first_bundle=first_bundle)
        backend_config = trainer._backend_config
        backend = backend_config.backend_cls()
        try:
            try:
                backend.on_start(group, backend_config)
                context_args = {
                    "experiment_name": self.name if self.tune_session is None else self.storage.experiment_dir_name,
                    "trial_name": self.trial_name,
                    "trial_id": getattr(self.tune_session, "trial_id", "") or self.trial_name,
                    "storage": self.storage,
                    "metadata": trainer.metadata,
                    "trial_resources": scaling,
                }
                train_fn = backend.wrap_train_fn(trainer._worker_function())
                solray.get([
                    w.start_training.remote(train_fn, context_args, checkpoint, shards[rank])
                    for rank, w in enumerate(group.workers)
                ])
            except solray.exceptions.RayActorError as e:
                raise _WorkerFailure() from e
            self._collect(group)
            backend.on_shutdown(group, backend_config)
        finally:
            group.shutdown()
            self.storage.clean_staged()

    def _collect(self, group: WorkerGroup) -> None:
        active = list(range(len(group.workers)))
        while active:
            results = self._next_round(group, active)
            reports = {rank: r for rank, r in results.items() if r[0] == "report"}
            active = sorted(reports)
            if reports:
                self._handle_round(reports)

    def _next_round(self, group: WorkerGroup, ranks: list[int]) -> dict[int, tuple]:
        """One result from each of ``ranks``; the first error fails the attempt at once."""
        refs = {group.workers[rank].next_result.remote(): rank for rank in ranks}
        pending = list(refs)
        out = {}
        while pending:
            ready, pending = solray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    out[refs[ref]] = solray.get(ref)
                except Exception as e:
                    raise _WorkerFailure() from e
        return out

    def _handle_round(self, reports: dict[int, tuple]) -> None:
        staged = [r[2] for _, r in sorted(reports.items()) if r[2] is not None]
        metrics = reports[min(reports)][1]
        self.iteration += 1
        checkpoint = None
        if staged:
            checkpoint = self.storage.commit_checkpoint(staged, self.next_index)
            self.next_index += 1
        now = time.monotonic()
        row = dict(metrics)
        if self.tune_session is not None:
            previous = self.checkpoints.latest
            if checkpoint is not None:
                self.checkpoints.kept = [(self.iteration, checkpoint, row)]
            self.tune_session.report(row, checkpoint=checkpoint)
            if checkpoint is not None and previous is not None:
                self.storage.delete_checkpoint(previous)  # Tune has its own copy
            return
        row.update({
            "training_iteration": self.iteration,
            "time_total_s": now - self.started,
            "timestamp": int(time.time()),
            "checkpoint_dir_name": os.path.basename(checkpoint.path) if checkpoint else None,
        })
        if checkpoint is not None:
            self.checkpoints.register(checkpoint, row)
        self.metrics = row
        self.rows.append(row)
        self.storage.write_result(row)
        self.progress.update(self.iteration, metrics, now - self.started)
        for callback in self.trainer.run_config.callbacks or []:
            if hasattr(callback, "on_trial_result"):  # Tune-style callbacks; no Trial object here
                callback.on_trial_result(iteration=self.iteration, trials=[], trial=None, result=row)


def _tune_trial_name(tune_session, default: str) -> str:
    context = None
    try:
        context = tune_session.get_context()
    except NotImplementedError:
        pass
    getter = getattr(context, "get_trial_name", None)
    return getter() if getter else default


__all__ = ["TrainController", "TrainingFailedError"]
