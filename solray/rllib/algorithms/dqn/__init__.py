"""``from ray.rllib.algorithms.dqn import DQN, DQNConfig``."""

from solray.rllib.algorithms.dqn.dqn import DQN, DQNConfig

__all__ = ["DQN", "DQNConfig"]
