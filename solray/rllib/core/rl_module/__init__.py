"""``RLModule`` and the specs that build it."""

from solray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from solray.rllib.core.rl_module.rl_module import (
    MultiRLModule,
    MultiRLModuleSpec,
    RLModule,
    RLModuleSpec,
    TorchRLModule,
)

__all__ = ["DefaultModelConfig", "MultiRLModule", "MultiRLModuleSpec", "RLModule", "RLModuleSpec", "TorchRLModule"]
