"""``SingleAgentEnvRunner``: steps ``num_envs_per_env_runner`` copies of an env with a module.

It runs inside an EnvRunner actor (or in the driver when ``num_env_runners=0``). Each
``sample`` call first loads the weights it was handed (an object-store ref resolved to NumPy,
loaded only when their version changed), then steps every env ``num_steps`` times, keeping
unfinished episodes across calls (``truncate_episodes``). The fragment comes back as one dict
of NumPy arrays laid out env by env, with ``seg_end`` marking where each env's piece stops, so
the learner can tell cut trajectories from finished ones.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from solray.rllib._internal.env_factory import ObsEncoder, action_to_env
from solray.rllib._internal.modules import sample_from_dist_inputs
from solray.rllib.core import DEFAULT_MODULE_ID
from solray.rllib.core.columns import Columns
from solray.rllib.env.env_context import EnvContext


def seed_everything(seed: int | None) -> None:
    if seed is None:
        return
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class EnvRunnerBase:
    """What single- and multi-agent runners share: weights, the RNG, env construction."""

    def __init__(self, config: Any, worker_index: int, env_creator: Callable, module_specs: dict,
                 postprocess: Callable | None = None, num_workers: int = 0) -> None:
        torch.set_num_threads(1)
        self.config = config
        self.worker_index = worker_index
        self.seed = None if config.seed is None else config.seed + 1000 * worker_index
        seed_everything(self.seed)
        self.rng = np.random.default_rng(self.seed)
        self.num_envs = config.num_envs_per_env_runner
        self.envs = [env_creator(EnvContext(config.env_config, worker_index=worker_index, vector_index=i,
                                            num_workers=num_workers, remote=worker_index > 0))
                     for i in range(self.num_envs)]
        self.modules = {mid: spec.build() for mid, spec in module_specs.items()}
        for module in self.modules.values():
            module.eval()
        self._refresh_policy_nets()
        self.postprocess = postprocess
        self.weights_version = -1
        self.pid = None

    def ping(self) -> str:
        return "pong"

    def apply(self, fn: Callable, *args: Any) -> Any:
        return fn(self, *args)

    def set_weights(self, weights: dict, version: int) -> None:
        if version == self.weights_version:
            return
        for mid, state in weights.items():
            if mid in self.modules:
                self.modules[mid].set_state(state)
        self.weights_version = version
        self._refresh_policy_nets()

    def _refresh_policy_nets(self) -> None:
        self.policy_nets = {mid: getattr(m, "numpy_policy", lambda: None)() for mid, m in self.modules.items()}

    def get_weights(self) -> dict:
        return {mid: m.get_state() for mid, m in self.modules.items()}

    def _act(self, module_id: str, obs: np.ndarray, explore: bool, action_kwargs: dict) -> tuple:
        module = self.modules[module_id]
        act = getattr(module, "compute_actions", None)
        if act is None:
            return sample_from_dist_inputs(module, obs, explore, self.rng)
        return act(obs, explore, self.rng, policy_net=self.policy_nets[module_id], **action_kwargs)

    def _reset(self, index: int, first: bool) -> Any:
        seed = None if (self.seed is None or not first) else self.seed + index
        return self.envs[index].reset(seed=seed)[0]

    def stop(self) -> None:
        for env in self.envs:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                traceback.print_exc()


class SingleAgentEnvRunner(EnvRunnerBase):
    """Samples fragments of ``num_steps`` steps per env (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        env = self.envs[0]
        self.obs_space, self.action_space = env.observation_space, env.action_space
        self.encoder = ObsEncoder(self.obs_space)
        self._obs: np.ndarray | None = None
        self._ep_return = np.zeros(self.num_envs)
        self._ep_len = np.zeros(self.num_envs, np.int64)
        self._episodes_started = 0
        self._eps_id = np.zeros(self.num_envs, np.int64)

    def _new_episode_id(self) -> int:
        self._episodes_started += 1
        return episode_uid(self.worker_index, self._episodes_started)

    def _ensure_started(self) -> None:
        if self._obs is None:
            self._obs = self.encoder.encode([self._reset(i, True) for i in range(self.num_envs)])
            self._eps_id[:] = [self._new_episode_id() for _ in range(self.num_envs)]

    def sample(self, weights: dict | None = None, version: int = -1, num_steps: int = 1,
               explore: bool = True, action_kwargs: dict | None = None) -> dict:
        """Step each env ``num_steps`` times; returns ``{"batches": {module_id: batch}, "metrics": ...}``."""
        if weights is not None:
            self.set_weights(weights, version)
        self._ensure_started()
        started = time.perf_counter()
        n, size = self.num_envs, self.encoder.size
        obs = np.empty((num_steps, n, size), np.float32)
        next_obs = np.empty((num_steps, n, size), np.float32)
        rewards = np.empty((num_steps, n), np.float32)
        terminateds = np.zeros((num_steps, n), bool)
        truncateds = np.zeros((num_steps, n), bool)
        eps_ids = np.empty((num_steps, n), np.int64)
        actions, extras = [], []
        returns, lengths = [], []
        normalize, clip = self.config.normalize_actions, self.config.clip_actions
        for t in range(num_steps):
            obs[t] = self._obs
            eps_ids[t] = self._eps_id
            action, extra = self._act(DEFAULT_MODULE_ID, self._obs, explore, action_kwargs or {})
            actions.append(action)
            extras.append(extra)
            for i, env in enumerate(self.envs):
                o, r, term, trunc, _ = env.step(action_to_env(self.action_space, action[i], normalize, clip))
                next_obs[t, i] = self.encoder.encode([o])[0]
                rewards[t, i] = r
                terminateds[t, i], truncateds[t, i] = term, trunc
                self._ep_return[i] += r
                self._ep_len[i] += 1
                if term or trunc:
                    returns.append(float(self._ep_return[i]))
                    lengths.append(int(self._ep_len[i]))
                    self._ep_return[i], self._ep_len[i] = 0.0, 0
                    self._obs[i] = self.encoder.encode([self._reset(i, False)])[0]
                    self._eps_id[i] = self._new_episode_id()
                else:
                    self._obs[i] = next_obs[t, i]
        batch = _env_major({
            Columns.OBS: obs, Columns.NEXT_OBS: next_obs, Columns.ACTIONS: np.stack(actions),
            Columns.REWARDS: rewards, Columns.TERMINATEDS: terminateds, Columns.TRUNCATEDS: truncateds,
            Columns.EPS_ID: eps_ids, **{k: np.stack([e[k] for e in extras]) for k in (extras[0] if extras else {})},
        })
        seg_end = np.zeros((n, num_steps), bool)
        seg_end[:, -1] = True
        batch["seg_end"] = seg_end.reshape(-1)
        if self.postprocess is not None:
            batch = self.postprocess(self.modules[DEFAULT_MODULE_ID], batch, self.config)
        return {"batches": {DEFAULT_MODULE_ID: batch},
                "metrics": _metrics(returns, lengths, num_steps * n, time.perf_counter() - started)}

    def sample_episodes(self, num_episodes: int, explore: bool = False, weights: dict | None = None,
                        version: int = -1) -> dict:
        """Run ``num_episodes`` whole episodes from fresh resets (evaluation); returns metrics."""
        if weights is not None:
            self.set_weights(weights, version)
        started = time.perf_counter()
        returns, lengths, steps = [], [], 0
        while len(returns) < num_episodes:
            o = self.envs[0].reset()[0]
            total, length, done = 0.0, 0, False
            while not done:
                action, _ = self._act(DEFAULT_MODULE_ID, self.encoder.encode([o]), explore, {})
                o, r, term, trunc, _ = self.envs[0].step(
                    action_to_env(self.action_space, action[0], self.config.normalize_actions,
                                  self.config.clip_actions))
                total, length, done = total + r, length + 1, term or trunc
            returns.append(float(total))
            lengths.append(length)
            steps += length
        self._obs = None  # the eval loop used env 0: start fresh episodes next time
        return {"metrics": _metrics(returns, lengths, steps, time.perf_counter() - started)}


def episode_uid(worker_index: int, counter: int) -> int:
    """An episode id no other runner of the algorithm hands out (runner index in the high bits)."""
    return (worker_index << 40) | (counter & ((1 << 40) - 1))


def _env_major(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(time, env, ...) arrays -> (env * time, ...) so each env's steps are contiguous."""
    out = {}
    for key, value in columns.items():
        value = np.swapaxes(value, 0, 1)
        out[key] = np.ascontiguousarray(value.reshape((-1,) + value.shape[2:]))
    return out


def _metrics(returns: list, lengths: list, steps: int, seconds: float, per_agent: dict | None = None,
             per_module: dict | None = None) -> dict:
    return {"episode_returns": returns, "episode_lengths": lengths, "num_env_steps": steps,
            "sample_seconds": seconds, "agent_returns": per_agent or {}, "module_returns": per_module or {}}
