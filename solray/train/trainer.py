"""Ray's ``ray.train.trainer`` module path for ``BaseTrainer``."""

from solray.train.base_trainer import BaseTrainer, deep_merge

__all__ = ["BaseTrainer", "deep_merge"]
