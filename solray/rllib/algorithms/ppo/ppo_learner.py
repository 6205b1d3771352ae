"""PPO's math: GAE on each sampled fragment (in the EnvRunner) and the clipped-surrogate
learner update with value loss, entropy bonus, adaptive KL penalty and minibatch epochs.

A recurrent module trains on padded sequences (see ``_internal/sequences.py``); minibatches
are drawn over sequences and padded steps are dropped before any loss term."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from solray.rllib._internal.distributions import for_action_space
from solray.rllib._internal.learner import (
    TorchLearner,
    adapt_kl_coeff,
    mean_metrics,
    scheduled,
    to_tensors,
)
from solray.rllib._internal.sequences import build_sequences, sequence_inputs
from solray.rllib.core.columns import Columns


def compute_gae(module: Any, batch: dict, config: Any) -> dict:
    """Add ``advantages`` and ``value_targets`` (generalized advantage estimation).

    Runs where the fragment was sampled, with the same weights that chose its actions. A step
    ends its chain when its episode ended or its fragment piece was cut (``seg_end``); the
    value of the next observation is bootstrapped unless the episode *terminated*. A recurrent
    module's values were recorded while acting (``vf_preds``, and ``values_bootstrapped`` where
    a chain is cut): the state they need exists only there.
    """
    rewards = batch[Columns.REWARDS].astype(np.float32)
    terminated = batch[Columns.TERMINATEDS].astype(bool)
    chain_ends = terminated | batch[Columns.TRUNCATEDS].astype(bool) | batch["seg_end"]
    if not config.use_critic:
        values = next_values = np.zeros_like(rewards)
    elif Columns.VALUES_BOOTSTRAPPED in batch:
        values = batch[Columns.VF_PREDS].astype(np.float32)
        next_values = np.where(chain_ends, batch[Columns.VALUES_BOOTSTRAPPED], np.r_[values[1:], 0.0])
    else:
        values = module_values(module, batch[Columns.OBS])
        next_values = module_values(module, batch[Columns.NEXT_OBS])
    gamma, lam = config.gamma, (config.lambda_ if config.use_gae else 1.0)
    deltas = rewards + gamma * np.where(terminated, 0.0, next_values) - values
    keep = np.where(chain_ends, 0.0, gamma * lam).astype(np.float32)
    advantages = np.empty_like(deltas, dtype=np.float32)
    last = 0.0
    for t in range(len(deltas) - 1, -1, -1):
        last = deltas[t] + keep[t] * last
        advantages[t] = last
    batch[Columns.ADVANTAGES] = advantages
    batch[Columns.VALUE_TARGETS] = (advantages + values).astype(np.float32)
    batch[Columns.VF_PREDS] = values.astype(np.float32)
    return batch


def module_values(module: Any, obs: np.ndarray) -> np.ndarray:
    """The value head's estimates for NumPy observations, whatever the module's framework."""
    if getattr(module, "framework", "torch") == "torch":
        with torch.no_grad():
            return module.compute_values({Columns.OBS: torch.from_numpy(obs)}).numpy()
    return np.asarray(module.compute_values({Columns.OBS: obs}))


class PPOLearnerSteps:
    """What PPO's torch and TF learners share around their loss: the schedules, advantage
    normalisation and minibatch plan before the epochs, Ray's adaptive KL and the metrics after."""

    def build_module_extras(self, module_id: str, module: Any) -> None:
        self.extra_state[module_id]["kl_coeff"] = float(self.config.kl_coeff)

    def begin_update(self, module_id: str, batch: dict, timestep: int) -> tuple[dict, float, float, int, int]:
        """``(batch with normalised advantages, entropy_coeff, kl_coeff, minibatch size,
        minibatches per epoch)``; also sets this update's learning rate."""
        config = self.config
        self.set_lr(self.optimizers[module_id]["default"], scheduled(config.lr, timestep))
        batch = dict(batch)
        adv = batch[Columns.ADVANTAGES]
        batch[Columns.ADVANTAGES] = ((adv - adv.mean()) / max(1e-4, float(adv.std()))).astype(np.float32)
        per_learner = max(1, config.total_train_batch_size // self.world_size)
        minibatch = min(config.minibatch_size or per_learner, per_learner)
        return (batch, scheduled(config.entropy_coeff, timestep), self.extra_state[module_id]["kl_coeff"],
                minibatch, math.ceil(per_learner / minibatch))

    def end_update(self, module_id: str, batch: dict, rows: list[dict], entropy_coeff: float, lr: float) -> dict:
        config = self.config
        metrics = mean_metrics(rows)
        kl_coeff = self.extra_state[module_id]["kl_coeff"]
        if config.use_kl_loss:
            kl_coeff = adapt_kl_coeff(kl_coeff, metrics["mean_kl_loss"], config.kl_target)
            self.extra_state[module_id]["kl_coeff"] = kl_coeff
        targets, preds = batch[Columns.VALUE_TARGETS], batch[Columns.VF_PREDS]
        var = float(np.var(targets))
        metrics.update({
            "vf_explained_var": float(1 - np.var(targets - preds) / var) if var > 0 else float("nan"),
            "curr_kl_coeff": kl_coeff, "curr_entropy_coeff": entropy_coeff,
            "default_optimizer_learning_rate": lr,
            "num_module_steps_trained": len(targets), "num_minibatch_updates": len(rows)})
        return metrics


class PPOTorchLearner(PPOLearnerSteps, TorchLearner):
    def update_module(self, module_id: str, batch: dict, timestep: int, **kwargs: Any) -> dict:
        config, module = self.config, self.module[module_id]
        optimizer = self.optimizers[module_id]["default"]
        batch, entropy_coeff, kl_coeff, minibatch, steps_per_epoch = self.begin_update(module_id, batch, timestep)
        dist_class = for_action_space(module.action_space)
        size = len(batch[Columns.ADVANTAGES])
        keys = (Columns.OBS, Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS,
                Columns.ADVANTAGES, Columns.VALUE_TARGETS)
        recurrent = getattr(module, "is_stateful", lambda: False)()
        if recurrent:
            # Minibatches of whole sequences, about ``minibatch`` steps each.
            data = build_sequences(batch, int(config.model_config.max_seq_len), keys)
            units = len(data[Columns.LOSS_MASK])
            unit_minibatch = math.ceil(units / steps_per_epoch)
        else:
            data, units, unit_minibatch = {k: batch[k] for k in keys}, size, minibatch
        rows = []
        for idx in self.minibatches(units, unit_minibatch, config.num_epochs, steps_per_epoch):
            mb = to_tensors(data, idx)
            if recurrent:
                out = module.forward_train(sequence_inputs(mb))
                mask = mb[Columns.LOSS_MASK]
                out = {k: out[k][mask] for k in (Columns.ACTION_DIST_INPUTS, Columns.VF_PREDS)}
                mb = {k: mb[k][mask] for k in keys}
            else:
                out = module.forward_train({Columns.OBS: mb[Columns.OBS]})
            dist = dist_class(out[Columns.ACTION_DIST_INPUTS])
            logp = dist.logp(mb[Columns.ACTIONS])
            ratio = torch.exp(logp - mb[Columns.ACTION_LOGP])
            advantages = mb[Columns.ADVANTAGES]
            surrogate = torch.min(ratio * advantages,
                                  ratio.clamp(1 - config.clip_param, 1 + config.clip_param) * advantages)
            entropy = dist.entropy().mean()
            kl = dist_class(mb[Columns.ACTION_DIST_INPUTS]).kl(dist).mean() if config.use_kl_loss else torch.zeros(())
            if config.use_critic:
                vf_unclipped = (out[Columns.VF_PREDS] - mb[Columns.VALUE_TARGETS]).pow(2)
                vf_loss = vf_unclipped.clamp(0, config.vf_clip_param)
            else:
                vf_unclipped = vf_loss = torch.zeros_like(ratio)
            policy_loss = -surrogate.mean()
            total = policy_loss + config.vf_loss_coeff * vf_loss.mean() - entropy_coeff * entropy
            if config.use_kl_loss:
                total = total + kl_coeff * kl
            grad_norm = self.apply_gradients(total, optimizer)
            rows.append({"policy_loss": policy_loss.item(), "vf_loss": vf_loss.mean().item(),
                         "vf_loss_unclipped": vf_unclipped.mean().item(), "entropy": entropy.item(),
                         "mean_kl_loss": kl.item(), "total_loss": total.item(),
                         "gradients_default_optimizer_global_norm": grad_norm})
        return self.end_update(module_id, batch, rows, entropy_coeff, optimizer.param_groups[0]["lr"])
