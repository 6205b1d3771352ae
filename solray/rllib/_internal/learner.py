"""Learners: own the modules being trained and their optimizers, and update them.

``Learner`` is what every framework shares (the update over modules, minibatch plans, weights
and checkpoint state); ``TorchLearner`` adds PyTorch's optimizers and gradient step (the TF
one is ``_internal/tf/learner.py``). Algorithms subclass them with their loss
(``update_module``). When several learners run as actors (``num_learners>=1``) each holds a
shard of every batch and ``apply_gradients`` averages gradients across them with
``torch.distributed`` (gloo) before stepping, so all copies stay identical; every learner must
then take the same number of optimizer steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from solray.rllib._internal.env_runner import seed_everything
from solray.rllib.core.rl_module.rl_module import MultiRLModule


def scheduled(value: Any, timestep: int) -> float:
    """A constant, or Ray's piecewise-linear schedule ``[[timestep, value], ...]`` at ``timestep``."""
    if not isinstance(value, list):
        return float(value)
    points = sorted((int(t), float(v)) for t, v in value)
    if timestep <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        if timestep <= t1:
            return v0 + (v1 - v0) * (timestep - t0) / max(1, t1 - t0)
    return points[-1][1]


class Learner:
    """Modules + optimizers of one learner, whatever the framework; subclasses supply the
    framework's parts and algorithms implement ``update_module``."""

    def __init__(self, config: Any, module_specs: dict, rank: int = 0, world_size: int = 1) -> None:
        self.config = config
        self.rank, self.world_size = rank, world_size
        self.module_specs = module_specs
        seed_everything(config.seed)  # NumPy's and torch's generators draw the initial weights
        self.seed_framework(config.seed)
        self.module = self.build_modules(module_specs)
        self.optimizers: dict[str, dict[str, Any]] = {}
        self.extra_state: dict[str, dict] = {}
        for mid, module in self.module.items():
            self.optimizers[mid] = self.make_optimizers(mid, module)
            self.extra_state[mid] = {}
            self.build_module_extras(mid, module)
        self.rng = np.random.default_rng(config.seed)
        trainable = config.policies_to_train
        self.modules_to_train = set(trainable) if trainable else set(self.module.keys())

    # --- what frameworks supply ----------------------------------------------------------------
    def seed_framework(self, seed: int | None) -> None:
        """Seed the framework's own generators (beyond NumPy's and torch's)."""

    def build_modules(self, module_specs: dict) -> Any:
        raise NotImplementedError

    def make_optimizers(self, module_id: str, module: Any) -> dict[str, Any]:
        raise NotImplementedError

    def set_lr(self, optimizer: Any, lr: float) -> None:
        raise NotImplementedError

    def is_state_holder(self, value: Any) -> bool:
        """Whether an ``extra_state`` value is a network (target nets) saved through its state."""
        return False

    def state_of(self, holder: Any) -> Any:
        raise NotImplementedError

    def load_state_into(self, holder: Any, state: Any) -> None:
        raise NotImplementedError

    # --- what algorithms override ------------------------------------------------------------
    def build_module_extras(self, module_id: str, module: Any) -> None:
        """Target networks and the like."""

    def update_module(self, module_id: str, batch: dict, timestep: int, **kwargs: Any) -> dict:
        raise NotImplementedError

    # --- updating -----------------------------------------------------------------------------
    def update(self, batches: dict[str, dict], timestep: int = 0, **kwargs: Any) -> dict[str, dict]:
        """One update from a batch per module; returns metrics per module id."""
        metrics = {}
        for mid, batch in batches.items():
            if mid in self.modules_to_train and mid in self.module:
                metrics[mid] = self.update_module(mid, batch, timestep, **kwargs)
        return metrics

    # --- state --------------------------------------------------------------------------------
    def get_weights(self, module_ids: list[str] | None = None) -> dict:
        return {mid: m.get_state() for mid, m in self.module.items() if module_ids is None or mid in module_ids}

    def set_weights(self, weights: dict) -> None:
        for mid, state in weights.items():
            self.module[mid].set_state(state)
        self.after_weights_set()

    def after_weights_set(self) -> None:
        """Targets copy the restored weights (algorithms with target networks)."""

    def get_state(self) -> dict:
        return {
            "weights": self.get_weights(),
            "optimizers": {mid: {name: opt.state_dict() for name, opt in opts.items()}
                           for mid, opts in self.optimizers.items()},
            "extra": {mid: {k: (self.state_of(v) if self.is_state_holder(v) else v) for k, v in extra.items()}
                      for mid, extra in self.extra_state.items()},
        }

    def set_state(self, state: dict) -> None:
        self.set_weights(state["weights"])
        for mid, opts in state.get("optimizers", {}).items():
            for name, opt_state in opts.items():
                self.optimizers[mid][name].load_state_dict(opt_state)
        for mid, extra in state.get("extra", {}).items():
            for key, value in extra.items():
                current = self.extra_state[mid].get(key)
                if self.is_state_holder(current):
                    self.load_state_into(current, value)
                else:
                    self.extra_state[mid][key] = value

    def minibatches(self, size: int, minibatch_size: int | None, num_epochs: int, steps_per_epoch: int):
        """Index arrays: ``num_epochs`` shuffled passes of ``steps_per_epoch`` minibatches each."""
        minibatch_size = min(minibatch_size or size, size)
        for _ in range(num_epochs):
            order = self.rng.permutation(size) if self.config.shuffle_batch_per_epoch else np.arange(size)
            for step in range(steps_per_epoch):
                start = (step * minibatch_size) % size
                idx = order[start:start + minibatch_size]
                if len(idx) < minibatch_size:  # wrap around so every learner steps equally often
                    idx = np.concatenate([idx, order[:minibatch_size - len(idx)]])
                yield idx


def allreduce_mean(flat: torch.Tensor, world_size: int) -> torch.Tensor:
    """The mean of ``flat`` over every learner (in place), through the learners' gloo group."""
    import torch.distributed as dist

    dist.all_reduce(flat)
    flat /= world_size
    return flat


class TorchLearner(Learner):
    """A learner of torch modules with torch optimizers."""

    def build_modules(self, module_specs: dict) -> MultiRLModule:
        return MultiRLModule({mid: spec.build() for mid, spec in module_specs.items()})

    def make_optimizers(self, module_id: str, module: nn.Module) -> dict[str, torch.optim.Optimizer]:
        return {"default": torch.optim.Adam(module.parameters(), lr=scheduled(self.config.lr, 0), foreach=True)}

    def set_lr(self, optimizer: torch.optim.Optimizer, lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr

    def is_state_holder(self, value: Any) -> bool:
        return isinstance(value, nn.Module)

    def state_of(self, holder: nn.Module) -> dict:
        return holder.state_dict()

    def load_state_into(self, holder: nn.Module, state: dict) -> None:
        holder.load_state_dict(state)

    def apply_gradients(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                        params: list[torch.Tensor] | None = None) -> float:
        """Backward, average across learners, clip, step; returns the gradient norm."""
        params = params or [p for g in optimizer.param_groups for p in g["params"]]
        optimizer.zero_grad(set_to_none=False)
        # Gradients for this optimizer's parameters only (SAC's actor loss also reaches the critics).
        loss.backward(inputs=params)
        if self.world_size > 1:
            self._allreduce([p for p in params if p.grad is not None])
        clip, how = self.config.grad_clip, self.config.grad_clip_by
        if clip is not None and how == "global_norm":
            norm = float(nn.utils.clip_grad_norm_(params, clip))
        else:
            if clip is not None and how == "value":
                nn.utils.clip_grad_value_(params, clip)
            elif clip is not None:
                for p in params:
                    if p.grad is not None:
                        nn.utils.clip_grad_norm_([p], clip)
            grads = [p.grad for p in params if p.grad is not None]
            norm = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))) if grads else 0.0
        optimizer.step()
        return norm

    def _allreduce(self, params: list[torch.Tensor]) -> None:
        flat = allreduce_mean(torch.cat([p.grad.reshape(-1) for p in params]), self.world_size)
        offset = 0
        for p in params:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- tau * source + (1 - tau) * target`` (target networks)."""
    with torch.no_grad():
        targets, sources = list(target.parameters()), list(source.parameters())
        torch._foreach_mul_(targets, 1.0 - tau)
        torch._foreach_add_(targets, sources, alpha=tau)


def adapt_kl_coeff(kl_coeff: float, mean_kl: float, kl_target: float) -> float:
    """Ray's adaptive KL penalty: raise it when the policy moved too far, lower it when too little."""
    if mean_kl > 2.0 * kl_target:
        return kl_coeff * 1.5
    if mean_kl < 0.5 * kl_target:
        return kl_coeff * 0.5
    return kl_coeff


def to_tensors(batch: dict, idx: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in batch.items():
        if idx is not None:
            value = value[idx]
        out[key] = torch.from_numpy(np.ascontiguousarray(value))
    return out


def mean_metrics(rows: list[dict]) -> dict:
    if not rows:
        return {}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
