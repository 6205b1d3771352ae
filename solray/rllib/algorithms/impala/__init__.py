"""``from ray.rllib.algorithms.impala import IMPALA, IMPALAConfig``."""

from solray.rllib.algorithms.impala.impala import IMPALA, IMPALAConfig

Impala = IMPALA  # Ray's alias

__all__ = ["IMPALA", "IMPALAConfig", "Impala"]
