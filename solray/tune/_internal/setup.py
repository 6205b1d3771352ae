"""The Tuner's settings resolved once per run: the trainable and its resources, where the
experiment lives, and how each trial is named and specified for its actor."""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from typing import Any

import solray
from solray.air._internal import filesystems as fsu
from solray.air._internal.storage import DEFAULT_STORAGE_PATH
from solray.air.config import RunConfig
from solray.tune._internal.protocol import TrialSpec
from solray.tune._internal.trial import Trial
from solray.tune._internal.wrappers import resources_of
from solray.tune.schedulers.pbt import PopulationBasedTraining
from solray.tune.schedulers.trial_scheduler import TrialScheduler
from solray.tune.stopper import DictStopper, Stopper
from solray.tune.trainable import Trainable
from solray.tune.tune_config import TuneConfig


def resolve_trainable(trainable: Any) -> tuple[Any, str]:
    """``(function or Trainable class, name)``; a Trainer becomes its function trainable."""
    if trainable is None:
        raise ValueError("Tuner needs a trainable: a function, a tune.Trainable class or a Trainer")
    if hasattr(trainable, "as_trainable") and not inspect.isclass(trainable):
        return trainable.as_trainable(), type(trainable).__name__
    if isinstance(trainable, str):
        # RLlib's algorithms by name ("PPO"), as Ray's registry has them.
        from solray.rllib.algorithms.registry import algorithm_names, get_algorithm_class

        if trainable not in algorithm_names():
            raise ValueError(f"Tuner({trainable!r}): no trainable is registered under that name; known: "
                             f"{algorithm_names()} (or pass the function or class itself)")
        return get_algorithm_class(trainable), trainable
    if inspect.isclass(trainable):
        if not issubclass(trainable, Trainable):
            raise TypeError(f"Tuner({trainable.__name__}): a class trainable must subclass tune.Trainable")
        return trainable, trainable.__name__
    if not callable(trainable):
        raise TypeError(f"Tuner({trainable!r}): a trainable must be a function, a tune.Trainable class or a Trainer")
    try:
        params = [p for p in inspect.signature(trainable).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = [None]
    if len(params) != 1:
        raise ValueError(
            f"Tuner: the function trainable {getattr(trainable, '__name__', trainable)!r} must take exactly one "
            f"argument (the config dict); it takes {len(params)} without defaults "
            "(use tune.with_parameters to pass more)"
        )
    return trainable, getattr(trainable, "__name__", "trainable")


@dataclasses.dataclass
class Setup:
    trainable: Any
    trainable_name: str
    tune_config: TuneConfig
    run_config: RunConfig
    scheduler: TrialScheduler
    stopper: Stopper | None
    experiment_dir_name: str
    storage_path: str
    filesystem: Any
    experiment_fs_path: str
    trainable_ref: Any = None
    _limit: int | None = None
    #: CPUs trials must leave free: a Trainer's datasets run their tasks outside the
    #: trials' placement groups, and would wait forever if trials held every CPU.
    reserved_cpus: float = 0.0

    @classmethod
    def build(cls, trainable: Any, tune_config: TuneConfig, run_config: RunConfig, scheduler: TrialScheduler,
              stopper: Stopper | None) -> Setup:
        fn, name = resolve_trainable(trainable)
        # A Trainer whose datasets were split up front (in this driver) runs no Data tasks
        # beside its trials, so nothing needs a CPU kept free.
        needs_cpu = getattr(trainable, "datasets", None) and not getattr(fn, "_solray_datasets_prepared", False)
        reserved = 1.0 if needs_cpu and hasattr(trainable, "as_trainable") else 0.0
        storage_path = os.path.expanduser(run_config.storage_path or DEFAULT_STORAGE_PATH)
        fs, fs_path = fsu.resolve(storage_path, run_config.storage_filesystem)
        experiment = run_config.name or f"{name}_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
        return cls(fn, name, tune_config, run_config, scheduler, stopper, experiment, storage_path, fs,
                   fsu.join(fs_path, experiment), reserved_cpus=reserved)

    # --- what the controller reads --------------------------------------------------------------

    @property
    def metric(self) -> str | None:
        return self.tune_config.metric

    @property
    def num_samples(self) -> int:
        return self.tune_config.num_samples

    @property
    def num_samples_limit(self) -> int | None:
        """How many trials the searcher may create (None: as many as it gives)."""
        return self._limit

    @property
    def max_concurrent_trials(self) -> int | None:
        return self.tune_config.max_concurrent_trials

    @property
    def time_budget_s(self) -> float | None:
        return self.tune_config.time_budget_s

    @property
    def failure_config(self) -> Any:
        return self.run_config.failure_config

    @property
    def reuse_actors(self) -> bool:
        reuse = self.tune_config.reuse_actors
        if reuse is None:
            return not inspect.isclass(self.trainable)  # Ray: yes for functions, no for classes
        return bool(reuse)

    @property
    def synchronous(self) -> bool:
        """Whether each result must be decided on before the trial goes on."""
        return self.scheduler._needs_each_result or (
            self.stopper is not None and not isinstance(self.stopper, DictStopper))

    def prepare(self, limit: int | None) -> None:
        self._limit = limit
        self.trainable_ref = solray.put(self.trainable)

    def make_trial(self, trial_id: str, config: dict, index: int) -> Trial:
        resources = resources_of(self.trainable, config)
        trial = Trial(trial_id, config, f"{self.trainable_name}_{trial_id}", "", resources)
        creator = self.tune_config.trial_name_creator
        if creator is not None:
            trial.trial_name = str(creator(trial))
        dir_creator = self.tune_config.trial_dirname_creator
        trial.trial_dir_name = str(dir_creator(trial)) if dir_creator is not None else trial.trial_name
        trial.path = fsu.join(self.experiment_fs_path, trial.trial_dir_name)
        return trial

    def spec_for(self, trial: Trial) -> TrialSpec:
        checkpoint_config = self.run_config.checkpoint_config
        frequency = checkpoint_config.checkpoint_frequency
        if isinstance(self.scheduler, PopulationBasedTraining) and inspect.isclass(self.trainable) and not frequency:
            frequency = 1  # PBT copies checkpoints: class trainables keep one current
        restoring = trial.checkpoint is not None
        return TrialSpec(
            trial_id=trial.trial_id, trial_name=trial.trial_name, config=trial.config,
            experiment_dir_name=self.experiment_dir_name, trial_dir_name=trial.trial_dir_name,
            storage_path=self.storage_path, storage_filesystem=self.run_config.storage_filesystem,
            restore_path=trial.checkpoint.path if restoring else None,
            iteration_offset=trial.checkpoint_iteration if restoring else 0,
            time_offset=trial.checkpoint_time if restoring else 0.0,
            synchronous=self.synchronous,
            stop=self.stopper.criteria if isinstance(self.stopper, DictStopper) else None,
            checkpoint_config=checkpoint_config, checkpoint_frequency=frequency,
            checkpoint_at_end=bool(checkpoint_config.checkpoint_at_end),
            resources=trial.resources,
        )
