"""Algorithm checkpoints: a folder with the config, counters and each learner's state.

    rllib_checkpoint.json   what wrote it (class, format version)
    algorithm_state.pkl     cloudpickled config dict (mapping functions included), counters
    learner_state.pt        torch.save of module weights, optimizer and extra (target nets, KL coeff)

``save()`` returns an object with ``.checkpoint.path`` as Ray's does; ``from_checkpoint``
accepts a path, such an object or a Checkpoint.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from typing import Any

import cloudpickle
import torch

META_FILE = "rllib_checkpoint.json"
STATE_FILE = "algorithm_state.pkl"
LEARNER_FILE = "learner_state.pt"


class Checkpoint:
    """A checkpoint folder (Ray's ``ray.train.Checkpoint`` shape: ``.path``)."""

    def __init__(self, path: str) -> None:
        self.path = str(path)

    def __repr__(self) -> str:
        return f"Checkpoint(path={self.path!r})"

    def as_directory(self):
        import contextlib

        return contextlib.nullcontext(self.path)


def _checkpoint_type() -> type:
    try:
        from solray.train import Checkpoint as TrainCheckpoint
    except ImportError:
        return Checkpoint
    return TrainCheckpoint


class TrainingResult:
    """What ``Algorithm.save()`` returns: ``.checkpoint`` and the latest ``.metrics``."""

    def __init__(self, checkpoint: Any, metrics: dict) -> None:
        self.checkpoint = checkpoint
        self.metrics = metrics

    def __repr__(self) -> str:
        return f"TrainingResult(checkpoint={self.checkpoint!r})"


def make_result(path: str, metrics: dict) -> TrainingResult:
    cls = _checkpoint_type()
    try:
        checkpoint = cls(path=path)
    except TypeError:
        checkpoint = cls(path)
    return TrainingResult(checkpoint, metrics)


def resolve_path(where: Any) -> str:
    if isinstance(where, TrainingResult):
        where = where.checkpoint
    path = getattr(where, "path", where)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"Expected a checkpoint path or Checkpoint, got {type(where).__name__}")
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, STATE_FILE)):
        raise FileNotFoundError(f"{path!r} is not an RLlib algorithm checkpoint (no {STATE_FILE} in it)")
    return path


def write(path: str | None, algo_class: type, state: dict, learner_state: dict) -> str:
    path = os.fspath(path) if path is not None else tempfile.mkdtemp(prefix="solray-rllib-checkpoint-")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, META_FILE), "w") as f:
        json.dump({"type": "Algorithm", "checkpoint_version": "2.1", "format": "cloudpickle",
                   "algorithm_class": f"{algo_class.__module__}:{algo_class.__qualname__}"}, f)
    with open(os.path.join(path, STATE_FILE), "wb") as f:
        cloudpickle.dump(state, f)
    torch.save(learner_state, os.path.join(path, LEARNER_FILE))
    return path


def read(path: str) -> tuple[type, dict, dict]:
    with open(os.path.join(path, META_FILE)) as f:
        meta = json.load(f)
    module, _, qualname = meta["algorithm_class"].partition(":")
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    with open(os.path.join(path, STATE_FILE), "rb") as f:
        state = cloudpickle.load(f)
    learner_state = torch.load(os.path.join(path, LEARNER_FILE), weights_only=False)
    return cls, state, learner_state
