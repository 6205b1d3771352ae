"""SAC (soft actor-critic) for continuous actions: ``SACConfig`` and ``SAC``.

Twin Q critics with soft-updated targets, a tanh-squashed Gaussian actor and automatic
entropy tuning (``alpha`` learned towards ``target_entropy``, by default -action_dim).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch

from solray.rllib._internal.config_schema import BOOL, FLOAT, Key, at_least
from solray.rllib._internal.distributions import squashed_sample
from solray.rllib._internal.learner import TorchLearner, soft_update, to_tensors
from solray.rllib._internal.modules import DefaultSACTorchRLModule
from solray.rllib._internal.off_policy import OFF_POLICY_KEYS, OffPolicyAlgorithm, bootstrap_gamma
from solray.rllib.algorithms.algorithm_config import AlgorithmConfig
from solray.rllib.core.columns import Columns


class SACConfig(AlgorithmConfig):
    """SAC's keys, with Ray's defaults: ``.training(actor_lr=, critic_lr=, alpha_lr=, tau=, ...)``."""

    _TRAINING_KEYS = {
        **OFF_POLICY_KEYS,
        "twin_q": Key(True, BOOL),
        "actor_lr": Key(3e-5, FLOAT, at_least(0)),
        "critic_lr": Key(3e-4, FLOAT, at_least(0)),
        "alpha_lr": Key(3e-4, FLOAT, at_least(0)),
        "initial_alpha": Key(1.0, FLOAT, at_least(0)),
        "target_entropy": Key("auto", (str, float, int)),
        "q_model_config": Key(None, (dict,), nullable=True),
        "policy_model_config": Key(None, (dict,), nullable=True),
    }
    _DEFAULT_OVERRIDES = {
        "train_batch_size": 256, "tau": 5e-3, "target_network_update_freq": 0,
        "num_steps_sampled_before_learning_starts": 1500,
        "replay_buffer_config": {"type": "PrioritizedEpisodeReplayBuffer", "capacity": 1_000_000,
                                 "alpha": 0.6, "beta": 0.4},
        "min_sample_timesteps_per_iteration": 1000,
    }

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or SAC)


class SACTorchLearner(TorchLearner):
    def make_optimizers(self, module_id: str, module: Any) -> dict:
        c = self.config
        critic_params = list(module.qf.parameters()) + (list(module.qf_twin.parameters()) if c.twin_q else [])
        self.log_alpha = getattr(self, "log_alpha", {})
        self.log_alpha[module_id] = torch.tensor(math.log(c.initial_alpha), requires_grad=True)
        return {"actor": torch.optim.Adam(module.pi.parameters(), lr=c.actor_lr, foreach=True),
                "critic": torch.optim.Adam(critic_params, lr=c.critic_lr, foreach=True),
                "alpha": torch.optim.Adam([self.log_alpha[module_id]], lr=c.alpha_lr)}

    def build_module_extras(self, module_id: str, module: Any) -> None:
        target = copy.deepcopy(module)
        target.requires_grad_(False)
        entropy = self.config.target_entropy
        if entropy == "auto":
            entropy = -float(np.prod(module.action_space.shape))
        self.extra_state[module_id].update({"target": target, "target_entropy": float(entropy)})

    def after_weights_set(self) -> None:
        for mid, module in self.module.items():
            self.extra_state[mid]["target"].load_state_dict(module.state_dict())

    def get_state(self) -> dict:
        state = super().get_state()
        state["log_alpha"] = {mid: float(v) for mid, v in self.log_alpha.items()}
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        with torch.no_grad():
            for mid, value in state.get("log_alpha", {}).items():
                self.log_alpha[mid].fill_(value)

    def update_module(self, module_id: str, batch: dict, timestep: int, **kwargs: Any) -> dict:
        c, module = self.config, self.module[module_id]
        extra, opts, log_alpha = self.extra_state[module_id], self.optimizers[module_id], self.log_alpha[module_id]
        target_net = extra["target"]
        b = to_tensors({k: v for k, v in batch.items() if k != "batch_indexes"})
        obs, actions = b[Columns.OBS], b[Columns.ACTIONS].float()
        alpha = log_alpha.exp().detach()

        def q_min(net: Any, o: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            q = net.q(o, a)
            return torch.min(q, net.q(o, a, twin=True)) if c.twin_q else q

        with torch.no_grad():
            next_actions, next_logp = squashed_sample(module.pi(b[Columns.NEXT_OBS]))
            next_q = q_min(target_net, b[Columns.NEXT_OBS], next_actions) - alpha * next_logp
            not_done = 1.0 - b[Columns.TERMINATEDS].float()
            target = b[Columns.REWARDS] + bootstrap_gamma(c.gamma, b) * not_done * next_q
        q1 = module.q(obs, actions)
        td_error = q1 - target
        critic_loss = 0.5 * (b["weights"] * td_error.pow(2)).mean()
        if c.twin_q:
            critic_loss = critic_loss + 0.5 * (b["weights"] * (module.q(obs, actions, twin=True) - target).pow(2)).mean()
        self.apply_gradients(critic_loss, opts["critic"])

        new_actions, logp = squashed_sample(module.pi(obs))
        actor_loss = (alpha * logp - q_min(module, obs, new_actions)).mean()
        self.apply_gradients(actor_loss, opts["actor"])
        alpha_loss = -(log_alpha * (logp.detach() + extra["target_entropy"])).mean()
        self.apply_gradients(alpha_loss, opts["alpha"])
        soft_update(target_net.qf, module.qf, c.tau)
        soft_update(target_net.qf_twin, module.qf_twin, c.tau)
        return {"qf_loss": critic_loss.item(), "policy_loss": actor_loss.item(), "alpha_loss": alpha_loss.item(),
                "alpha_value": log_alpha.exp().item(), "qf_mean": q1.mean().item(),
                "log_alpha_value": log_alpha.item(), "num_module_steps_trained": len(q1),
                "_td_error": td_error.detach().numpy()}


class SAC(OffPolicyAlgorithm):
    config_class = SACConfig
    learner_class = SACTorchLearner
    default_module_class = DefaultSACTorchRLModule
    discrete_actions = False
    default_fragment_length = 1

    def action_kwargs(self) -> dict:
        # Uniform random actions until learning starts fill the buffer with varied experience.
        return {"random_actions": self.metrics.steps_sampled < self.config.num_steps_sampled_before_learning_starts}
