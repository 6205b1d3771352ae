"""Ray's ``ray.rllib.core.rl_module.torch.torch_rl_module`` path."""

from solray.rllib.core.rl_module.rl_module import TorchRLModule

__all__ = ["TorchRLModule"]
