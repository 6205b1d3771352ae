"""Ray's ``ray.rllib.core.rl_module.torch`` path."""

from solray.rllib.core.rl_module.rl_module import TorchRLModule

__all__ = ["TorchRLModule"]
