"""``from ray.rllib.algorithms.sac import SAC, SACConfig``."""

from solray.rllib.algorithms.sac.sac import SAC, SACConfig

__all__ = ["SAC", "SACConfig"]
