"""DQN's learner for framework("tf2"): the same TD update as ``DQNTorchLearner`` (target network
refreshed every ``target_network_update_freq`` steps with rate ``tau``, double Q, Huber or MSE
loss weighted by prioritized replay's importance weights), in TensorFlow.

A replayed batch may carry an ``n_step`` column (how many rewards its ``rewards`` entry sums);
the target then bootstraps with ``gamma ** n_step`` per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solray.rllib._internal.learner import scheduled
from solray.rllib._internal.off_policy import bootstrap_gamma
from solray.rllib._internal.tf.learner import TfAdam, TfLearner
from solray.rllib.core.columns import Columns


class DQNTfLearner(TfLearner):
    def make_optimizers(self, module_id: str, module: Any) -> dict:
        return {"default": TfAdam(module.trainable_variables, lr=scheduled(self.config.lr, 0),
                                  eps=self.config.adam_epsilon)}

    def build_module_extras(self, module_id: str, module: Any) -> None:
        target = self.module_specs[module_id].build()
        target.set_state(module.get_state())
        target.variables  # noqa: B018 - created now: a compiled step may not create variables
        self.extra_state[module_id].update({"target": target, "last_target_update": 0})

    def after_weights_set(self) -> None:
        for mid, module in self.module.items():
            self.extra_state[mid]["target"].set_state(module.get_state())

    def update_module(self, module_id: str, batch: dict, timestep: int, **kwargs: Any) -> dict:
        tf, config, module = self.tf, self.config, self.module[module_id]
        extra = self.extra_state[module_id]
        target_net = extra["target"]
        optimizer = self.optimizers[module_id]["default"]
        self.set_lr(optimizer, scheduled(config.lr, timestep))
        size = len(batch[Columns.REWARDS])
        discount = bootstrap_gamma(config.gamma, batch) * (1.0 - np.asarray(batch[Columns.TERMINATEDS], np.float32))
        grad_norm, (q, td_error, loss) = self.minimize(
            ("dqn", module_id), self._loss_and_grads, optimizer, module_id,
            tf.constant(batch[Columns.OBS]), tf.constant(batch[Columns.NEXT_OBS]),
            tf.constant(np.asarray(batch[Columns.ACTIONS], np.int32)),
            tf.constant(np.asarray(batch[Columns.REWARDS], np.float32)),
            tf.constant(np.broadcast_to(discount, (size,)).astype(np.float32)),
            tf.constant(np.asarray(batch.get("weights", np.ones(size)), np.float32)))
        if timestep - extra["last_target_update"] >= config.target_network_update_freq:
            tau = config.tau
            for t, s in zip(target_net.trainable_variables, module.trainable_variables, strict=True):
                t.assign((1.0 - tau) * t + tau * s)
            extra["last_target_update"] = timestep
        q, td_error = q.numpy(), td_error.numpy()
        return {"qf_loss": float(loss), "qf_mean": float(q.mean()), "qf_max": float(q.max()),
                "qf_min": float(q.min()), "td_error_mean": float(np.abs(td_error).mean()),
                "last_target_update_ts": extra["last_target_update"],
                "gradients_default_optimizer_global_norm": grad_norm,
                "num_module_steps_trained": size, "_td_error": td_error}

    def _loss_and_grads(self, module_id: str, obs: Any, next_obs: Any, actions: Any, rewards: Any,
                        discount: Any, weights: Any) -> tuple:
        """The TD loss of one replayed batch and its gradients (compiled; the config is fixed per trace)."""
        tf, config, module = self.tf, self.config, self.module[module_id]
        target_net = self.extra_state[module_id]["target"]
        next_target = target_net.q_values(next_obs)
        if config.double_q:
            best = tf.argmax(module.q_values(next_obs), -1, output_type=tf.int32)[:, None]
            next_q = tf.gather(next_target, best, batch_dims=1)[:, 0]
        else:
            next_q = tf.reduce_max(next_target, -1)
        target = tf.stop_gradient(rewards + discount * next_q)
        with tf.GradientTape() as tape:
            q = tf.gather(module.q_values(obs), actions[:, None], batch_dims=1)[:, 0]
            td_error = q - target
            if config.td_error_loss_fn == "huber":  # torch's smooth_l1_loss (beta=1)
                abs_td = tf.abs(td_error)
                per_row = tf.where(abs_td < 1.0, 0.5 * tf.square(td_error), abs_td - 0.5)
            else:
                per_row = tf.square(td_error)
            loss = tf.reduce_mean(weights * per_row)
        return self.gradients(tape, loss, module.trainable_variables), (q, td_error, loss)
