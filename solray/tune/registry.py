"""Named environments for RLlib (``tune.register_env``), as Ray keeps them in Tune's registry."""

from solray.rllib.env.registry import get_env_creator, register_env, registry_contains_env

__all__ = ["get_env_creator", "register_env", "registry_contains_env"]
