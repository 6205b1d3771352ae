"""APPO (asynchronous PPO, "IMPACT"): IMPALA's asynchronous sampling and V-trace with PPO's
clipped surrogate against a target network. ``APPOConfig`` and the ``APPO`` algorithm."""

from __future__ import annotations

from solray.rllib._internal.config_schema import BOOL, FLOAT, INT, Key, at_least, between
from solray.rllib.algorithms.appo.appo_learner import APPOTorchLearner
from solray.rllib.algorithms.impala.impala import IMPALA, IMPALAConfig


class APPOConfig(IMPALAConfig):
    """APPO's keys, with Ray's defaults: ``.training(clip_param=, use_kl_loss=, tau=, ...)``.

    ``target_network_update_freq`` counts learner updates (train batches) between target
    updates. ``circular_buffer_num_batches`` is accepted (solray's learner replays each batch
    ``circular_buffer_iterations_per_batch`` times as it arrives, needing no buffer)."""

    _TRAINING_KEYS = {
        **IMPALAConfig._TRAINING_KEYS,
        "use_gae": Key(True, BOOL),
        "lambda_": Key(1.0, FLOAT, between(0.0, 1.0)),
        "clip_param": Key(0.4, FLOAT, at_least(0)),
        "use_kl_loss": Key(False, BOOL),
        "kl_coeff": Key(1.0, FLOAT, at_least(0)),
        "kl_target": Key(0.01, FLOAT, at_least(0)),
        "target_worker_clipping": Key(2.0, FLOAT, at_least(0)),
        "target_network_update_freq": Key(2, INT, at_least(1)),
        "tau": Key(1.0, FLOAT, between(0.0, 1.0)),
        "circular_buffer_num_batches": Key(4, INT, at_least(1)),
        "circular_buffer_iterations_per_batch": Key(2, INT, at_least(1)),
    }

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or APPO)


class APPO(IMPALA):
    config_class = APPOConfig
    learner_class = APPOTorchLearner
