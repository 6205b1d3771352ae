"""``MultiAgentEnv``: an env where several agents act at once, keyed by agent id.

``reset()`` returns ``(obs_dict, info_dict)``; ``step(action_dict)`` returns
``(obs, rewards, terminateds, truncateds, infos)``, each a dict by agent id, with ``"__all__"``
in ``terminateds``/``truncateds`` saying whether the whole episode is over.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym


class MultiAgentEnv(gym.Env):
    """Subclass it and set ``possible_agents``, ``observation_spaces`` and ``action_spaces``."""

    possible_agents: list = []
    agents: list = []
    observation_spaces: dict | None = None
    action_spaces: dict | None = None

    def __init__(self) -> None:
        super().__init__()
        if not hasattr(self, "agents") or not self.agents:
            self.agents = list(self.possible_agents)

    def get_observation_space(self, agent_id: Any) -> gym.Space:
        if self.observation_spaces is not None:
            return self.observation_spaces[agent_id]
        space = self.observation_space
        return space[agent_id] if isinstance(space, gym.spaces.Dict) else space

    def get_action_space(self, agent_id: Any) -> gym.Space:
        if self.action_spaces is not None:
            return self.action_spaces[agent_id]
        space = self.action_space
        return space[agent_id] if isinstance(space, gym.spaces.Dict) else space

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def max_num_agents(self) -> int:
        return len(self.possible_agents)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        raise NotImplementedError

    def step(self, action_dict: dict) -> tuple[dict, dict, dict, dict, dict]:
        raise NotImplementedError


def make_multi_agent(env_name_or_creator: Any) -> type:
    """A MultiAgentEnv class running ``num_agents`` independent copies of a single-agent env."""
    from solray.rllib._internal.env_factory import make_single_env

    class IndependentCopies(MultiAgentEnv):
        def __init__(self, config: dict | None = None) -> None:
            config = dict(config or {})
            num = config.pop("num_agents", 1)
            self.envs = [make_single_env(env_name_or_creator, config) for _ in range(num)]
            self.possible_agents = list(range(num))
            self.agents = list(self.possible_agents)
            self.observation_spaces = {i: e.observation_space for i, e in enumerate(self.envs)}
            self.action_spaces = {i: e.action_space for i, e in enumerate(self.envs)}
            self._done: set = set()
            super().__init__()

        def reset(self, *, seed=None, options=None):
            self._done = set()
            obs, infos = {}, {}
            for i, env in enumerate(self.envs):
                obs[i], infos[i] = env.reset(seed=None if seed is None else seed + i, options=options)
            return obs, infos

        def step(self, action_dict):
            obs, rew, term, trunc, info = {}, {}, {}, {}, {}
            for i, action in action_dict.items():
                obs[i], rew[i], term[i], trunc[i], info[i] = self.envs[i].step(action)
                if term[i] or trunc[i]:
                    self._done.add(i)
            all_done = len(self._done) == len(self.envs)
            term["__all__"] = all_done
            trunc["__all__"] = False
            return obs, rew, term, trunc, info

    return IndependentCopies
