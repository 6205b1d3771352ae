"""Hyperparameter tuning (Ray's ``ray.tune``): run a trainable over a search space as
trials, each an actor with its own resources; search algorithms pick configs, schedulers
stop bad trials early, and the experiment can be restored after a crash.

    tuner = tune.Tuner(train_fn, param_space={"lr": tune.loguniform(1e-4, 1e-1)},
                       tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=20))
    best = tuner.fit().get_best_result()
"""

from __future__ import annotations

from typing import Any

from solray.air._internal import session as _session
from solray.air.config import CheckpointConfig, FailureConfig, RunConfig
from solray.air.result import Result
from solray.train._checkpoint import Checkpoint
from solray.tune import schedulers, search, stopper
from solray.tune._internal.trial import Trial
from solray.tune._internal.wrappers import with_parameters, with_resources
from solray.tune.callback import Callback
from solray.tune.execution.placement_groups import PlacementGroupFactory
from solray.tune.registry import register_env
from solray.tune.result_grid import ResultGrid
from solray.tune.search.sample import (
    choice,
    grid_search,
    lograndint,
    loguniform,
    qlograndint,
    qloguniform,
    qrandint,
    qrandn,
    quniform,
    randint,
    randn,
    sample_from,
    uniform,
)
from solray.tune.stopper import Stopper
from solray.tune.trainable import Trainable
from solray.tune.tune_config import TuneConfig
from solray.tune.tuner import Tuner


class TuneError(Exception):
    """An error of the Tune run itself (not of one trial)."""


def report(metrics: dict[str, Any], *, checkpoint: Checkpoint | None = None) -> None:
    """Report ``metrics`` (and optionally a ``Checkpoint``) from a function trainable."""
    _session.require("tune.report()").report(metrics, checkpoint=checkpoint)


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint this trial resumes from (after a restore, a retry, or a PBT exploit)."""
    return _session.require("tune.get_checkpoint()").get_checkpoint()


def get_context() -> Any:
    """The trial's context: ``get_trial_id()``, ``get_trial_name()``, ``get_trial_dir()``..."""
    return _session.require("tune.get_context()").get_context()


__all__ = [
    "Callback",
    "Checkpoint",
    "CheckpointConfig",
    "FailureConfig",
    "PlacementGroupFactory",
    "Result",
    "ResultGrid",
    "RunConfig",
    "Stopper",
    "Trainable",
    "Trial",
    "TuneConfig",
    "TuneError",
    "Tuner",
    "choice",
    "get_checkpoint",
    "get_context",
    "grid_search",
    "lograndint",
    "loguniform",
    "qlograndint",
    "qloguniform",
    "qrandint",
    "qrandn",
    "quniform",
    "randint",
    "register_env",
    "randn",
    "report",
    "sample_from",
    "schedulers",
    "search",
    "stopper",
    "uniform",
    "with_parameters",
    "with_resources",
]
