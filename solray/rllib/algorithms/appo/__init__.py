"""``from ray.rllib.algorithms.appo import APPO, APPOConfig``."""

from solray.rllib.algorithms.appo.appo import APPO, APPOConfig

__all__ = ["APPO", "APPOConfig"]
