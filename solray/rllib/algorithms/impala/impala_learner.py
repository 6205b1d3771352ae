"""IMPALA's learner: policy gradient on V-trace advantages, value loss against V-trace
targets, entropy bonus. APPO's learner subclasses it and swaps the policy term."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from solray.rllib._internal.distributions import for_action_space
from solray.rllib._internal.learner import TorchLearner, mean_metrics, scheduled, to_tensors
from solray.rllib.algorithms.impala.vtrace import vtrace
from solray.rllib.core.columns import Columns

_TRAIN_COLUMNS = (Columns.OBS, Columns.NEXT_OBS, Columns.ACTIONS, Columns.ACTION_LOGP, Columns.REWARDS,
                  Columns.TERMINATEDS, Columns.TRUNCATEDS, "seg_end")


class IMPALATorchLearner(TorchLearner):
    def update_module(self, module_id: str, batch: dict, timestep: int, **kwargs: Any) -> dict:
        optimizer = self.optimizers[module_id]["default"]
        self.set_lr(optimizer, scheduled(self.config.lr, timestep))
        entropy_coeff = scheduled(self.config.entropy_coeff, timestep)
        batch = {k: batch[k] for k in _TRAIN_COLUMNS}
        rows = [self.train_on(module_id, piece, entropy_coeff, optimizer)
                for piece in self.pieces(module_id, batch)]
        metrics = mean_metrics(rows)
        metrics.update(self.after_update(module_id, metrics))
        metrics.update({"curr_entropy_coeff": entropy_coeff,
                        "default_optimizer_learning_rate": optimizer.param_groups[0]["lr"],
                        "num_module_steps_trained": len(batch[Columns.REWARDS]),
                        "num_minibatch_updates": len(rows)})
        return metrics

    def pieces(self, module_id: str, batch: dict) -> Iterator[dict]:
        """``num_epochs`` passes over contiguous minibatches (V-trace needs the steps in order).

        Every learner takes the same number of steps: it is derived from the configured batch
        size, not from this learner's shard, which may be a row shorter."""
        size = len(batch[Columns.REWARDS])
        per_learner = max(1, self.config.total_train_batch_size // self.world_size)
        minibatch = min(self.config.minibatch_size or per_learner, per_learner)
        steps_per_epoch = math.ceil(per_learner / minibatch)
        for _ in range(self.config.num_epochs):
            for step in range(steps_per_epoch):
                start = (step * minibatch) % size
                # an index array, not a slice: it copies, so read-only object-store arrays become tensors
                idx = np.arange(start, min(start + minibatch, size))
                yield {k: v[idx] for k, v in batch.items()}

    def after_update(self, module_id: str, metrics: dict) -> dict:
        """Extra work and metrics once a batch is trained (APPO: target network, KL coefficient)."""
        return {}

    def vtrace_targets(self, module: Any, b: dict, values: torch.Tensor, target_logp: torch.Tensor,
                       lambda_: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """V-trace ``(vs, pg_advantages)`` with ``target_logp`` as the target policy (no gradient)."""
        config = self.config
        with torch.no_grad():
            next_values = module.compute_values({Columns.OBS: b[Columns.NEXT_OBS]})
        terminated = b[Columns.TERMINATEDS].numpy().astype(bool)
        chain_ends = terminated | b[Columns.TRUNCATEDS].numpy().astype(bool) | b["seg_end"].numpy().astype(bool)
        vs, pg_advantages = vtrace(
            b[Columns.ACTION_LOGP].numpy(), target_logp.detach().numpy(), b[Columns.REWARDS].numpy(),
            values.detach().numpy(), next_values.numpy(), terminated, chain_ends, config.gamma,
            config.vtrace_clip_rho_threshold, config.vtrace_clip_pg_rho_threshold, lambda_)
        return torch.from_numpy(vs), torch.from_numpy(pg_advantages)

    def policy_loss(self, module_id: str, b: dict, dist: Any, logp: torch.Tensor,
                    values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """``(policy loss, value targets, extra loss, extra metrics)``: IMPALA's ``-logp * advantage``."""
        vs, pg_advantages = self.vtrace_targets(self.module[module_id], b, values, logp)
        return -(logp * pg_advantages).mean(), vs, torch.zeros(()), {}

    def train_on(self, module_id: str, piece: dict, entropy_coeff: float, optimizer: Any) -> dict:
        config, module = self.config, self.module[module_id]
        b = to_tensors(piece)
        out = module.forward_train({Columns.OBS: b[Columns.OBS]})
        dist = for_action_space(module.action_space)(out[Columns.ACTION_DIST_INPUTS])
        logp = dist.logp(b[Columns.ACTIONS])
        values = out[Columns.VF_PREDS]
        policy_loss, vs, extra_loss, extra = self.policy_loss(module_id, b, dist, logp, values)
        vf_loss = 0.5 * (values - vs).pow(2).mean()
        entropy = dist.entropy().mean()
        total = policy_loss + config.vf_loss_coeff * vf_loss - entropy_coeff * entropy + extra_loss
        grad_norm = self.apply_gradients(total, optimizer)
        var = float(vs.var())
        return {"policy_loss": policy_loss.item(), "vf_loss": vf_loss.item(), "entropy": entropy.item(),
                "total_loss": total.item(), "gradients_default_optimizer_global_norm": grad_norm,
                "vf_explained_var": 1 - float((vs - values.detach()).var()) / var if var > 0 else float("nan"),
                **extra}

