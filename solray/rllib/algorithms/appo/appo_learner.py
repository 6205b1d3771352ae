"""APPO's learner: PPO's clipped surrogate on V-trace advantages, measured against a target
network (the slowly updated reference policy of Luo et al. 2020, "IMPACT"), an optional KL
penalty towards it, and each batch replayed ``circular_buffer_iterations_per_batch`` times."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch

from solray.rllib._internal.distributions import for_action_space
from solray.rllib._internal.learner import adapt_kl_coeff, soft_update
from solray.rllib.algorithms.impala.impala_learner import IMPALATorchLearner
from solray.rllib.core.columns import Columns


class APPOTorchLearner(IMPALATorchLearner):
    def build_module_extras(self, module_id: str, module: Any) -> None:
        target = copy.deepcopy(module)
        target.requires_grad_(False)
        self.extra_state[module_id].update({"target": target, "kl_coeff": float(self.config.kl_coeff),
                                            "num_updates": 0, "num_target_updates": 0})

    def after_weights_set(self) -> None:
        for mid, module in self.module.items():
            self.extra_state[mid]["target"].load_state_dict(module.state_dict())

    def pieces(self, module_id: str, batch: dict) -> Iterator[dict]:
        # Ray replays each batch from a small circular buffer up to K times while new ones
        # arrive; solray's learner trains each batch as it comes, so it simply takes K passes.
        for _ in range(self.config.circular_buffer_iterations_per_batch):
            yield from super().pieces(module_id, batch)

    def policy_loss(self, module_id: str, b: dict, dist: Any, logp: torch.Tensor,
                    values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        config, module = self.config, self.module[module_id]
        extra = self.extra_state[module_id]
        with torch.no_grad():
            target_inputs = extra["target"].forward_train({Columns.OBS: b[Columns.OBS]})[Columns.ACTION_DIST_INPUTS]
        target_dist = for_action_space(module.action_space)(target_inputs)
        target_logp = target_dist.logp(b[Columns.ACTIONS])
        vs, advantages = self.vtrace_targets(module, b, values, target_logp, config.lambda_)
        behaviour_logp = b[Columns.ACTION_LOGP]
        # ratio pi/pi_target, with the behaviour-to-target part clipped (IMPACT's target-worker clipping)
        is_ratio = torch.exp(behaviour_logp - target_logp).clamp(0.0, config.target_worker_clipping)
        ratio = is_ratio * torch.exp(logp - behaviour_logp)
        surrogate = torch.min(ratio * advantages,
                              ratio.clamp(1 - config.clip_param, 1 + config.clip_param) * advantages)
        kl = target_dist.kl(dist).mean() if config.use_kl_loss else torch.zeros(())
        kl_loss = extra["kl_coeff"] * kl if config.use_kl_loss else torch.zeros(())
        return -surrogate.mean(), vs, kl_loss, {"mean_kl_loss": kl.item()}

    def after_update(self, module_id: str, metrics: dict) -> dict:
        config, extra = self.config, self.extra_state[module_id]
        extra["num_updates"] += 1
        if extra["num_updates"] % config.target_network_update_freq == 0:
            soft_update(extra["target"], self.module[module_id], config.tau)
            extra["num_target_updates"] += 1
            if config.use_kl_loss:
                extra["kl_coeff"] = adapt_kl_coeff(extra["kl_coeff"], metrics["mean_kl_loss"], config.kl_target)
        return {"curr_kl_coeff": extra["kl_coeff"], "num_target_updates": extra["num_target_updates"]}
