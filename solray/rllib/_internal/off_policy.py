"""What DQN and SAC share: sample a little, store it in a replay buffer per module, and once
``num_steps_sampled_before_learning_starts`` steps are in, train on replayed minibatches at the
``training_intensity`` (trained steps per sampled step) the config asks for."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from solray.rllib._internal.config_schema import DICT, FLOAT, INT, Key, at_least
from solray.rllib._internal.replay_buffer import make_replay_buffer
from solray.rllib.algorithms.algorithm import Algorithm


def _n_step_problem(value: Any) -> str | None:
    """Ray's ``n_step``: an int >= 1, or ``(low, high)`` to draw each row's n from [low, high]."""
    def positive_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    if positive_int(value):
        return None
    if (isinstance(value, (tuple, list)) and len(value) == 2 and all(map(positive_int, value))
            and value[0] <= value[1]):
        return None
    return "must be an int >= 1 or a (min, max) pair of ints with 1 <= min <= max"


OFF_POLICY_KEYS = {
    "replay_buffer_config": Key({}, DICT),
    "num_steps_sampled_before_learning_starts": Key(1000, INT, at_least(0)),
    "training_intensity": Key(None, FLOAT, at_least(0), nullable=True),
    "n_step": Key(1, (int, tuple, list), _n_step_problem),
    "tau": Key(1.0, FLOAT, at_least(0)),
    "target_network_update_freq": Key(500, INT, at_least(0)),
    "store_buffer_in_checkpoints": Key(False, (bool,)),
}


class OffPolicyAlgorithm(Algorithm):
    default_fragment_length = 4

    def setup(self, config: Any, env: Any = None) -> None:
        super().setup(config, env)
        self.buffers = {mid: make_replay_buffer(self.config.replay_buffer_config, self.config.seed)
                        for mid in self.module_specs}

    def action_kwargs(self) -> dict:
        """Extra arguments of the modules' ``compute_actions`` while sampling (epsilon, ...)."""
        return {}

    def training_step(self) -> dict:
        config = self.config
        fragment = (self.default_fragment_length if config.rollout_fragment_length == "auto"
                    else int(config.rollout_fragment_length))
        before = self.metrics.iter_steps
        for mid, batches in self.sample(fragment, action_kwargs=self.action_kwargs()).items():
            for batch in batches:
                self.buffers[mid].add(batch)
        sampled = self.metrics.iter_steps - before
        if self.metrics.steps_sampled < config.num_steps_sampled_before_learning_starts:
            return {}
        batch_size = config.total_train_batch_size
        intensity = config.training_intensity
        updates = 1 if intensity is None else max(1, math.floor(sampled * intensity / batch_size + 0.5))
        results: dict = {}
        for _ in range(updates):
            replayed = {mid: buf.sample(batch_size, n_step=config.n_step, gamma=config.gamma)
                        for mid, buf in self.buffers.items() if len(buf)}
            results = self.learner_group.update(replayed, timestep=self.metrics.steps_sampled)
            for mid, metrics in results.items():
                td = metrics.pop("_td_error", None)
                if td is not None:
                    self.buffers[mid].update_priorities(replayed[mid]["batch_indexes"], np.asarray(td))
            self.metrics.record_trained(batch_size)
        self.sync_weights()
        return results

    def get_extra_state(self) -> dict:
        if not self.config.store_buffer_in_checkpoints:
            return {}
        return {"buffers": {mid: b.get_state() for mid, b in self.buffers.items()}}

    def set_extra_state(self, state: dict) -> None:
        for mid, buf_state in state.get("buffers", {}).items():
            self.buffers[mid].set_state(buf_state)


def bootstrap_gamma(gamma: float, batch: dict) -> Any:
    """What the bootstrapped value is discounted by: gamma ** n per row of an n-step batch."""
    return gamma ** batch["n_step"] if "n_step" in batch else gamma
