"""DQN: ``DQNConfig`` and the ``DQN`` algorithm (target network, replay buffer, double Q,
dueling heads, Huber TD loss, epsilon-greedy exploration on a schedule)."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from solray.rllib._internal.config_schema import BOOL, Key, one_of
from solray.rllib._internal.learner import TorchLearner, scheduled, soft_update, to_tensors
from solray.rllib._internal.modules import DefaultDQNTorchRLModule
from solray.rllib._internal.off_policy import OFF_POLICY_KEYS, OffPolicyAlgorithm, bootstrap_gamma
from solray.rllib.algorithms.algorithm_config import AlgorithmConfig
from solray.rllib.core.columns import Columns


class DQNConfig(AlgorithmConfig):
    """DQN's keys, with Ray's defaults: ``.training(double_q=, dueling=, epsilon=, ...)``."""

    _TRAINING_KEYS = {
        **OFF_POLICY_KEYS,
        "double_q": Key(True, BOOL),
        "dueling": Key(True, BOOL),
        "epsilon": Key([[0, 1.0], [10000, 0.05]], (list, float)),
        "td_error_loss_fn": Key("huber", (str,), one_of("huber", "mse")),
        "num_atoms": Key(1, (int,), one_of(1)),
        "adam_epsilon": Key(1e-8, (float,)),
    }
    _DEFAULT_OVERRIDES = {
        "lr": 5e-4, "train_batch_size": 32, "grad_clip": 40.0,
        "replay_buffer_config": {"type": "PrioritizedEpisodeReplayBuffer", "capacity": 50000,
                                 "alpha": 0.6, "beta": 0.4},
        "min_sample_timesteps_per_iteration": 1000,
    }

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or DQN)


class DQNTorchLearner(TorchLearner):
    def make_optimizers(self, module_id: str, module: Any) -> dict:
        return {"default": torch.optim.Adam(module.parameters(), lr=scheduled(self.config.lr, 0),
                                            eps=self.config.adam_epsilon, foreach=True)}

    def build_module_extras(self, module_id: str, module: Any) -> None:
        target = copy.deepcopy(module)
        target.requires_grad_(False)
        self.extra_state[module_id].update({"target": target, "last_target_update": 0})

    def after_weights_set(self) -> None:
        for mid, module in self.module.items():
            self.extra_state[mid]["target"].load_state_dict(module.state_dict())

    def update_module(self, module_id: str, batch: dict, timestep: int, **kwargs: Any) -> dict:
        config, module = self.config, self.module[module_id]
        extra = self.extra_state[module_id]
        target_net = extra["target"]
        optimizer = self.optimizers[module_id]["default"]
        self.set_lr(optimizer, scheduled(config.lr, timestep))
        b = to_tensors({k: v for k, v in batch.items() if k != "batch_indexes"})
        q_all = module.q_values(b[Columns.OBS])
        q = q_all.gather(1, b[Columns.ACTIONS].long().unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            next_target = target_net.q_values(b[Columns.NEXT_OBS])
            if config.double_q:
                best = module.q_values(b[Columns.NEXT_OBS]).argmax(-1, keepdim=True)
                next_q = next_target.gather(1, best).squeeze(1)
            else:
                next_q = next_target.max(-1).values
            not_done = 1.0 - b[Columns.TERMINATEDS].float()
            target = b[Columns.REWARDS] + bootstrap_gamma(config.gamma, b) * not_done * next_q
        td_error = q - target
        loss_fn = F.smooth_l1_loss if config.td_error_loss_fn == "huber" else F.mse_loss
        loss = (b["weights"] * loss_fn(q, target, reduction="none")).mean()
        grad_norm = self.apply_gradients(loss, optimizer)
        if timestep - extra["last_target_update"] >= config.target_network_update_freq:
            soft_update(target_net, module, config.tau)
            extra["last_target_update"] = timestep
        return {"qf_loss": loss.item(), "qf_mean": q.mean().item(), "qf_max": q.max().item(),
                "qf_min": q.min().item(), "td_error_mean": td_error.abs().mean().item(),
                "last_target_update_ts": extra["last_target_update"],
                "gradients_default_optimizer_global_norm": grad_norm,
                "num_module_steps_trained": len(q), "_td_error": td_error.detach().numpy()}


class DQN(OffPolicyAlgorithm):
    config_class = DQNConfig
    learner_class = DQNTorchLearner
    default_module_class = DefaultDQNTorchRLModule
    tf2_classes = ("solray.rllib.algorithms.dqn.dqn_tf_learner:DQNTfLearner",
                   "solray.rllib._internal.tf.modules:DefaultDQNTfRLModule")
    discrete_actions = True

    def model_extras(self, config: Any) -> dict:
        return {"dueling": config.dueling}

    def action_kwargs(self) -> dict:
        return {"epsilon": scheduled(self.config.epsilon, self.metrics.steps_sampled)}
