"""``from ray.rllib.algorithms.ppo import PPO, PPOConfig``."""

from solray.rllib.algorithms.ppo.ppo import PPO, PPOConfig

__all__ = ["PPO", "PPOConfig"]
