"""Build-time checks of the env against the config, and the module specs that follow.

A probe env is built in the driver: its spaces decide the modules' shapes, an unsupported
space or an unknown env fails here, and for a ``MultiAgentEnv`` the ``policy_mapping_fn`` is
called for every possible agent so a policy id it invents is reported before any sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from solray.rllib._internal.env_factory import check_action_space, check_space
from solray.rllib._internal.env_runner import SingleAgentEnvRunner
from solray.rllib._internal.multi_agent_env_runner import EpisodeInfo, MultiAgentEnvRunner
from solray.rllib.core import DEFAULT_MODULE_ID
from solray.rllib.core.rl_module.rl_module import MultiRLModuleSpec, RLModuleSpec
from solray.rllib.env.env_context import EnvContext
from solray.rllib.env.multi_agent_env import MultiAgentEnv
from solray.rllib.policy.policy import PolicySpec


def _policy_ids(policies: Any) -> dict[str, Any]:
    if policies is None:
        return {}
    if isinstance(policies, dict):
        return dict(policies)
    return {pid: None for pid in policies}


def _user_spec(config: Any, module_id: str) -> RLModuleSpec | None:
    spec = config.rl_module_spec
    if isinstance(spec, MultiRLModuleSpec):
        return spec.rl_module_specs.get(module_id)
    return spec


def _make_spec(config: Any, module_id: str, obs_space: Any, act_space: Any, default_class: type,
               model_extras: dict) -> RLModuleSpec:
    model_config = {**config.model_config.to_dict(), **model_extras}
    spec = RLModuleSpec(module_class=default_class, observation_space=obs_space, action_space=act_space,
                        model_config=model_config)
    user = _user_spec(config, module_id)
    if user is not None:
        spec.update(user)
    if spec.module_class is default_class:
        spec.build()  # a bad model_config (image size without conv_filters, ...) fails build_algo() here
    return spec


def build_module_specs(config: Any, env_creator: Callable, default_class: type, algo_name: str,
                       discrete: bool | None, model_extras: dict | None = None) -> tuple[dict, type]:
    """``({module_id: RLModuleSpec}, runner class)`` for this config's env."""
    model_extras = model_extras or {}
    env = env_creator(EnvContext(config.env_config, worker_index=0))
    try:
        if isinstance(env, MultiAgentEnv):
            _check_multi_agent_support(config)
            return _multi_agent_specs(config, env, default_class, algo_name, discrete, model_extras), \
                MultiAgentEnvRunner
        if config.is_multi_agent:
            raise ValueError(f"config.multi_agent(policies=...) names several policies, but the env "
                             f"{config.env!r} is not a MultiAgentEnv.")
        obs_space = config.observation_space or env.observation_space
        act_space = config.action_space or env.action_space
        check_space(obs_space, f"observation space of env {config.env!r}")
        check_action_space(act_space, algo_name, discrete)
        spec = _make_spec(config, DEFAULT_MODULE_ID, obs_space, act_space, default_class, model_extras)
        return {DEFAULT_MODULE_ID: spec}, SingleAgentEnvRunner
    finally:
        try:
            env.close()
        except Exception:  # noqa: BLE001 - the probe env is disposable
            pass


def _check_multi_agent_support(config: Any) -> None:
    if config.batch_mode == "complete_episodes":
        raise ValueError("env_runners(batch_mode='complete_episodes') is supported for single-agent envs only "
                         "in solray.rllib; use 'truncate_episodes' with a MultiAgentEnv.")
    if config.model_config.use_lstm:
        raise ValueError("model_config use_lstm=True is supported for single-agent envs only in solray.rllib.")


def _multi_agent_specs(config: Any, env: MultiAgentEnv, default_class: type, algo_name: str,
                       discrete: bool | None, model_extras: dict) -> dict:
    policies = _policy_ids(config.policies) or {DEFAULT_MODULE_ID: None}
    agents = list(getattr(env, "possible_agents", None) or [])
    if not agents:
        obs, _ = env.reset(seed=config.seed)
        agents = list(obs)
    mapping_fn = config.policy_mapping_fn or (lambda agent_id, episode, **kw: DEFAULT_MODULE_ID)
    episode = EpisodeInfo(0)
    agents_of: dict[str, list] = {pid: [] for pid in policies}
    for agent_id in agents:
        pid = mapping_fn(agent_id, episode, worker=None)
        if pid not in policies:
            raise ValueError(f"policy_mapping_fn returned {pid!r} for agent {agent_id!r}, which is not one of "
                             f"the configured policies {sorted(policies)} (config.multi_agent(policies=...)).")
        agents_of[pid].append(agent_id)
    specs = {}
    for pid, policy in policies.items():
        policy = policy if isinstance(policy, PolicySpec) else PolicySpec()
        first = agents_of[pid][0] if agents_of[pid] else agents[0]
        obs_space = policy.observation_space or env.get_observation_space(first)
        act_space = policy.action_space or env.get_action_space(first)
        check_space(obs_space, f"observation space of policy {pid!r}")
        check_action_space(act_space, algo_name, discrete)
        specs[pid] = _make_spec(config, pid, obs_space, act_space, default_class, model_extras)
    if config.policies_to_train:
        unknown = set(config.policies_to_train) - set(specs)
        if unknown:
            raise ValueError(f"policies_to_train names unknown policies {sorted(unknown)}; known: {sorted(specs)}")
    return specs
