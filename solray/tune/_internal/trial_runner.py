"""The trial actor: runs one trial at a time (and another after it, when reused), in a
thread, and hands results to the driver in batches through ``poll``.

A function trainable reports through the Tune session (``tune.report`` or
``train.report``); a ``Trainable`` class is stepped in a loop. Each result is written to
the trial folder here (result.json, progress.csv, TensorBoard; checkpoints persisted
atomically) so the driver only decides. In synchronous mode ``report`` waits until the
driver has seen the result and answered (so early stopping is exact); otherwise the
trial runs ahead and a STOP takes effect at its next report.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import tempfile
import threading
import time
import traceback
from typing import Any

from solray.air._internal import session as air_session
from solray.air._internal.storage import StorageContext
from solray.tune._internal.protocol import CONTINUE, PAUSE, STOP, TrialSpec
from solray.tune.trainable import Trainable

_DICT_CHECKPOINT = "_dict_checkpoint.pkl"


class _TrialStorage(StorageContext):
    """The trial folder as the actor writes it: results and checkpoints. TensorBoard
    events are written by the driver (tensorboardX imports torch, seconds per process)."""

    def _write_tensorboard(self, flat: dict, step: Any) -> None:
        pass


class _StopTrial(BaseException):
    """Unwinds a function trainable the driver stopped (not an Exception: user code that
    catches ``Exception`` must not swallow it)."""


class TuneSession(air_session.Session):
    """What ``tune.report``/``train.report``/``get_checkpoint``/``get_context`` reach in a trial."""

    def __init__(self, run: _Run):
        self._run = run
        self.placement_group = run.spec.placement_group
        self.first_worker_bundle = run.spec.first_worker_bundle

    @property
    def storage(self) -> StorageContext:
        return self._run.storage

    def report(self, metrics: dict, checkpoint: Any = None, checkpoint_dir_name: str | None = None) -> None:
        if self._run.report(metrics, checkpoint) != CONTINUE:
            raise _StopTrial()

    def get_checkpoint(self) -> Any:
        return self._run.restore_checkpoint

    def get_context(self) -> Any:
        return self._run.context()

    @property
    def trial_id(self) -> str:
        return self._run.spec.trial_id


class _Run:
    """One attempt at one trial inside the actor."""

    def __init__(self, trainable: Any, spec: TrialSpec, reused_instance: Trainable | None):
        self.trainable = trainable
        self.spec = spec
        self.storage = _TrialStorage(spec.storage_path, spec.experiment_dir_name, spec.trial_dir_name,
                                     storage_filesystem=spec.storage_filesystem)
        self.storage.make_run_dir()
        self.storage.write_params(spec.config)
        self.restore_checkpoint = _checkpoint(spec.restore_path, self.storage.storage_filesystem)
        self.instance = reused_instance
        self._cond = threading.Condition()
        self._events: list[tuple] = []
        self._decision = CONTINUE
        self._unacked = 0
        self._acks = 0
        self._stopping = False
        self.iteration = spec.iteration_offset
        self._iterations_since_restore = 0
        self._start = self._last = time.time()
        self._checkpoint_index: int | None = None
        self._manager = None
        self.thread = threading.Thread(target=self._main, name=f"trial-{spec.trial_id}", daemon=True)

    def context(self) -> Any:
        from solray.train._internal.session import TrainContext, WorkerInfo

        return TrainContext(WorkerInfo(0, 0, 0, 1, 1), self.spec.experiment_dir_name, self.spec.trial_name,
                            self.spec.trial_id, self.storage, trial_resources=self.spec.resources)

    # --- the trial's thread -------------------------------------------------------------------

    def _main(self) -> None:
        session = TuneSession(self)
        air_session.install(session)
        try:
            if isinstance(self.trainable, type) and issubclass(self.trainable, Trainable):
                self._run_class()
            else:
                self._run_function()
            self._emit(("done", None))
        except _StopTrial:
            self._emit(("done", None))
        except BaseException as error:  # noqa: BLE001 - every failure is the trial's result
            self._emit(("error", _describe(error), _pickled(error)))
        finally:
            air_session.uninstall(session)
            self.storage.close()

    def _run_function(self) -> None:
        final = self.trainable(dict(self.spec.config))
        if isinstance(final, dict) and not self._stopping:
            self.report(final, None)  # a returned dict is the last result, as in Ray

    def _run_class(self) -> None:
        spec = self.spec
        instance = self.instance
        if instance is None or not instance.reset_config(dict(spec.config)):
            if instance is not None:
                instance.cleanup()
            instance = self.trainable(spec.config, trial_id=spec.trial_id, trial_name=spec.trial_name,
                                      logdir=self.storage.run_fs_path, trial_resources=spec.resources)
        else:
            instance.config = dict(spec.config)
        self.instance = instance
        instance._iteration = self.iteration
        if self.restore_checkpoint is not None:
            with self.restore_checkpoint.as_directory() as folder:
                instance.load_checkpoint(_load_saved(folder))
        frequency, at_end = spec.checkpoint_frequency, spec.checkpoint_at_end
        while True:
            metrics = instance.step()
            if not isinstance(metrics, dict):
                raise TypeError(f"{type(instance).__name__}.step() must return a dict, got {type(metrics).__name__}")
            instance._iteration += 1
            done = bool(metrics.get("done"))
            want = metrics.get("should_checkpoint") or (frequency and instance._iteration % frequency == 0) or (
                done and at_end)
            checkpoint = self._save(instance) if want else None
            decision = self.report(metrics, checkpoint)
            if decision != CONTINUE or done:
                if checkpoint is None and (decision == PAUSE or at_end):
                    self._emit(("checkpoint", self._persist(self._save(instance), metrics), self.iteration))
                return

    def _save(self, instance: Trainable) -> Any:
        from solray.train._checkpoint import Checkpoint

        folder = tempfile.mkdtemp(prefix="solray-trial-ckpt-")
        saved = instance.save_checkpoint(folder)
        if isinstance(saved, dict):
            with open(os.path.join(folder, _DICT_CHECKPOINT), "wb") as f:
                pickle.dump(saved, f)
        return Checkpoint(folder)

    # --- reporting (called from the trial's thread) -------------------------------------------

    def report(self, metrics: dict, checkpoint: Any) -> str:
        if self._stopping:
            return STOP
        if not isinstance(metrics, dict):
            raise TypeError(f"tune.report: metrics must be a dict, got {type(metrics).__name__}")
        now = time.time()
        self.iteration += 1
        self._iterations_since_restore += 1
        row = dict(metrics)
        spec = self.spec
        row.setdefault("training_iteration", self.iteration)
        row.update(
            trial_id=spec.trial_id, timestamp=int(now), time_this_iter_s=now - self._last,
            time_total_s=spec.time_offset + now - self._start, time_since_restore=now - self._start,
            iterations_since_restore=self._iterations_since_restore, pid=os.getpid(),
            hostname=_HOSTNAME, date=time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now)),
        )
        row.setdefault("done", False)
        self._last = now
        path = self._persist(checkpoint, row) if checkpoint is not None else None
        row["checkpoint_dir_name"] = os.path.basename(path) if path else None
        self.storage.write_result({**row, "config": spec.config})
        stop_here = _meets(spec.stop, row)
        with self._cond:
            self._events.append(("result", row, path))
            self._cond.notify_all()
            if spec.synchronous:
                seq = self._unacked = self._unacked + 1
                while self._acks < seq and not self._stopping:
                    self._cond.wait()
            if self._decision != CONTINUE:
                return self._decision
            return STOP if self._stopping or stop_here else CONTINUE

    def _persist(self, checkpoint: Any, metrics: dict) -> str:
        if self._checkpoint_index is None:
            self._checkpoint_index = self.storage.next_checkpoint_index()
            from solray.train._internal.checkpoint_manager import CheckpointManager

            self._manager = CheckpointManager(self.spec.checkpoint_config, self.storage)
        if os.path.dirname(checkpoint.path.rstrip("/")) == self.storage.run_fs_path.rstrip("/"):
            persisted = checkpoint  # already in this trial's folder (a Trainer put it there)
        else:
            persisted = self.storage.persist_checkpoint(checkpoint, self._checkpoint_index)
            if checkpoint.path.startswith(tempfile.gettempdir() + "/solray-trial-ckpt-"):
                shutil.rmtree(checkpoint.path, ignore_errors=True)
        self._checkpoint_index += 1
        try:
            self._manager.register(persisted, metrics)
        except KeyError:
            pass  # the score attribute is missing: keep it, the driver reports the metric problem
        return persisted.path

    def _emit(self, event: tuple) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    # --- the driver's side --------------------------------------------------------------------

    def poll(self, decision: str | None, timeout: float) -> list[tuple]:
        with self._cond:
            if decision is not None:
                self._decision = decision
                if decision != CONTINUE:
                    self._stopping = True
                self._acks = self._unacked
                self._cond.notify_all()
            deadline = time.monotonic() + timeout
            while not self._events:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
            events, self._events = self._events, []
            return events

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()


class TrialRunner:
    """The actor class (made remote by the controller with each trial's resources)."""

    def __init__(self) -> None:
        self._run: _Run | None = None

    def start(self, trainable: Any, spec: TrialSpec, timeout: float = 1.0) -> list[tuple]:
        """Start a trial and return its first events (the first poll: a threaded actor
        may run a separate poll call before this one)."""
        previous = self._run
        if previous is not None:
            previous.stop()
            previous.thread.join(timeout=30)
        instance = previous.instance if previous is not None and spec.reuse_instance else None
        self._run = _Run(trainable, spec, instance)
        self._run.thread.start()
        return self._run.poll(None, timeout)

    def poll(self, decision: str | None = None, timeout: float = 1.0) -> list[tuple]:
        if self._run is None:
            return [("error", "the trial actor has no trial to run", None)]
        return self._run.poll(decision, timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the current trial; True once its thread has ended."""
        run = self._run
        if run is None:
            return True
        run.stop()
        run.thread.join(timeout)
        return not run.thread.is_alive()

    def shutdown(self, timeout: float = 10.0) -> None:
        """End the trial (if any) and clean up a class trainable."""
        self.stop(timeout=timeout)
        if self._run is not None and self._run.instance is not None:
            self._run.instance.cleanup()


def _checkpoint(path: str | None, filesystem: Any) -> Any:
    if path is None:
        return None
    from solray.train._checkpoint import Checkpoint

    return Checkpoint(path, filesystem)


def _load_saved(folder: str) -> Any:
    dict_file = os.path.join(folder, _DICT_CHECKPOINT)
    if os.path.exists(dict_file):
        with open(dict_file, "rb") as f:
            return pickle.load(f)
    return folder


def _meets(stop: dict | None, row: dict) -> bool:
    return bool(stop) and any(key in row and row[key] >= value for key, value in stop.items())


def _describe(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def _pickled(error: BaseException) -> bytes | None:
    try:
        import cloudpickle

        return cloudpickle.dumps(error)
    except Exception:  # an exception that cannot travel: the text describes it
        return None


_HOSTNAME = socket.gethostname()
