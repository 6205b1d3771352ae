"""``TfLearner``: the framework-neutral ``Learner`` with TensorFlow modules and optimizers.

The update over modules, minibatch index plans, weights and checkpoint state come from
``Learner``; this class adds TF modules, an Adam optimizer over ``tf.Variable``s and
``minimize`` (loss, gradients, clipping and the Adam step as one ``tf.function``). With several learner actors, gradients are averaged through the
same ``torch.distributed`` gloo group that ``LearnerGroup`` sets up (as flat NumPy buffers), so
TensorFlow needs no collectives of its own.
All state (weights, optimizer moments, target networks) leaves as NumPy: checkpoints and the
object store never see TF objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solray.rllib._internal.learner import Learner, allreduce_mean, scheduled
from solray.rllib._internal.tf.modules import TfRLModule
from solray.rllib._internal.tf.runtime import import_tf, seed_tf


class TfAdam:
    """Adam over ``tf.Variable``s with ``torch.optim.Adam``'s update rule and state layout.

    Hand-written rather than Keras' so the update matches the torch learners' (eps outside the
    bias-corrected square root) and its state is plain NumPy for checkpoints. ``lr`` and the
    step count are variables, so a compiled ``apply`` sees schedule changes without retracing.
    """

    def __init__(self, variables: list, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        tf = import_tf()
        self.variables = list(variables)
        self.betas, self.eps = tuple(betas), float(eps)
        self._lr_value = float(lr)
        self._lr = tf.Variable(self._lr_value, trainable=False, dtype=tf.float32)
        self._step = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        self.exp_avg = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.exp_avg_sq = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]

    @property
    def lr(self) -> float:
        return self._lr_value

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr_value = float(value)
        self._lr.assign(self._lr_value)

    @property
    def step(self) -> int:
        return int(self._step.numpy())

    def apply(self, grads: list) -> None:
        tf = import_tf()
        self._step.assign_add(1.0)
        beta1, beta2 = self.betas
        step_size = self._lr / (1.0 - tf.pow(beta1, self._step))
        bias_correction2_sqrt = tf.sqrt(1.0 - tf.pow(beta2, self._step))
        for var, grad, m, v in zip(self.variables, grads, self.exp_avg, self.exp_avg_sq, strict=True):
            m.assign(beta1 * m + (1 - beta1) * grad)
            v.assign(beta2 * v + (1 - beta2) * tf.square(grad))
            var.assign_sub(step_size * m / (tf.sqrt(v) / bias_correction2_sqrt + self.eps))

    def state_dict(self) -> dict:
        step = float(self.step)
        return {"state": {i: {"step": step, "exp_avg": m.numpy(), "exp_avg_sq": v.numpy()}
                          for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True))},
                "param_groups": [{"lr": self.lr, "betas": self.betas, "eps": self.eps}]}

    def load_state_dict(self, state: dict) -> None:
        entries = state["state"]
        if entries and len(entries) != len(self.variables):
            raise ValueError(f"optimizer state holds {len(entries)} variables, this optimizer has "
                             f"{len(self.variables)}: the checkpoint is from a different model")
        for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True)):
            if i in entries:
                m.assign(entries[i]["exp_avg"])
                v.assign(entries[i]["exp_avg_sq"])
        self._step.assign(float(entries[0]["step"]) if entries else 0.0)
        group = state["param_groups"][0]
        self.lr, self.eps = group["lr"], float(group["eps"])


class TfLearner(Learner):
    """Modules + optimizers of one TF learner; subclasses implement ``update_module``."""

    def __init__(self, config: Any, module_specs: dict, rank: int = 0, world_size: int = 1) -> None:
        self.tf = import_tf()
        self._compiled: dict = {}
        super().__init__(config, module_specs, rank, world_size)

    def seed_framework(self, seed: int | None) -> None:
        seed_tf(seed)

    def build_modules(self, module_specs: dict) -> dict[str, TfRLModule]:
        return {mid: spec.build() for mid, spec in module_specs.items()}

    def is_state_holder(self, value: Any) -> bool:
        return isinstance(value, TfRLModule)

    def state_of(self, holder: TfRLModule) -> dict:
        return holder.get_state()

    def load_state_into(self, holder: TfRLModule, state: dict) -> None:
        holder.set_state(state)

    def make_optimizers(self, module_id: str, module: TfRLModule) -> dict[str, TfAdam]:
        return {"default": TfAdam(module.trainable_variables, lr=scheduled(self.config.lr, 0))}

    def set_lr(self, optimizer: TfAdam, lr: float) -> None:
        optimizer.lr = lr

    def gradients(self, tape: Any, loss: Any, variables: list) -> list:
        """d loss / d ``variables`` (zeros where the loss does not reach one, so every learner
        all-reduces the same list)."""
        return tape.gradient(loss, variables, unconnected_gradients=self.tf.UnconnectedGradients.ZERO)

    def apply_gradients(self, grads: list, optimizer: TfAdam) -> float:
        """Average across learners, clip, step; returns the gradient norm (as the torch learner)."""
        if self.world_size > 1:
            grads = self._allreduce(grads)
        step = self.compiled(("apply", id(optimizer)), lambda g: self._clip_and_apply(g, optimizer))
        return float(step(grads))

    def minimize(self, key: Any, loss_and_grads: Any, optimizer: TfAdam, *args: Any) -> tuple[float, Any]:
        """``loss_and_grads(*args) -> (grads, outputs)``, then ``apply_gradients``; returns the
        gradient norm and ``outputs``. One learner runs it all as one compiled step; several
        stop between the two for the cross-learner average."""
        if self.world_size > 1:
            grads, outputs = self.compiled(key, loss_and_grads)(*args)
            return self.apply_gradients(grads, optimizer), outputs

        def step(*step_args: Any) -> tuple:
            grads, outputs = loss_and_grads(*step_args)
            return self._clip_and_apply(grads, optimizer), outputs

        norm, outputs = self.compiled(key, step)(*args)
        return float(norm), outputs

    def compiled(self, key: Any, fn: Any) -> Any:
        """``tf.function(fn)``, made once per ``key``: eager TF spends most of a small network's
        step in Python dispatch, a compiled step runs it as one graph."""
        if key not in self._compiled:
            self._compiled[key] = self.tf.function(fn)
        return self._compiled[key]

    def _clip_and_apply(self, grads: list, optimizer: TfAdam) -> Any:
        tf = self.tf
        clip, how = self.config.grad_clip, self.config.grad_clip_by
        if clip is not None and how == "global_norm":
            grads, norm = tf.clip_by_global_norm(grads, clip)
        else:
            if clip is not None and how == "value":
                grads = [tf.clip_by_value(g, -clip, clip) for g in grads]
            elif clip is not None:
                grads = [tf.clip_by_norm(g, clip) for g in grads]
            norm = tf.linalg.global_norm(grads)
        optimizer.apply(grads)
        return norm

    def _allreduce(self, grads: list) -> list:
        import torch

        flat = torch.from_numpy(np.concatenate([np.asarray(g, np.float32).reshape(-1) for g in grads]))
        flat = allreduce_mean(flat, self.world_size).numpy()
        out, offset = [], 0
        for g in grads:
            n = int(np.prod(g.shape))
            out.append(self.tf.constant(flat[offset:offset + n].reshape(g.shape)))
            offset += n
        return out
