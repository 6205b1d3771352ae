"""PPO's action distributions in TensorFlow, with the same semantics as ``_internal/distributions.py``
(the learner's side; EnvRunners sample in NumPy)."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym

from solray.rllib._internal.tf.runtime import import_tf


class TfCategorical:
    def __init__(self, logits: Any) -> None:
        tf = import_tf()
        self.logits = logits - tf.reduce_logsumexp(logits, -1, keepdims=True)

    def logp(self, actions: Any) -> Any:
        tf = import_tf()
        return tf.gather(self.logits, tf.cast(actions, tf.int32)[:, None], batch_dims=1)[:, 0]

    def entropy(self) -> Any:
        tf = import_tf()
        return -tf.reduce_sum(tf.exp(self.logits) * self.logits, -1)

    def kl(self, other: TfCategorical) -> Any:
        tf = import_tf()
        return tf.reduce_sum(tf.exp(self.logits) * (self.logits - other.logits), -1)


class TfDiagGaussian:
    def __init__(self, inputs: Any, log_std_clip: float = 20.0) -> None:
        tf = import_tf()
        self.mean, log_std = tf.split(inputs, 2, axis=-1)
        self.log_std = tf.clip_by_value(log_std, -log_std_clip, log_std_clip)
        self.std = tf.exp(self.log_std)

    def logp(self, actions: Any) -> Any:
        tf = import_tf()
        z = (tf.cast(actions, self.mean.dtype) - self.mean) / self.std
        return tf.reduce_sum(-0.5 * tf.square(z) - self.log_std - 0.5 * math.log(2 * math.pi), -1)

    def entropy(self) -> Any:
        tf = import_tf()
        return tf.reduce_sum(self.log_std + 0.5 * math.log(2 * math.pi * math.e), -1)

    def kl(self, other: TfDiagGaussian) -> Any:
        tf = import_tf()
        return tf.reduce_sum(other.log_std - self.log_std
                             + (tf.square(self.std) + tf.square(self.mean - other.mean)) / (2 * tf.square(other.std))
                             - 0.5, -1)


def tf_dist_for(space: gym.Space) -> type:
    """The distribution class PPO uses for an action space."""
    return TfCategorical if isinstance(space, gym.spaces.Discrete) else TfDiagGaussian
