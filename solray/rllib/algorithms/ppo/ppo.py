"""PPO (proximal policy optimization): ``PPOConfig`` and the ``PPO`` algorithm."""

from __future__ import annotations

import numpy as np

from solray.rllib._internal.config_schema import BOOL, FLOAT, Key, at_least, between
from solray.rllib._internal.modules import DefaultPPOTorchRLModule
from solray.rllib.algorithms.algorithm import Algorithm
from solray.rllib.algorithms.algorithm_config import AlgorithmConfig
from solray.rllib.algorithms.ppo.ppo_learner import PPOTorchLearner, compute_gae


class PPOConfig(AlgorithmConfig):
    """PPO's keys, with Ray's defaults: ``.training(lambda_=, clip_param=, vf_loss_coeff=, ...)``."""

    _TRAINING_KEYS = {
        "lambda_": Key(1.0, FLOAT, between(0.0, 1.0)),
        "use_gae": Key(True, BOOL),
        "use_critic": Key(True, BOOL),
        "clip_param": Key(0.3, FLOAT, at_least(0)),
        "vf_clip_param": Key(10.0, FLOAT, at_least(0)),
        "vf_loss_coeff": Key(1.0, FLOAT, at_least(0)),
        "entropy_coeff": Key(0.0, FLOAT, at_least(0)),
        "kl_coeff": Key(0.2, FLOAT, at_least(0)),
        "kl_target": Key(0.01, FLOAT, at_least(0)),
        "use_kl_loss": Key(True, BOOL),
    }
    _DEFAULT_OVERRIDES = {"lr": 5e-5, "train_batch_size": 4000, "minibatch_size": 128, "num_epochs": 30}

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or PPO)


def _concat(batches: list[dict]) -> dict:
    if len(batches) == 1:
        return batches[0]
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


class PPO(Algorithm):
    config_class = PPOConfig
    learner_class = PPOTorchLearner
    default_module_class = DefaultPPOTorchRLModule
    tf2_classes = ("solray.rllib.algorithms.ppo.ppo_tf_learner:PPOTfLearner",
                   "solray.rllib._internal.tf.modules:DefaultPPOTfRLModule")
    postprocess_fragment = staticmethod(compute_gae)

    def training_step(self) -> dict:
        """Sample a train batch on the EnvRunners (GAE done there), update, publish weights."""
        config = self.config
        fragment = config.get_rollout_fragment_length()
        collected: dict[str, list] = {}
        steps = 0
        while steps < config.total_train_batch_size:
            before = self.metrics.iter_steps
            for mid, batches in self.sample(fragment).items():
                collected.setdefault(mid, []).extend(batches)
            steps += self.metrics.iter_steps - before
        train_batch = {mid: _concat(batches) for mid, batches in collected.items()}
        results = self.learner_group.update(train_batch, timestep=self.metrics.steps_sampled)
        self.metrics.record_trained(steps)
        self.sync_weights()
        return results


