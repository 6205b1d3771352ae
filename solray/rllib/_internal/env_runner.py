"""``SingleAgentEnvRunner``: steps ``num_envs_per_env_runner`` copies of an env with a module.

It runs inside an EnvRunner actor (or in the driver when ``num_env_runners=0``). Each
``sample`` call first loads the weights it was handed (an object-store ref resolved to NumPy,
loaded only when their version changed), then steps every env ``num_steps`` times, keeping
unfinished episodes across calls (``truncate_episodes``); with ``batch_mode=
"complete_episodes"`` an env goes on past ``num_steps`` until its running episode ends, then
waits (already reset) for the next call, so every piece is whole episodes. The fragment comes
back as one dict of NumPy arrays laid out env by env, with ``seg_end`` marking where each env's
piece stops, so the learner can tell cut trajectories from finished ones.

A recurrent module (``get_initial_state()`` not empty) keeps a state per env, reset at each
episode start. Each step's row then carries the state it was acted with (``state_in/<key>``
columns, see ``sequences.py``), the ``vf_preds`` computed while acting and, where a chain of
steps is cut short (truncated episode, end of the piece), ``values_bootstrapped``: the value of
``new_obs`` under the state reached there, which only the runner has. An LSTM built with
``lstm_use_prev_action`` / ``lstm_use_prev_reward`` also reads, per step, the episode's previous
action / reward (``prev_actions`` / ``prev_rewards`` columns, zeros at each episode start).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from solray.rllib._internal.env_factory import ObsEncoder, action_to_env
from solray.rllib._internal.episode_hooks import EpisodeHooks
from solray.rllib._internal.modules import sample_from_dist_inputs
from solray.rllib._internal.sequences import state_columns
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
        contexts = [EnvContext(config.env_config, worker_index=worker_index, vector_index=i,
                               num_workers=num_workers, remote=worker_index > 0) for i in range(self.num_envs)]
        self.envs = [env_creator(context) for context in contexts]
        self.modules = {mid: spec.build() for mid, spec in module_specs.items()}
        for module in self.modules.values():
            module.eval()
        self.hooks = EpisodeHooks(self)
        for env, context in zip(self.envs, contexts, strict=True):
            self.hooks.environment_created(env, context)
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

    def _act(self, module_id: str, obs: np.ndarray, explore: bool, action_kwargs: dict,
             state: dict | None = None, prev: dict | None = None) -> tuple:
        module = self.modules[module_id]
        act = getattr(module, "compute_actions", None)
        if state is not None:
            action_kwargs = {**action_kwargs, "state": state}
        if prev:
            action_kwargs = {**action_kwargs, "prev": prev}
        if act is None:
            return sample_from_dist_inputs(module, obs, explore, self.rng, **action_kwargs)
        return act(obs, explore, self.rng, policy_net=self.policy_nets[module_id], **action_kwargs)

    def _initial_state(self, module_id: str, n: int) -> dict | None:
        """``n`` rows of the module's initial recurrent state (None: the module has none)."""
        init = getattr(self.modules[module_id], "get_initial_state", dict)()
        if not init:
            return None
        return {k: np.repeat(np.asarray(v, np.float32)[None], n, axis=0) for k, v in init.items()}

    def _initial_prev(self, module_id: str, n: int) -> dict:
        """``n`` rows of the ``prev_actions`` / ``prev_rewards`` the module reads at an episode
        start (zeros; ``{}``: it reads none)."""
        module = self.modules[module_id]
        space = module.action_space
        actions = (np.zeros(n, np.int64) if isinstance(space, gym.spaces.Discrete)
                   else np.zeros((n, *space.shape), np.float32))
        return prev_columns(getattr(module, "prev_inputs", ()), actions, np.zeros(n, np.float32))

    def _values(self, module_id: str, obs: np.ndarray, state: dict, prev: dict) -> np.ndarray:
        with torch.no_grad():
            values = self.modules[module_id].compute_values({
                Columns.OBS: torch.from_numpy(obs),
                Columns.STATE_IN: {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
                **{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in prev.items()}})
        return values.numpy().astype(np.float32)

    @property
    def metrics_logger(self) -> Any:
        """Where episode callbacks log custom metrics (Ray's ``EnvRunner.metrics``)."""
        return self.hooks.metrics_logger

    metrics = metrics_logger

    def _reset(self, index: int, first: bool) -> Any:
        seed = None if (self.seed is None or not first) else self.seed + index
        self.hooks.before_reset(index)
        obs, info = self.envs[index].reset(seed=seed)
        self.hooks.after_reset(index, obs, info)
        return obs

    def _finish(self, output: dict) -> dict:
        """Fire ``on_sample_end``; what the callbacks logged rides along with the metrics."""
        output["metrics"]["custom"] = self.hooks.finish_sample(output.get("batches"))
        return output

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
        self._state: dict | None = None
        self._prev: dict = {}

    def _new_episode_id(self) -> int:
        self._episodes_started += 1
        return episode_uid(self.worker_index, self._episodes_started)

    def _ensure_started(self) -> None:
        if self._obs is None:
            self._obs = self.encoder.encode([self._reset(i, True) for i in range(self.num_envs)])
            self._eps_id[:] = [self._new_episode_id() for _ in range(self.num_envs)]
            self._state = self._initial_state(DEFAULT_MODULE_ID, self.num_envs)
            self._prev = self._initial_prev(DEFAULT_MODULE_ID, self.num_envs)

    def sample(self, weights: dict | None = None, version: int = -1, num_steps: int = 1,
               explore: bool = True, action_kwargs: dict | None = None) -> dict:
        """Step each env ``num_steps`` times (``complete_episodes``: until its episode ends past
        that); returns ``{"batches": {module_id: batch}, "metrics": ...}``."""
        if weights is not None:
            self.set_weights(weights, version)
        self._ensure_started()
        started = time.perf_counter()
        complete = self.config.batch_mode == "complete_episodes"
        n = self.num_envs
        active = np.ones(n, bool)
        rows = np.full(n, num_steps)  # how many steps each env contributes
        steps: list[dict] = []  # per time step, columns of n rows (rows of waiting envs are dropped)
        returns, lengths = [], []
        normalize, clip = self.config.normalize_actions, self.config.clip_actions
        while active.any():
            t, stepped = len(steps), active.copy()
            step = {Columns.OBS: self._obs.copy(), Columns.EPS_ID: self._eps_id.copy()}
            if self._state is not None:
                step.update(state_columns(self._state))
            step.update(self._prev)
            action, extra = self._act(DEFAULT_MODULE_ID, self._obs, explore, action_kwargs or {}, self._state,
                                      self._prev)
            state_out = extra.pop(Columns.STATE_OUT, None)
            next_obs = self._obs.copy()
            rewards = np.zeros(n, np.float32)
            terminateds, truncateds = np.zeros(n, bool), np.zeros(n, bool)
            for i in np.flatnonzero(stepped):
                o, r, term, trunc, info = self.envs[i].step(
                    action_to_env(self.action_space, action[i], normalize, clip))
                self.hooks.after_step(i, action[i], o, r, term, trunc, info)
                next_obs[i] = self.encoder.encode([o])[0]
                rewards[i], terminateds[i], truncateds[i] = r, term, trunc
                self._ep_return[i] += r
                self._ep_len[i] += 1
                if term or trunc:
                    returns.append(float(self._ep_return[i]))
                    lengths.append(int(self._ep_len[i]))
                    self._ep_return[i], self._ep_len[i] = 0.0, 0
                    self._obs[i] = self.encoder.encode([self._reset(i, False)])[0]
                    self._eps_id[i] = self._new_episode_id()
                    if complete and t + 1 >= num_steps:
                        active[i], rows[i] = False, t + 1
                else:
                    self._obs[i] = next_obs[i]
            if not complete and t + 1 == num_steps:
                active[:] = False
            step.update({Columns.NEXT_OBS: next_obs, Columns.ACTIONS: action, Columns.REWARDS: rewards,
                         Columns.TERMINATEDS: terminateds, Columns.TRUNCATEDS: truncateds, **extra})
            if self._state is not None:
                step[Columns.VALUES_BOOTSTRAPPED] = self._advance_state(state_out, step, stepped, active)
            steps.append(step)
        columns = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
        batch = _env_major(columns, rows)
        seg_end = np.zeros(len(batch[Columns.REWARDS]), bool)
        seg_end[np.cumsum(rows) - 1] = True
        batch["seg_end"] = seg_end
        if self.postprocess is not None:
            batch = self.postprocess(self.modules[DEFAULT_MODULE_ID], batch, self.config)
        return self._finish({"batches": {DEFAULT_MODULE_ID: batch},
                             "metrics": _metrics(returns, lengths, int(rows.sum()), time.perf_counter() - started)})

    def _advance_state(self, state_out: dict, step: dict, stepped: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Take the recurrent state (and previous action / reward) after ``step``; returns the
        step's ``values_bootstrapped``: the value of ``new_obs`` where the chain of steps is cut
        here without termination (a truncated episode, or the last step of this call's piece)."""
        done = step[Columns.TERMINATEDS] | step[Columns.TRUNCATEDS]
        cut = stepped & ~step[Columns.TERMINATEDS] & (step[Columns.TRUNCATEDS] | ~active)
        bootstrapped = np.zeros(len(done), np.float32)
        state_out = {k: np.array(v, np.float32) for k, v in state_out.items()}
        prev = prev_columns(self._prev, step[Columns.ACTIONS], step[Columns.REWARDS])
        if cut.any():
            bootstrapped[cut] = self._values(DEFAULT_MODULE_ID, step[Columns.NEXT_OBS][cut],
                                             {k: v[cut] for k, v in state_out.items()},
                                             {k: v[cut] for k, v in prev.items()})
        initial = self._initial_state(DEFAULT_MODULE_ID, 1)
        for key, value in state_out.items():
            value[~stepped] = self._state[key][~stepped]  # waiting envs keep their fresh state
            value[stepped & done] = initial[key][0]
        for key, value in self._prev.items():
            following = value.copy()  # waiting envs keep their zeros
            following[stepped] = prev[key][stepped]
            following[stepped & done] = 0
            self._prev[key] = following
        self._state = state_out
        return bootstrapped

    def sample_episodes(self, num_episodes: int, explore: bool = False, weights: dict | None = None,
                        version: int = -1) -> dict:
        """Run ``num_episodes`` whole episodes from fresh resets (evaluation); returns metrics."""
        if weights is not None:
            self.set_weights(weights, version)
        started = time.perf_counter()
        returns, lengths, steps = [], [], 0
        while len(returns) < num_episodes:
            o = self._reset(0, first=False)
            state = self._initial_state(DEFAULT_MODULE_ID, 1)
            prev = self._initial_prev(DEFAULT_MODULE_ID, 1)
            total, length, done = 0.0, 0, False
            while not done:
                action, extra = self._act(DEFAULT_MODULE_ID, self.encoder.encode([o]), explore, {}, state, prev)
                state = extra.get(Columns.STATE_OUT)
                o, r, term, trunc, info = self.envs[0].step(
                    action_to_env(self.action_space, action[0], self.config.normalize_actions,
                                  self.config.clip_actions))
                self.hooks.after_step(0, action[0], o, r, term, trunc, info)
                prev = prev_columns(prev, action, np.array([r], np.float32))
                total, length, done = total + r, length + 1, term or trunc
            returns.append(float(total))
            lengths.append(length)
            steps += length
        self._obs = None  # the eval loop used env 0: start fresh episodes next time
        return self._finish({"metrics": _metrics(returns, lengths, steps, time.perf_counter() - started)})


def prev_columns(keys: Any, actions: np.ndarray, rewards: np.ndarray) -> dict:
    """The ``prev_actions`` / ``prev_rewards`` among ``keys`` that the step acting with
    ``actions`` and earning ``rewards`` hands to the next step of its episode."""
    values = {Columns.PREV_ACTIONS: actions, Columns.PREV_REWARDS: rewards}
    return {key: values[key] for key in keys}


def episode_uid(worker_index: int, counter: int) -> int:
    """An episode id no other runner of the algorithm hands out (runner index in the high bits)."""
    return (worker_index << 40) | (counter & ((1 << 40) - 1))


def _env_major(columns: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """(time, env, ...) arrays -> (sum of rows, ...): env i's first ``rows[i]`` steps, env by env."""
    return {key: np.concatenate([value[:rows[i], i] for i in range(value.shape[1])])
            for key, value in columns.items()}


def _metrics(returns: list, lengths: list, steps: int, seconds: float, per_agent: dict | None = None,
             per_module: dict | None = None) -> dict:
    return {"episode_returns": returns, "episode_lengths": lengths, "num_env_steps": steps,
            "sample_seconds": seconds, "agent_returns": per_agent or {}, "module_returns": per_module or {}}
