"""RLlib callbacks: ``from ray.rllib.callbacks.callbacks import RLlibCallback``."""

from solray.rllib.callbacks.callbacks import RLlibCallback

__all__ = ["RLlibCallback"]
