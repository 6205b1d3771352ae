"""``MetricsTracker``: turns what EnvRunners and learners report into Ray's result layout.

As in Ray 2.60 (whose windowed means are cleared at every reduce), ``episode_return_mean`` is
the mean over the episodes that ended during this iteration, at most the last
``metrics_num_episodes_for_smoothing`` of them; an iteration in which no episode ended repeats
the last window instead of NaN (NaN only until the first episode ends). Lifetime counters add
up across iterations and are saved in checkpoints, so a restored algorithm keeps counting.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from typing import Any

import numpy as np

from solray.rllib.utils.metrics.metrics_logger import MetricsLogger


def _stats(values: Any, prefix: str) -> dict:
    values = list(values)
    if not values:
        return {f"{prefix}_mean": math.nan, f"{prefix}_min": math.nan, f"{prefix}_max": math.nan}
    return {f"{prefix}_mean": float(np.mean(values)), f"{prefix}_min": float(np.min(values)),
            f"{prefix}_max": float(np.max(values))}


def merge_sample_metrics(metrics: list[dict]) -> dict:
    """Several EnvRunner metric dicts (lists of episode returns...) as one."""
    agent, module = defaultdict(list), defaultdict(list)
    for m in metrics:
        for key, values in m["agent_returns"].items():
            agent[key].extend(values)
        for key, values in m["module_returns"].items():
            module[key].extend(values)
    return {"episode_returns": [r for m in metrics for r in m["episode_returns"]],
            "episode_lengths": [n for m in metrics for n in m["episode_lengths"]],
            "num_env_steps": int(sum(m["num_env_steps"] for m in metrics)),
            "sample_seconds": float(sum(m["sample_seconds"] for m in metrics)),
            "agent_returns": dict(agent), "module_returns": dict(module),
            "custom": [item for m in metrics for item in m.get("custom", [])]}


def episode_summary(metrics: list[dict]) -> dict:
    """Mean/min/max return and length over the episodes in ``metrics`` (no smoothing: evaluation)."""
    merged = merge_sample_metrics(metrics)
    returns, lengths = merged["episode_returns"], merged["episode_lengths"]
    agent, module = merged["agent_returns"], merged["module_returns"]
    out = {**_stats(returns, "episode_return"), **_stats(lengths, "episode_len"),
           "num_episodes": len(returns), "num_env_steps_sampled": merged["num_env_steps"]}
    if agent:
        out["agent_episode_returns_mean"] = {k: float(np.mean(v)) for k, v in agent.items()}
    if module:
        out["module_episode_returns_mean"] = {k: float(np.mean(v)) for k, v in module.items()}
    return out


class MetricsTracker:
    def __init__(self, window: int) -> None:
        self.returns: deque = deque(maxlen=window)
        self.lengths: deque = deque(maxlen=window)
        self.agent_returns: dict = defaultdict(lambda: deque(maxlen=window))
        self.module_returns: dict = defaultdict(lambda: deque(maxlen=window))
        self.custom = MetricsLogger()  # what EnvRunner callbacks logged
        self.lifetime = {"num_env_steps_sampled_lifetime": 0, "num_episodes_lifetime": 0,
                         "num_env_steps_trained_lifetime": 0, "num_agent_steps_sampled_lifetime": 0}
        self.reset_iteration()

    def reset_iteration(self) -> None:
        self.iter_returns: list = []
        self.iter_lengths: list = []
        self.iter_agent_returns: dict = defaultdict(list)
        self.iter_module_returns: dict = defaultdict(list)
        self.iter_steps = 0
        self.iter_episodes = 0
        self.iter_sample_seconds = 0.0
        self.iter_trained = 0

    def record_samples(self, metrics: list[dict]) -> int:
        steps = 0
        for m in metrics:
            self.iter_returns.extend(m["episode_returns"])
            self.iter_lengths.extend(m["episode_lengths"])
            for key, values in m["agent_returns"].items():
                self.iter_agent_returns[key].extend(values)
            for key, values in m["module_returns"].items():
                self.iter_module_returns[key].extend(values)
            self.iter_episodes += len(m["episode_returns"])
            self.custom.merge(m.get("custom", []))
            self.iter_sample_seconds = max(self.iter_sample_seconds, m["sample_seconds"])
            steps += m["num_env_steps"]
        self.iter_steps += steps
        self.lifetime["num_env_steps_sampled_lifetime"] += steps
        self.lifetime["num_episodes_lifetime"] += sum(len(m["episode_returns"]) for m in metrics)
        return steps

    def record_trained(self, steps: int) -> None:
        self.iter_trained += steps
        self.lifetime["num_env_steps_trained_lifetime"] += steps

    @property
    def steps_sampled(self) -> int:
        return self.lifetime["num_env_steps_sampled_lifetime"]

    def env_runner_results(self) -> dict:
        if self.iter_returns:  # this iteration's episodes become the reported window
            self.returns.clear()
            self.lengths.clear()
            self.returns.extend(self.iter_returns)
            self.lengths.extend(self.iter_lengths)
        for latest, window in ((self.iter_agent_returns, self.agent_returns),
                               (self.iter_module_returns, self.module_returns)):
            for key, values in latest.items():
                window[key].clear()
                window[key].extend(values)
        out = {**_stats(self.returns, "episode_return"), **_stats(self.lengths, "episode_len"),
               "num_episodes": self.iter_episodes, "num_env_steps_sampled": self.iter_steps,
               "num_env_steps_sampled_lifetime": self.steps_sampled,
               "num_episodes_lifetime": self.lifetime["num_episodes_lifetime"],
               "sample": self.iter_sample_seconds}
        out.update(self.custom.reduce())
        if self.agent_returns:
            out["agent_episode_returns_mean"] = {k: float(np.mean(v)) for k, v in self.agent_returns.items()}
        if self.module_returns:
            out["module_episode_returns_mean"] = {k: float(np.mean(v)) for k, v in self.module_returns.items()}
        return out

    def get_state(self) -> dict:
        return {"returns": list(self.returns), "lengths": list(self.lengths), "lifetime": dict(self.lifetime)}

    def set_state(self, state: dict) -> None:
        self.returns.extend(state["returns"])
        self.lengths.extend(state["lengths"])
        self.lifetime.update(state["lifetime"])
