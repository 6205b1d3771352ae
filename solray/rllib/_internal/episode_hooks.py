"""Episode callbacks inside an EnvRunner: the episode objects they see and when they fire.

An EnvRunner calls ``before_reset``/``after_reset``/``after_step`` around its envs and
``finish_sample`` at the end of ``sample()``. Nothing is recorded unless the config has an
episode hook, so runners without callbacks pay one boolean test per step.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from solray.rllib._internal.callbacks import CallbackRunner
from solray.rllib.utils.metrics.metrics_logger import MetricsLogger

_EPISODE_HOOKS = ("on_episode_created", "on_episode_start", "on_episode_step", "on_episode_end")
_ids = itertools.count()


class Episode:
    """The essentials of Ray's ``SingleAgentEpisode``/``MultiAgentEpisode`` for callbacks.

    In a multi-agent env each entry of ``get_observations()``/``get_rewards()``... is the dict
    the env returned for that step (agent id -> value).
    """

    def __init__(self, env_index: int, worker_index: int) -> None:
        self.id_ = f"{worker_index}-{next(_ids)}"
        self.env_index = env_index
        self.custom_data: dict = {}
        self.is_terminated = self.is_truncated = False
        self._observations: list = []
        self._infos: list = []
        self._actions: list = []
        self._rewards: list = []
        self._started = time.perf_counter()

    @property
    def t(self) -> int:
        return len(self._actions)

    @property
    def is_done(self) -> bool:
        return self.is_terminated or self.is_truncated

    def __len__(self) -> int:
        return self.t

    def get_return(self) -> float:
        return float(sum(sum(r.values()) if isinstance(r, dict) else r for r in self._rewards))

    def get_duration_s(self) -> float:
        return time.perf_counter() - self._started

    def get_observations(self, indices: Any = None) -> Any:
        return _pick(self._observations, indices)

    def get_infos(self, indices: Any = None) -> Any:
        return _pick(self._infos, indices)

    def get_actions(self, indices: Any = None) -> Any:
        return _pick(self._actions, indices)

    def get_rewards(self, indices: Any = None) -> Any:
        return _pick(self._rewards, indices)


def _pick(values: list, indices: Any) -> Any:
    if indices is None:
        return list(values)
    if isinstance(indices, (list, tuple)):
        return [values[i] for i in indices]
    return values[indices]


class EpisodeHooks:
    """One EnvRunner's callbacks, its ``MetricsLogger`` and the episodes in its envs."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.callbacks = CallbackRunner.from_config(runner.config)
        self.metrics_logger = MetricsLogger()
        self.active = any(self.callbacks.wants(hook) for hook in _EPISODE_HOOKS)
        self.episodes: dict[int, Episode] = {}

    def _fire(self, hook: str, index: int) -> None:
        runner = self.runner
        module = next(iter(runner.modules.values())) if len(runner.modules) == 1 else None
        self.callbacks(hook, episode=self.episodes[index], env_runner=runner, worker=runner,
                       metrics_logger=self.metrics_logger, env=runner.envs[index], env_index=index,
                       rl_module=module)

    def environment_created(self, env: Any, env_context: Any) -> None:
        self.callbacks("on_environment_created", env_runner=self.runner, metrics_logger=self.metrics_logger,
                       env=env, env_context=env_context)

    def before_reset(self, index: int) -> None:
        if self.active:
            self.episodes[index] = Episode(index, self.runner.worker_index)
            self._fire("on_episode_created", index)

    def after_reset(self, index: int, obs: Any, info: Any) -> None:
        if self.active:
            episode = self.episodes[index]
            episode._observations.append(obs)
            episode._infos.append(info)
            self._fire("on_episode_start", index)

    def after_step(self, index: int, action: Any, obs: Any, reward: Any, terminated: bool, truncated: bool,
                   info: Any) -> None:
        if not self.active:
            return
        episode = self.episodes[index]
        episode._actions.append(action)
        episode._observations.append(obs)
        episode._rewards.append(reward)
        episode._infos.append(info)
        episode.is_terminated, episode.is_truncated = bool(terminated), bool(truncated)
        self._fire("on_episode_step", index)
        if episode.is_done:
            self._fire("on_episode_end", index)

    def finish_sample(self, samples: Any) -> list:
        """Fire ``on_sample_end``; returns what the callbacks logged, for the Algorithm's results."""
        self.callbacks("on_sample_end", env_runner=self.runner, worker=self.runner,
                       metrics_logger=self.metrics_logger, samples=samples)
        return self.metrics_logger.drain()
