"""``Tuner``: run a trainable over a search space, and restore an interrupted run."""

from __future__ import annotations

import copy
import os
import sys
from typing import Any

import solray
from solray.air._internal import filesystems as fsu
from solray.air._internal.storage import StorageContext
from solray.air.config import RunConfig
from solray.air.result import result_from_storage
from solray.tune._internal.controller import TuneController
from solray.tune._internal.experiment_state import ExperimentFolder
from solray.tune._internal.progress import ProgressReporter
from solray.tune._internal.setup import Setup
from solray.tune._internal.trial import ERROR, PAUSED, PENDING, RUNNING, TERMINATED, Trial
from solray.tune.callback import CallbackList
from solray.tune.result_grid import ResultGrid
from solray.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler
from solray.tune.search.searcher import Searcher
from solray.tune.search.variant_generator import BasicVariantGenerator, count_grid, validate_space
from solray.tune.stopper import as_stopper
from solray.tune.tune_config import TuneConfig


class Tuner:
    """``Tuner(trainable, param_space=..., tune_config=TuneConfig(...), run_config=RunConfig(...))``
    then ``fit()`` -> ``ResultGrid``. ``trainable`` is a function of the config, a
    ``tune.Trainable`` subclass, or a Trainer (``param_space`` merges into its arguments)."""

    def __init__(self, trainable: Any = None, *, param_space: dict | None = None,
                 tune_config: TuneConfig | None = None, run_config: RunConfig | None = None):
        self._trainable = trainable
        if hasattr(param_space, "to_dict") and not isinstance(param_space, dict):
            param_space = param_space.to_dict()  # an RLlib AlgorithmConfig
        self._param_space = param_space if param_space is not None else {}
        validate_space(self._param_space)
        self._tune_config = tune_config or TuneConfig()
        if not isinstance(self._tune_config, TuneConfig):
            raise TypeError(f"Tuner(tune_config=...): expected a TuneConfig, got {type(tune_config).__name__}")
        if run_config is None:
            run_config = getattr(trainable, "run_config", None) if hasattr(trainable, "as_trainable") else None
        self._run_config = copy.copy(run_config) if run_config is not None else RunConfig()
        if not isinstance(self._run_config, RunConfig):
            raise TypeError(f"Tuner(run_config=...): expected a RunConfig, got {type(run_config).__name__}")
        self._searcher, self._scheduler = _check_algorithms(self._tune_config, self._param_space)
        self._stopper = as_stopper(self._run_config.stop)
        self._restored: dict | None = None
        self._results: ResultGrid | None = None

    # --- restore ------------------------------------------------------------------------------

    @classmethod
    def restore(cls, path: str | os.PathLike, trainable: Any, resume_unfinished: bool = True,
                resume_errored: bool = False, restart_errored: bool = False, param_space: dict | None = None,
                storage_filesystem: Any = None, _resume_config: Any = None) -> Tuner:
        """A Tuner that continues the experiment at ``path``: finished trials are kept,
        unfinished ones resume from their latest checkpoint, errored ones resume
        (``resume_errored``) or start over (``restart_errored``) or stay failed."""
        fs, fs_path = fsu.resolve(os.fspath(path), storage_filesystem)
        folder = ExperimentFolder(fs, fs_path)
        if not folder.can_restore():
            raise ValueError(f"Tuner.restore: no experiment to restore at {os.fspath(path)!r} "
                             f"(it has no {fsu.join(fs_path, 'tuner.pkl')})")
        settings = folder.read_settings()
        run_config = copy.copy(settings["run_config"])
        parent, _, name = os.fspath(path).rstrip("/").rpartition("/")
        run_config.storage_path, run_config.name = parent or "/", name
        run_config.storage_filesystem = storage_filesystem
        tuner = cls(trainable, param_space=param_space if param_space is not None else settings["param_space"],
                    tune_config=settings["tune_config"], run_config=run_config)
        tuner._restored = {"state": folder.read_state() or {"trials": [], "searcher": None, "created": 0,
                                                            "search_finished": False},
                           "resume_unfinished": resume_unfinished, "resume_errored": resume_errored,
                           "restart_errored": restart_errored}
        return tuner

    @classmethod
    def can_restore(cls, path: str | os.PathLike, storage_filesystem: Any = None) -> bool:
        """Whether ``path`` holds an experiment that ``restore`` can continue."""
        try:
            fs, fs_path = fsu.resolve(os.fspath(path), storage_filesystem)
        except Exception:  # not a path any filesystem knows
            return False
        return ExperimentFolder(fs, fs_path).can_restore()

    # --- fit ----------------------------------------------------------------------------------

    def fit(self) -> ResultGrid:
        """Run every trial (as many at once as the cluster holds); returns their results.
        A failing trial is recorded in the grid, not raised."""
        if not solray.is_initialized():
            solray.init()
        envs = sys.modules.get("solray.rllib.env.registry")
        if envs is not None:  # envs registered before init(): trials look them up by name
            envs.publish_all()
        tc = self._tune_config
        setup = Setup.build(self._trainable, tc, self._run_config, self._scheduler, self._stopper)
        folder = ExperimentFolder(setup.filesystem, setup.experiment_fs_path)
        trials, created, finished = self._restored_trials(setup)
        searcher = self._searcher
        if self._restored and self._restored["state"].get("searcher") is not None:
            searcher = self._restored["state"]["searcher"]
        if not self._restored:
            self._save_settings(folder)
        limit = _trial_limit(searcher, tc, self._param_space)
        setup.prepare(limit)
        callbacks = CallbackList(self._run_config.callbacks)
        verbose = 1 if self._run_config.verbose is None else int(self._run_config.verbose)
        total = limit if limit is not None else None
        reporter = ProgressReporter(tc.metric, tc.mode, verbose, total)
        controller = TuneController(setup=setup, trials=trials, searcher=searcher, scheduler=self._scheduler,
                                    stopper=self._stopper, reporter=reporter, callbacks=callbacks, folder=folder,
                                    created=created)
        controller.search_finished = finished
        controller.run()
        self._results = self._collect(setup, controller.trials)
        return self._results

    def get_results(self) -> ResultGrid:
        if self._results is None:
            raise RuntimeError("Tuner.get_results(): call fit() first (or restore and fit)")
        return self._results

    def _save_settings(self, folder: ExperimentFolder) -> None:
        run_config = copy.copy(self._run_config)
        settings = {"param_space": self._param_space, "tune_config": self._tune_config, "run_config": run_config}
        try:
            folder.write_settings(settings)
        except Exception:  # callbacks or a progress reporter that cannot be pickled
            run_config.callbacks, run_config.progress_reporter = None, None
            folder.write_settings(settings)

    def _restored_trials(self, setup: Setup) -> tuple[list[Trial], int, bool]:
        if not self._restored:
            return [], 0, False
        info = self._restored
        state = info["state"]
        trials = []
        for trial_state in state["trials"]:
            trial = Trial.from_state(trial_state, setup.filesystem)
            trial.path = fsu.join(setup.experiment_fs_path, trial.trial_dir_name)
            if trial.status in (RUNNING, PENDING, PAUSED):
                trial.status = PENDING if info["resume_unfinished"] else TERMINATED
            elif trial.status == ERROR and (info["resume_errored"] or info["restart_errored"]):
                trial.status, trial.error, trial.error_blob, trial.num_failures = PENDING, None, None, 0
                if info["restart_errored"]:
                    trial.checkpoint, trial.checkpoint_iteration, trial.checkpoint_time = None, 0, 0.0
                _clear_error_files(setup, trial)
            trials.append(trial)
        finished = state["search_finished"] or not info["resume_unfinished"]
        return trials, state["created"], finished

    def _collect(self, setup: Setup, trials: list[Trial]) -> ResultGrid:
        results = []
        for trial in trials:
            storage = StorageContext(setup.storage_path, setup.experiment_dir_name, trial.trial_dir_name,
                                     storage_filesystem=setup.run_config.storage_filesystem)
            result = result_from_storage(storage, error=trial.exception())
            result.config = trial.config
            if result.metrics is None and trial.last_result:
                result.metrics = dict(trial.last_result)
            results.append(result)
        return ResultGrid(results, setup.experiment_fs_path, self._tune_config.metric, self._tune_config.mode,
                          setup.filesystem, statuses=[t.status for t in trials])


def _clear_error_files(setup: Setup, trial: Trial) -> None:
    from solray.air._internal.storage import ERROR_PICKLE_FILE, ERROR_TEXT_FILE

    fs = setup.filesystem
    for name in (ERROR_TEXT_FILE, ERROR_PICKLE_FILE):
        path = fsu.join(trial.path, name)
        if fsu.exists(fs, path):
            fs.delete_file(path)


def _check_algorithms(tc: TuneConfig, param_space: dict) -> tuple[Searcher, TrialScheduler]:
    """The searcher and scheduler, given the Tuner's metric and mode; errors before any
    trial starts when they lack what they need."""
    searcher = tc.search_alg if tc.search_alg is not None else BasicVariantGenerator()
    if not isinstance(searcher, Searcher):
        raise TypeError(f"TuneConfig(search_alg=...): expected a tune Searcher, got {type(searcher).__name__}")
    scheduler = tc.scheduler if tc.scheduler is not None else FIFOScheduler()
    if not isinstance(scheduler, TrialScheduler):
        raise TypeError(f"TuneConfig(scheduler=...): expected a TrialScheduler, got {type(scheduler).__name__}")
    searcher.set_search_properties(tc.metric, tc.mode, param_space, num_samples=tc.num_samples)
    scheduler.set_search_properties(tc.metric, tc.mode)
    if not isinstance(scheduler, FIFOScheduler):
        scheduler._require_metric()
    if (scheduler.metric and tc.metric is None) or (scheduler.mode and tc.mode is None):
        # A metric given to the scheduler only is the experiment's metric too (as in Ray).
        tc.metric = tc.metric or scheduler.metric
        tc.mode = tc.mode or scheduler.mode
    return searcher, scheduler


def _trial_limit(searcher: Searcher, tc: TuneConfig, param_space: dict) -> int | None:
    if isinstance(searcher, BasicVariantGenerator):
        return searcher.total_samples
    if tc.num_samples == -1:
        return None
    return tc.num_samples * count_grid(param_space)


__all__ = ["Tuner"]
