"""Names given to env creators with ``register_env`` (re-exported as ``tune.register_env``).

A creator is kept in this process and, once a cluster is connected, in the cluster's
key-value store too, so a process that did not register it (a Tune trial's actor building
an algorithm) finds it by name, as Ray's registry does. Names registered before ``init()``
reach the cluster when a Tuner starts (``publish_all``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cloudpickle

KV_NAMESPACE = "rllib_env_registry"

_ENV_CREATORS: dict[str, Callable[[Any], Any]] = {}


def register_env(name: str, env_creator: Callable[[Any], Any]) -> None:
    """Make ``name`` usable as ``config.environment(name)``; ``env_creator(env_config)`` builds the env."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_env: name must be a non-empty str, got {name!r}")
    if not callable(env_creator):
        raise TypeError(f"register_env: env_creator for {name!r} must be callable, got {type(env_creator).__name__}")
    _ENV_CREATORS[name] = env_creator
    _publish(name, env_creator)


def publish_all() -> None:
    """Put every creator registered in this process into the connected cluster."""
    for name, creator in _ENV_CREATORS.items():
        _publish(name, creator)


def registry_contains_env(name: str) -> bool:
    return get_env_creator(name) is not None


def get_env_creator(name: str) -> Callable[[Any], Any] | None:
    creator = _ENV_CREATORS.get(name)
    if creator is None:
        worker = _connected_worker()
        raw = worker.control_call("kv_get", [KV_NAMESPACE, name.encode()]) if worker is not None else None
        if raw is not None:
            creator = _ENV_CREATORS[name] = cloudpickle.loads(raw)
    return creator


def _publish(name: str, creator: Callable[[Any], Any]) -> None:
    worker = _connected_worker()
    if worker is not None:
        worker.control_call("kv_put", [KV_NAMESPACE, name.encode(), cloudpickle.dumps(creator), True])


def _connected_worker():
    from solray._private.worker import state

    return state.get_core_worker(required=False)
