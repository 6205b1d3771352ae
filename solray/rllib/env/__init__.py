"""Environments: ``MultiAgentEnv``, ``EnvContext`` and the ``register_env`` registry.

Names load on first use, so ``solray.tune`` can re-export ``register_env`` without gymnasium.
"""

from __future__ import annotations

from solray.rllib._internal.lazy import lazy_getattr

_EXPORTS = {
    "EnvContext": "solray.rllib.env.env_context",
    "MultiAgentEnv": "solray.rllib.env.multi_agent_env",
    "make_multi_agent": "solray.rllib.env.multi_agent_env",
    "register_env": "solray.rllib.env.registry",
}


__getattr__ = lazy_getattr("solray.rllib.env", _EXPORTS)

__all__ = sorted(_EXPORTS)
