"""IMPALA: ``IMPALAConfig`` and the ``IMPALA`` algorithm (asynchronous sampling, V-trace).

EnvRunner actors never wait for the learner: each keeps
``max_requests_in_flight_per_env_runner`` sample requests in flight. Every ``training_step``
collects the requests that finished (``solray.wait``), hands those runners a new request at
once (with the newest published weights), then trains on every full batch of
``train_batch_size_per_learner`` steps; the learner corrects for the policy lag with V-trace.
Weights are published (one object-store ref) every ``broadcast_interval`` updates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solray.rllib._internal.config_schema import BOOL, FLOAT, INT, Key, at_least
from solray.rllib._internal.modules import DefaultPPOTorchRLModule
from solray.rllib.algorithms.algorithm import Algorithm
from solray.rllib.algorithms.algorithm_config import AlgorithmConfig
from solray.rllib.algorithms.impala.impala_learner import IMPALATorchLearner
from solray.rllib.core import ALL_MODULES


class IMPALAConfig(AlgorithmConfig):
    """IMPALA's keys, with Ray's defaults: ``.training(vtrace_clip_rho_threshold=, broadcast_interval=, ...)``."""

    _TRAINING_KEYS = {
        "vtrace": Key(True, BOOL),
        "vtrace_clip_rho_threshold": Key(1.0, FLOAT, at_least(0), nullable=True),
        "vtrace_clip_pg_rho_threshold": Key(1.0, FLOAT, at_least(0), nullable=True),
        "vf_loss_coeff": Key(0.5, FLOAT, at_least(0)),
        "entropy_coeff": Key(0.01, FLOAT, at_least(0)),
        "broadcast_interval": Key(1, INT, at_least(1)),
        # Ray's GPU loader and learner-queue tuning; solray's learner trains each batch as it
        # comes, so these are accepted and have no effect.
        "num_gpu_loader_threads": Key(8, INT, at_least(1)),
        "learner_queue_size": Key(3, INT, at_least(1)),
        "timeout_s_sampler_manager": Key(0.0, FLOAT, at_least(0)),
        "timeout_s_aggregator_manager": Key(0.0, FLOAT, at_least(0)),
    }
    _DEFAULT_OVERRIDES = {
        "lr": 0.0005, "rollout_fragment_length": 50, "train_batch_size": 500,
        "num_env_runners": 2, "grad_clip": 40.0, "num_epochs": 1, "minibatch_size": None,
        "min_time_s_per_iteration": 10.0,
    }

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or IMPALA)

    def validate(self) -> None:
        super().validate()
        if not self.vtrace:
            raise ValueError(f"{type(self).__name__}: vtrace=False is not supported; solray's IMPALA and "
                             "APPO always correct the policy lag with V-trace.")


def _take(batches: list[tuple[dict, np.ndarray]], size: int) -> tuple[dict, np.ndarray, list]:
    """The first ``size`` rows of the buffered batches (cut mid-fragment if need be: the
    learner bootstraps a batch's last step), their weights versions, and what is left."""
    keys = batches[0][0].keys()
    rows = {k: np.concatenate([b[k] for b, _ in batches]) for k in keys}
    versions = np.concatenate([v for _, v in batches])
    head = {k: v[:size] for k, v in rows.items()}
    rest = [({k: v[size:] for k, v in rows.items()}, versions[size:])] if len(versions) > size else []
    return head, versions[:size], rest


class IMPALA(Algorithm):
    config_class = IMPALAConfig
    learner_class = IMPALATorchLearner
    default_module_class = DefaultPPOTorchRLModule

    def setup(self, config: AlgorithmConfig | dict, env: Any = None) -> None:
        # fragments sampled but not trained yet: {module_id: [(batch, weights version per row)]}
        self._buffer: dict[str, list[tuple[dict, np.ndarray]]] = {}
        self._updates_since_broadcast = 0
        self._lags: list[np.ndarray] = []
        super().setup(config, env=env)

    def _sample_async(self) -> None:
        self.env_runner_group.submit("sample", self._weights, self._weights_version,
                                     num_steps=self.config.get_rollout_fragment_length(), explore=True)

    def training_step(self) -> dict:
        """Collect finished samples, re-arm those runners, train every full batch, publish weights."""
        config, group = self.config, self.env_runner_group
        self._sample_async()  # the first call, or a runner that was restarted
        ready = group.fetch_ready(timeout=config.sample_timeout_s)
        # The runners that just returned sample again while the learner trains below.
        self._sample_async()
        self.metrics.record_samples([out["metrics"] for out, _ in ready])
        for out, version in ready:
            for mid, batch in out["batches"].items():
                rows = len(next(iter(batch.values())))
                self._buffer.setdefault(mid, []).append((batch, np.full(rows, version)))
        size = config.total_train_batch_size
        results: dict = {}
        while True:
            full = [mid for mid, batches in self._buffer.items() if sum(len(v) for _, v in batches) >= size]
            if not full:
                return results
            train_batch = {}
            for mid in full:
                train_batch[mid], versions, self._buffer[mid] = _take(self._buffer[mid], size)
                self._lags.append(self._weights_version - versions)
            results = self.learner_group.update(train_batch, timestep=self.metrics.steps_sampled)
            self.metrics.record_trained(size)
            self._updates_since_broadcast += 1
            if self._updates_since_broadcast >= config.broadcast_interval:
                self.sync_weights()
                self._updates_since_broadcast = 0

    def _compose_result(self, learner_results: dict, calls: int) -> dict:
        result = super()._compose_result(learner_results, calls)
        # How many weight broadcasts behind the learner the trained steps were sampled: > 0
        # because runners keep sampling while the learner updates.
        lags = np.concatenate(self._lags) if self._lags else np.zeros(0)
        self._lags = []
        result["learners"][ALL_MODULES].update({
            "weights_seq_no": self._weights_version,
            "mean_policy_lag": float(lags.mean()) if len(lags) else float("nan"),
            "max_policy_lag": int(lags.max()) if len(lags) else 0})
        result["env_runners"]["num_in_flight_requests"] = self.env_runner_group.num_in_flight
        return result
