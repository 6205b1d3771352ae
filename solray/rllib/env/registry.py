"""Names given to env creators with ``register_env`` (re-exported as ``tune.register_env``).

The registry lives in the driver; an algorithm resolves its env name to a creator when it is
built and ships that creator to its EnvRunner actors, so workers never consult it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_ENV_CREATORS: dict[str, Callable[[Any], Any]] = {}


def register_env(name: str, env_creator: Callable[[Any], Any]) -> None:
    """Make ``name`` usable as ``config.environment(name)``; ``env_creator(env_config)`` builds the env."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_env: name must be a non-empty str, got {name!r}")
    if not callable(env_creator):
        raise TypeError(f"register_env: env_creator for {name!r} must be callable, got {type(env_creator).__name__}")
    _ENV_CREATORS[name] = env_creator


def registry_contains_env(name: str) -> bool:
    return name in _ENV_CREATORS


def get_env_creator(name: str) -> Callable[[Any], Any] | None:
    return _ENV_CREATORS.get(name)
