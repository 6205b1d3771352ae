"""Pieces Train and Tune share (Ray's ``ray.air``): run configuration and the session
through which a training loop or a trial reports metrics and checkpoints."""

from solray.air.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from solray.air.result import Result

__all__ = ["CheckpointConfig", "FailureConfig", "Result", "RunConfig", "ScalingConfig"]
