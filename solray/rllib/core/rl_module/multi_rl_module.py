"""Ray's ``ray.rllib.core.rl_module.multi_rl_module`` path."""

from solray.rllib.core.rl_module.rl_module import MultiRLModule, MultiRLModuleSpec

__all__ = ["MultiRLModule", "MultiRLModuleSpec"]
