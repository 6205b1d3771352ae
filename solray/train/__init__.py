"""Distributed training (Ray's ``ray.train``): Trainers run a training function on a group
of worker actors, wire the framework's collectives, shard data, and persist metrics and
checkpoints; ``report``/``get_context``/``get_checkpoint``/``get_dataset_shard`` are used
inside the training function."""

from solray.air.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from solray.air.result import Result
from solray.train._checkpoint import Checkpoint
from solray.train._internal.backend import BackendConfig
from solray.train._internal.controller import TrainingFailedError
from solray.train._session_api import get_checkpoint, get_context, get_dataset_shard, report
from solray.train.base_trainer import BaseTrainer
from solray.train.data_parallel_trainer import DataConfig, DataParallelTrainer

__all__ = [
    "BackendConfig",
    "BaseTrainer",
    "Checkpoint",
    "CheckpointConfig",
    "DataConfig",
    "DataParallelTrainer",
    "FailureConfig",
    "Result",
    "RunConfig",
    "ScalingConfig",
    "TrainingFailedError",
    "get_checkpoint",
    "get_context",
    "get_dataset_shard",
    "report",
]


def __getattr__(name: str):
    """``solray.train.torch`` / ``.xgboost`` / ``.lightgbm`` load on first use (they import
    their framework)."""
    if name in ("torch", "xgboost", "lightgbm"):
        import importlib

        return importlib.import_module(f"solray.train.{name}")
    raise AttributeError(f"module 'solray.train' has no attribute {name!r}")
