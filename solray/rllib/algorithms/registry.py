"""Algorithm names -> classes (``tune.Tuner("PPO", ...)`` looks names up here)."""

from __future__ import annotations

import importlib

_ALGORITHMS = {
    "PPO": ("solray.rllib.algorithms.ppo", "PPO"),
    "DQN": ("solray.rllib.algorithms.dqn", "DQN"),
    "SAC": ("solray.rllib.algorithms.sac", "SAC"),
    "IMPALA": ("solray.rllib.algorithms.impala", "IMPALA"),
    "APPO": ("solray.rllib.algorithms.appo", "APPO"),
}


def get_algorithm_class(name: str, return_config: bool = False):
    """The Algorithm class called ``name`` (and its default config when ``return_config``)."""
    if name not in _ALGORITHMS:
        raise ValueError(f"Unknown RLlib algorithm {name!r}; known: {sorted(_ALGORITHMS)}")
    module, attr = _ALGORITHMS[name]
    cls = getattr(importlib.import_module(module), attr)
    return (cls, cls.get_default_config()) if return_config else cls


def algorithm_names() -> list[str]:
    return sorted(_ALGORITHMS)


ALGORITHMS = _ALGORITHMS
