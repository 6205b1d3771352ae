"""RLlib's algorithms: ``Algorithm``, ``AlgorithmConfig`` and PPO, APPO, IMPALA, DQN, SAC."""

from solray.rllib.algorithms.algorithm import Algorithm
from solray.rllib.algorithms.algorithm_config import AlgorithmConfig

__all__ = ["Algorithm", "AlgorithmConfig"]
