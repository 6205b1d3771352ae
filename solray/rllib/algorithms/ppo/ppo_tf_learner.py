"""PPO's learner for framework("tf2"): the same clipped-surrogate update as ``PPOTorchLearner``
(value loss clipped at ``vf_clip_param``, scheduled entropy bonus, adaptive KL penalty,
normalised advantages, ``num_epochs`` passes of minibatches), in TensorFlow. GAE was computed
in the EnvRunners (``compute_gae``)."""

from __future__ import annotations

from typing import Any

from solray.rllib._internal.tf.distributions import tf_dist_for
from solray.rllib._internal.tf.learner import TfLearner
from solray.rllib.algorithms.ppo.ppo_learner import PPOLearnerSteps
from solray.rllib.core.columns import Columns

_TRAIN_COLUMNS = (Columns.OBS, Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS,
                  Columns.ADVANTAGES, Columns.VALUE_TARGETS)


class PPOTfLearner(PPOLearnerSteps, TfLearner):
    def update_module(self, module_id: str, batch: dict, timestep: int, **kwargs: Any) -> dict:
        tf, config = self.tf, self.config
        optimizer = self.optimizers[module_id]["default"]
        batch, entropy_coeff, kl_coeff, minibatch, steps_per_epoch = self.begin_update(module_id, batch, timestep)
        size = len(batch[Columns.ADVANTAGES])
        coeffs = tf.constant(kl_coeff, tf.float32), tf.constant(entropy_coeff, tf.float32)
        rows = []
        for idx in self.minibatches(size, minibatch, config.num_epochs, steps_per_epoch):
            grad_norm, stats = self.minimize(("ppo", module_id), self._loss_and_grads, optimizer, module_id,
                                             {k: tf.constant(batch[k][idx]) for k in _TRAIN_COLUMNS}, *coeffs)
            rows.append({**{k: float(v) for k, v in stats.items()},
                         "gradients_default_optimizer_global_norm": grad_norm})
        return self.end_update(module_id, batch, rows, entropy_coeff, optimizer.lr)

    def _loss_and_grads(self, module_id: str, mb: dict, kl_coeff: Any, entropy_coeff: Any) -> tuple[list, dict]:
        """One minibatch's PPO loss and its gradients (compiled; the config is fixed per trace)."""
        tf, config, module = self.tf, self.config, self.module[module_id]
        dist_class = tf_dist_for(module.action_space)
        with tf.GradientTape() as tape:
            out = module.forward_train({Columns.OBS: mb[Columns.OBS]})
            dist = dist_class(out[Columns.ACTION_DIST_INPUTS])
            ratio = tf.exp(dist.logp(mb[Columns.ACTIONS]) - mb[Columns.ACTION_LOGP])
            advantages = mb[Columns.ADVANTAGES]
            surrogate = tf.minimum(ratio * advantages, tf.clip_by_value(
                ratio, 1 - config.clip_param, 1 + config.clip_param) * advantages)
            entropy = tf.reduce_mean(dist.entropy())
            kl = (tf.reduce_mean(dist_class(mb[Columns.ACTION_DIST_INPUTS]).kl(dist)) if config.use_kl_loss
                  else tf.zeros(()))
            if config.use_critic:
                vf_unclipped = tf.square(out[Columns.VF_PREDS] - mb[Columns.VALUE_TARGETS])
                vf_loss = tf.clip_by_value(vf_unclipped, 0.0, config.vf_clip_param)
            else:
                vf_unclipped = vf_loss = tf.zeros_like(ratio)
            policy_loss = -tf.reduce_mean(surrogate)
            total = policy_loss + config.vf_loss_coeff * tf.reduce_mean(vf_loss) - entropy_coeff * entropy
            if config.use_kl_loss:
                total = total + kl_coeff * kl
        grads = self.gradients(tape, total, module.trainable_variables)
        return grads, {"policy_loss": policy_loss, "vf_loss": tf.reduce_mean(vf_loss),
                       "vf_loss_unclipped": tf.reduce_mean(vf_unclipped), "entropy": entropy,
                       "mean_kl_loss": kl, "total_loss": total}
