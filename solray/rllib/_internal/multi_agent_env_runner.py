"""``MultiAgentEnvRunner``: samples a ``MultiAgentEnv``, each agent acting with the module
``policy_mapping_fn`` picks for it (once per agent per episode).

Every (env, episode, agent) keeps its own list of transitions, so each module's batch holds
whole per-agent trajectory pieces back to back (``seg_end`` marks each piece's last step),
which is what GAE needs. A transition closes when its agent observes again or is done.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from typing import Any

import numpy as np

from solray.rllib._internal.env_factory import ObsEncoder, action_to_env
from solray.rllib._internal.env_runner import EnvRunnerBase, _metrics, episode_uid
from solray.rllib._internal.metrics import merge_sample_metrics
from solray.rllib.core.columns import Columns

_ids = itertools.count()


class EpisodeInfo:
    """The ``episode`` handed to ``policy_mapping_fn`` (its id, the env index)."""

    def __init__(self, env_index: int) -> None:
        self.id_ = f"{next(_ids)}"
        self.env_index = env_index
        self.agent_to_module: dict = {}
        self.total_return = 0.0
        self.agent_returns: dict = defaultdict(float)
        self.length = 0


class MultiAgentEnvRunner(EnvRunnerBase):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        env = self.envs[0]
        self.agent_ids = list(getattr(env, "possible_agents", []) or [])
        self.mapping_fn = self.config.policy_mapping_fn
        self._encoders: dict = {}
        self._obs: list[dict | None] = [None] * self.num_envs
        self._episodes: list[EpisodeInfo | None] = [None] * self.num_envs
        self._agent_episode_uids: dict[tuple, int] = {}
        self._uids_issued = 0
        self._pending: list[dict] = [{} for _ in range(self.num_envs)]

    def module_for(self, episode: EpisodeInfo, agent_id: Any) -> str:
        mid = episode.agent_to_module.get(agent_id)
        if mid is None:
            mid = self.mapping_fn(agent_id, episode, worker=self) if self.mapping_fn else "default_policy"
            if mid not in self.modules:
                raise ValueError(f"policy_mapping_fn returned {mid!r} for agent {agent_id!r}, which is not one "
                                 f"of the configured policies {sorted(self.modules)}")
            episode.agent_to_module[agent_id] = mid
        return mid

    def _encoder(self, index: int, agent_id: Any) -> ObsEncoder:
        enc = self._encoders.get(agent_id)
        if enc is None:
            enc = self._encoders[agent_id] = ObsEncoder(self.envs[index].get_observation_space(agent_id))
        return enc

    def _encode(self, index: int, agent_id: Any, obs: Any) -> np.ndarray:
        return self._encoder(index, agent_id).encode([obs])[0]

    def _start(self, index: int, first: bool) -> None:
        self._obs[index] = self._reset(index, first)
        self._episodes[index] = EpisodeInfo(index)
        self._pending[index] = {}

    def _choose(self, index: int, explore: bool, action_kwargs: dict) -> dict:
        """Actions for every agent that observed, grouped into one forward pass per module."""
        episode, obs = self._episodes[index], self._obs[index]
        by_module: dict[str, list] = defaultdict(list)
        for aid, o in obs.items():
            by_module[self.module_for(episode, aid)].append((aid, self._encode(index, aid, o)))
        actions = {}
        for mid, items in by_module.items():
            encoded = np.stack([e for _, e in items])
            acts, extra = self._act(mid, encoded, explore, action_kwargs)
            for row, (aid, enc) in enumerate(items):
                actions[aid] = acts[row]
                self._pending[index][aid] = {Columns.OBS: enc, Columns.ACTIONS: acts[row], Columns.REWARDS: 0.0,
                                             "_module": mid, **{k: v[row] for k, v in extra.items()}}
        return actions

    def sample(self, weights: dict | None = None, version: int = -1, num_steps: int = 1,
               explore: bool = True, action_kwargs: dict | None = None) -> dict:
        if weights is not None:
            self.set_weights(weights, version)
        started = time.perf_counter()
        trajectories: dict[tuple, list] = defaultdict(list)
        returns, lengths = [], []
        agent_returns, module_returns = defaultdict(list), defaultdict(list)
        for index in range(self.num_envs):
            if self._obs[index] is None:
                self._start(index, True)
        for _ in range(num_steps):
            for index, env in enumerate(self.envs):
                episode = self._episodes[index]
                actions = self._choose(index, explore, action_kwargs or {})
                space_of = env.get_action_space
                env_actions = {aid: action_to_env(space_of(aid), a, self.config.normalize_actions,
                                                  self.config.clip_actions) for aid, a in actions.items()}
                obs, rewards, terms, truncs, infos = env.step(env_actions)
                self.hooks.after_step(index, env_actions, obs, rewards, terms.get("__all__", False),
                                      truncs.get("__all__", False), infos)
                episode.length += 1
                for aid, r in rewards.items():
                    episode.total_return += r
                    episode.agent_returns[aid] += r
                    if aid in self._pending[index]:
                        self._pending[index][aid][Columns.REWARDS] += r
                all_done = terms.get("__all__", False) or truncs.get("__all__", False)
                for aid in list(self._pending[index]):
                    done = all_done or terms.get(aid, False) or truncs.get(aid, False)
                    if aid in obs or done:
                        step = self._pending[index].pop(aid)
                        nxt = obs.get(aid)
                        step[Columns.NEXT_OBS] = step[Columns.OBS] if nxt is None else self._encode(index, aid, nxt)
                        step[Columns.TERMINATEDS] = bool(terms.get(aid, False) or terms.get("__all__", False))
                        step[Columns.TRUNCATEDS] = bool(done and not step[Columns.TERMINATEDS])
                        trajectories[(index, episode.id_, aid)].append(step)
                if all_done:
                    returns.append(float(episode.total_return))
                    lengths.append(episode.length)
                    for aid, r in episode.agent_returns.items():
                        agent_returns[aid].append(float(r))
                        module_returns[episode.agent_to_module.get(aid, "default_policy")].append(float(r))
                    self._start(index, False)
                else:
                    self._obs[index] = {aid: o for aid, o in obs.items()
                                        if not (terms.get(aid, False) or truncs.get(aid, False))}
        batches = self._module_batches(trajectories)
        if self.postprocess is not None:
            batches = {mid: self.postprocess(self.modules[mid], b, self.config) for mid, b in batches.items()}
        steps = num_steps * self.num_envs
        return self._finish({"batches": batches,
                             "metrics": _metrics(returns, lengths, steps, time.perf_counter() - started,
                                                 dict(agent_returns), dict(module_returns))})

    def sample_episodes(self, num_episodes: int, explore: bool = False, weights: dict | None = None,
                        version: int = -1) -> dict:
        """Run at least ``num_episodes`` whole episodes from fresh resets (evaluation); returns metrics."""
        if weights is not None:
            self.set_weights(weights, version)
        self._obs = [None] * self.num_envs
        parts = []
        while sum(len(p["episode_returns"]) for p in parts) < num_episodes:
            parts.append(self.sample(num_steps=1, explore=explore)["metrics"])
        self._obs = [None] * self.num_envs  # training resumes with fresh episodes too
        return {"metrics": merge_sample_metrics(parts)}

    def _agent_episode_uid(self, episode_id: str, agent_id: Any) -> int:
        key = (episode_id, agent_id)
        if key not in self._agent_episode_uids:
            self._uids_issued += 1
            self._agent_episode_uids[key] = episode_uid(self.worker_index, self._uids_issued)
        return self._agent_episode_uids[key]

    def _module_batches(self, trajectories: dict[tuple, list]) -> dict[str, dict]:
        rows: dict[str, list] = defaultdict(list)
        for (_, episode_id, agent_id), steps in trajectories.items():
            steps[-1]["seg_end"] = True
            uid = self._agent_episode_uid(episode_id, agent_id)
            for step in steps:
                step[Columns.EPS_ID] = uid
            rows[steps[0]["_module"]].extend(steps)
        # Forget the ids of episodes that ended (their steps are all out).
        active = {e.id_ for e in self._episodes if e is not None}
        for key in [k for k in self._agent_episode_uids if k[0] not in active]:
            del self._agent_episode_uids[key]
        out = {}
        for mid, steps in rows.items():
            keys = [k for k in steps[0] if not k.startswith("_") and k != "seg_end"]
            out[mid] = {k: np.asarray([s.get(k, False) for s in steps]) for k in keys}
            out[mid]["seg_end"] = np.asarray([s.get("seg_end", False) for s in steps], bool)
            for k in (Columns.OBS, Columns.NEXT_OBS, Columns.REWARDS):
                out[mid][k] = out[mid][k].astype(np.float32)
        return out
