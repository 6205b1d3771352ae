"""Ray's ``ray.rllib.policy`` path: ``PolicySpec`` for multi-agent configs."""

from solray.rllib.policy.policy import PolicySpec

__all__ = ["PolicySpec"]
