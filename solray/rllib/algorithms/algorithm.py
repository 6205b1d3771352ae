"""``Algorithm``: builds EnvRunner actors and learners from a config and trains them.

``train()`` runs ``training_step()`` (what each algorithm defines: sample, update, sync) until
the iteration's minimum time/steps are met, then returns Ray's result layout
(``env_runners/...``, ``learners/...``, ``num_env_steps_sampled_lifetime``,
``training_iteration``, ``time_total_s``). It is also a Tune class trainable:
``setup``/``step``/``save_checkpoint``/``load_checkpoint``/``cleanup``.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import socket
import time
from typing import Any

import solray
from solray.rllib._internal import checkpoints
from solray.rllib._internal.callbacks import CallbackRunner
from solray.rllib._internal.env_factory import resolve_env_creator
from solray.rllib._internal.env_runner import seed_everything
from solray.rllib._internal.env_runner_group import EnvRunnerGroup
from solray.rllib._internal.learner_group import LearnerGroup
from solray.rllib._internal.metrics import MetricsTracker, episode_summary
from solray.rllib._internal.module_specs import build_module_specs
from solray.rllib._internal.placement import BundleAllocator
from solray.rllib.algorithms.algorithm_config import AlgorithmConfig
from solray.rllib.core import ALL_MODULES, DEFAULT_MODULE_ID
from solray.rllib.utils.metrics.metrics_logger import MetricsLogger

logger = logging.getLogger("solray.rllib")

try:  # Tune drives class trainables that subclass its Trainable; RLlib works without Tune too.
    from solray.tune.trainable import Trainable as _TrainableBase
except ImportError:  # pragma: no cover - Tune not installed
    _TrainableBase = object


class Algorithm(_TrainableBase):
    """Base class of PPO, APPO, IMPALA, DQN, SAC; subclasses set the class attributes and ``training_step``."""

    config_class: type[AlgorithmConfig] = AlgorithmConfig
    learner_class: type | None = None
    default_module_class: type | None = None
    #: framework("tf2") counterparts ``(learner, module)`` as "module:Class" paths, imported
    #: only when a config asks for tf2 (None: this algorithm is PyTorch only)
    tf2_classes: tuple[str, str] | None = None
    #: True: needs Discrete actions (DQN); False: needs Box (SAC); None: either (PPO)
    discrete_actions: bool | None = None
    #: runs in the EnvRunner on each fragment before it is returned (PPO: GAE)
    postprocess_fragment: Any = None

    @classmethod
    def get_default_config(cls) -> AlgorithmConfig:
        return cls.config_class(algo_class=cls)

    def __init__(self, config: AlgorithmConfig | dict | None = None, env: Any = None,
                 logger_creator: Any = None, **kwargs: Any) -> None:
        # Not Trainable.__init__: it would turn the config into a plain dict first.
        self._iteration = 0
        self._trial_id = kwargs.get("trial_id", "default")
        self._trial_name = kwargs.get("trial_name", "default")
        self._logdir = kwargs.get("logdir", "")
        self._trial_resources = kwargs.get("trial_resources")
        self._iterations_since_restore = 0
        self._time_total = 0.0
        self.env_runner_group = None
        self.eval_env_runner_group = None
        self.learner_group = None
        self.setup(config if config is not None else self.get_default_config(), env=env)

    # --- Trainable API ----------------------------------------------------------------------
    def setup(self, config: AlgorithmConfig | dict, env: Any = None) -> None:
        if isinstance(config, dict):
            config = self.get_default_config().update_from_dict(config)
        elif not isinstance(config, AlgorithmConfig):
            raise TypeError(f"config must be an AlgorithmConfig or dict, got {type(config).__name__}")
        else:
            config = config.copy()
        if env is not None:
            config.environment(env)
        config.algo_class = type(self)
        config.validate()
        self.validate_config(config)
        config.freeze()
        self.config = config
        seed_everything(config.seed)
        self._env_creator = resolve_env_creator(config.env)
        self._learner_cls, module_cls = self.framework_classes(config)
        self.module_specs, self._runner_cls = build_module_specs(
            config, self._env_creator, module_cls, type(self).__name__, self.discrete_actions,
            self.model_extras(config))
        self.metrics = MetricsTracker(config.metrics_num_episodes_for_smoothing)
        self._eval_metrics_logger = MetricsLogger()
        self._callbacks = CallbackRunner.from_config(config)
        self._weights_version = 0
        self._bundles = BundleAllocator()
        try:
            self.env_runner_group = EnvRunnerGroup(config, self._runner_cls, self._env_creator, self.module_specs,
                                                   type(self).postprocess_fragment, config.num_env_runners,
                                                   bundles=self._bundles, on_restart=self._on_runners_recreated)
            self.learner_group = LearnerGroup(config, self._learner_cls, self.module_specs, self._bundles)
            if config.evaluation_interval or config.evaluation_num_env_runners:
                self._eval_group()
        except BaseException:
            self.stop()
            raise
        self._weights = None
        self.sync_weights()
        self._callbacks("on_algorithm_init", algorithm=self, metrics_logger=None)

    @classmethod
    def framework_classes(cls, config: AlgorithmConfig) -> tuple[type, type]:
        """The learner and default module classes for ``config.framework_str``."""
        if config.framework_str == "torch":
            return cls.learner_class, cls.default_module_class
        if cls.tf2_classes is None:
            raise ValueError(f"{cls.__name__} is implemented in PyTorch only; use framework('torch').")
        return tuple(_import_path(path) for path in cls.tf2_classes)

    def validate_config(self, config: AlgorithmConfig) -> None:
        """Algorithm-specific checks (subclasses)."""

    def model_extras(self, config: AlgorithmConfig) -> dict:
        """Algorithm keys that shape the default module (DQN: dueling)."""
        return {}

    def step(self) -> dict:
        """One iteration: ``training_step()`` until the iteration's minimums, then evaluation."""
        config = self.config
        self.metrics.reset_iteration()
        evaluate_now = bool(config.evaluation_interval) and (self.iteration + 1) % config.evaluation_interval == 0
        # In parallel mode the evaluation runners start now, on the weights from before this
        # iteration's updates (its results lag one iteration, as in Ray), and run while we train.
        evaluation = self._start_evaluation() if evaluate_now and config.evaluation_parallel_to_training else None
        started = time.perf_counter()
        learner_results: dict = {}
        calls = 0
        while True:
            learner_results = self.training_step() or learner_results
            calls += 1
            if evaluation is not None:
                evaluation.keep_busy()
            elapsed = time.perf_counter() - started
            if (elapsed >= (config.min_time_s_per_iteration or 0)
                    and self.metrics.iter_steps >= config.min_sample_timesteps_per_iteration
                    and self.metrics.iter_trained >= config.min_train_timesteps_per_iteration):
                break
        result = self._compose_result(learner_results, calls)
        if evaluation is not None:
            result["evaluation"] = evaluation.finish()
        elif evaluate_now:
            result["evaluation"] = self.evaluate()
        return result

    def training_step(self) -> dict:
        raise NotImplementedError

    def train(self) -> dict:
        """Run one training iteration and return its results (Ray's key layout)."""
        started = time.time()
        result = self.step()
        self.iteration += 1
        self._iterations_since_restore += 1
        took = time.time() - started
        self._time_total += took
        result.update({
            "training_iteration": self.iteration, "iterations_since_restore": self._iterations_since_restore,
            "time_this_iter_s": took, "time_total_s": self._time_total, "timestamp": int(time.time()),
            "date": datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S"), "done": False,
            "timesteps_total": self.metrics.steps_sampled, "episodes_total": self.metrics.lifetime["num_episodes_lifetime"],
            "pid": os.getpid(), "hostname": socket.gethostname(),
        })
        self._callbacks("on_train_result", algorithm=self, metrics_logger=None, result=result)
        return result

    @property
    def iteration(self) -> int:
        return self._iteration

    @iteration.setter
    def iteration(self, value: int) -> None:
        self._iteration = value

    @property
    def training_iteration(self) -> int:
        return self._iteration

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        """Tune: write the checkpoint into ``checkpoint_dir`` (handed back to ``load_checkpoint``)."""
        self.save_to_path(checkpoint_dir)

    def reset_config(self, new_config: dict) -> bool:
        return False

    def load_checkpoint(self, checkpoint: Any) -> None:
        self.restore_from_path(checkpoint)

    def cleanup(self) -> None:
        self.stop()

    @classmethod
    def default_resource_request(cls, config: AlgorithmConfig | dict) -> Any:
        """A Tune trial's bundles: the algorithm itself, then its env runners, learners and
        evaluation runners, in the order ``setup`` places them (see ``_internal/placement.py``)."""
        if isinstance(config, dict):
            config = cls.get_default_config().update_from_dict(config)
        bundles = [{"CPU": config.num_cpus_for_main_process}]
        bundles += [{"CPU": config.num_cpus_per_env_runner}] * config.num_env_runners
        bundles += [{"CPU": config.num_cpus_per_learner}] * config.num_learners
        bundles += [{"CPU": config.num_cpus_per_env_runner}] * config.evaluation_num_env_runners
        try:
            from solray.tune.execution.placement_groups import PlacementGroupFactory
        except ImportError:  # pragma: no cover - Tune not installed
            return bundles
        return PlacementGroupFactory(bundles, strategy=config.placement_strategy)

    # --- sampling and weights ---------------------------------------------------------------
    def sync_weights(self) -> None:
        """Publish the learners' weights: one ``solray.put`` per update, read by every runner."""
        weights = self.learner_group.get_weights()
        self._weights_version += 1
        if self.env_runner_group is not None and self.env_runner_group.local_env_runner is None:
            self._weights = solray.put(weights)
        else:
            self._weights = weights

    def sample(self, num_steps_per_env: int, explore: bool = True, action_kwargs: dict | None = None) -> dict:
        """Sample on every runner; returns ``{module_id: [batch, ...]}`` and records episode metrics."""
        outputs = self.env_runner_group.call("sample", self._weights, version=self._weights_version,
                                             num_steps=num_steps_per_env, explore=explore,
                                             action_kwargs=action_kwargs or {})
        self.metrics.record_samples([o["metrics"] for o in outputs])
        batches: dict[str, list] = {}
        for out in outputs:
            for mid, batch in out["batches"].items():
                batches.setdefault(mid, []).append(batch)
        return batches

    # --- evaluation -------------------------------------------------------------------------
    def _eval_group(self) -> EnvRunnerGroup:
        if self.eval_env_runner_group is None:
            eval_config = self.config.copy()
            eval_config.env_runners(explore=False)
            if self.config.evaluation_config:
                eval_config.update_from_dict(self.config.evaluation_config)
            eval_config.env_runners(num_envs_per_env_runner=1)
            n = self.config.evaluation_num_env_runners
            self.eval_env_runner_group = EnvRunnerGroup(eval_config, self._runner_cls, self._env_creator,
                                                        self.module_specs, None, n, first_index=10_000,
                                                        bundles=self._bundles,
                                                        on_restart=self._on_runners_recreated)
        return self.eval_env_runner_group

    def evaluate(self) -> dict:
        """Run ``evaluation_duration`` episodes (or timesteps) greedily; ``{"env_runners": {...}}``."""
        return self._start_evaluation().finish()

    def _on_runners_recreated(self, group: EnvRunnerGroup, indices: list[int]) -> None:
        self._callbacks("on_env_runners_recreated", algorithm=self, env_runner_group=group,
                        env_runner_indices=indices, is_evaluation=group is self.eval_env_runner_group)

    def _start_evaluation(self) -> _Evaluation:
        self._callbacks("on_evaluate_start", algorithm=self, metrics_logger=None)
        group = self._eval_group()
        weights = self._weights
        if group.local_env_runner is None and not isinstance(weights, solray.ObjectRef):
            weights = solray.put(weights)
        elif group.local_env_runner is not None and isinstance(weights, solray.ObjectRef):
            weights = solray.get(weights)
        config = self.config
        auto = config.evaluation_duration == "auto"
        if auto:  # as long as training takes: one episode (or fragment) per request, resubmitted
            per_runner = 1 if config.evaluation_duration_unit == "episodes" else config.get_rollout_fragment_length()
        else:
            per_runner = max(1, math.ceil(int(config.evaluation_duration) / max(1, group.num_runners)))
        if config.evaluation_duration_unit == "timesteps":
            method, amount = "sample", {"num_steps": per_runner}
        else:
            method, amount = "sample_episodes", {"num_episodes": per_runner}
        return _Evaluation(self, group, method, dict(weights=weights, version=self._weights_version,
                                                     explore=group.config.explore, **amount), repeat=auto)

    # --- results ----------------------------------------------------------------------------
    def _compose_result(self, learner_results: dict, calls: int) -> dict:
        learners = {mid: dict(m) for mid, m in learner_results.items()}
        learners[ALL_MODULES] = {"num_env_steps_trained": self.metrics.iter_trained,
                                 "num_env_steps_trained_lifetime": self.metrics.lifetime["num_env_steps_trained_lifetime"],
                                 "num_trainable_parameters": self._num_parameters()}
        env_runner_results = self.metrics.env_runner_results()
        return {
            "env_runners": env_runner_results,
            "learners": learners,
            "num_env_steps_sampled_lifetime": self.metrics.steps_sampled,
            "num_episodes_lifetime": self.metrics.lifetime["num_episodes_lifetime"],
            "num_env_steps_trained_lifetime": self.metrics.lifetime["num_env_steps_trained_lifetime"],
            "num_training_step_calls_per_iteration": calls,
            "fault_tolerance": {"num_healthy_workers": self.env_runner_group.healthy_count,
                                "num_remote_worker_restarts": self.env_runner_group.num_restarts},
        }

    def _num_parameters(self) -> int:
        if not hasattr(self, "_param_count"):
            self._param_count = sum(int(v.size) for w in self.learner_group.get_weights().values()
                                    for v in w.values())
        return self._param_count

    # --- modules and weights ----------------------------------------------------------------
    def get_module(self, module_id: str = DEFAULT_MODULE_ID) -> Any:
        """The trained ``RLModule`` (the local learner's own, or a copy of the remote learners')."""
        if module_id not in self.module_specs:
            if module_id == DEFAULT_MODULE_ID and len(self.module_specs) == 1:
                module_id = next(iter(self.module_specs))
            else:
                raise KeyError(f"No module {module_id!r}; modules: {sorted(self.module_specs)}")
        local = self.learner_group.local_learner()
        if local is not None:
            return local.module[module_id]
        module = self.module_specs[module_id].build()
        module.set_state(self.learner_group.get_weights([module_id])[module_id])
        return module

    def get_weights(self, policies: list[str] | None = None) -> dict:
        return self.learner_group.get_weights(policies)

    def set_weights(self, weights: dict) -> None:
        self.learner_group.set_weights(weights)
        self.sync_weights()

    # --- checkpoints ------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"config": self.config.to_dict(), "iteration": self.iteration, "time_total": self._time_total,
                "metrics": self.metrics.get_state(), "extra": self.get_extra_state()}

    def get_extra_state(self) -> dict:
        return {}

    def set_extra_state(self, state: dict) -> None:
        pass

    def save_to_path(self, path: str | os.PathLike | None = None, **kwargs: Any) -> str:
        """Write weights, optimizer state, config and counters to ``path``; returns the path."""
        return checkpoints.write(path, type(self), self.get_state(), self.learner_group.get_state())

    def save(self, checkpoint_dir: str | None = None, **kwargs: Any) -> checkpoints.TrainingResult:
        path = self.save_to_path(checkpoint_dir)
        return checkpoints.make_result(path, {"training_iteration": self.iteration})

    def restore_from_path(self, path: Any, **kwargs: Any) -> None:
        _, state, learner_state = checkpoints.read(checkpoints.resolve_path(path))
        self.learner_group.set_state(learner_state)
        self.iteration = state["iteration"]
        self._time_total = state["time_total"]
        self.metrics.set_state(state["metrics"])
        self.set_extra_state(state.get("extra", {}))
        self.sync_weights()
        self._callbacks("on_checkpoint_loaded", algorithm=self)

    restore = restore_from_path

    @classmethod
    def from_checkpoint(cls, path: Any, **kwargs: Any) -> Algorithm:
        """Build the algorithm saved at ``path`` (its own class and config) and restore its state."""
        path = checkpoints.resolve_path(path)
        algo_class, state, _ = checkpoints.read(path)
        if not issubclass(algo_class, cls):
            raise TypeError(f"{path!r} holds a {algo_class.__name__} checkpoint, not a {cls.__name__}")
        config = algo_class.get_default_config().update_from_dict(state["config"])
        algo = algo_class(config=config)
        algo.restore_from_path(path)
        return algo

    def stop(self) -> None:
        """Release every actor (env runners, evaluation runners, learners)."""
        for group in (self.env_runner_group, self.eval_env_runner_group, self.learner_group):
            if group is not None:
                group.stop()
        self.env_runner_group = self.eval_env_runner_group = self.learner_group = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(env={getattr(self, 'config', None) and self.config.env!r})"


class _Evaluation:
    """Evaluation requests on the evaluation runners: started, kept busy, then summarised.

    With ``repeat`` (``evaluation_duration="auto"``) each runner gets a new request whenever
    its last one is done, until ``finish``; otherwise each runner answers one request.
    """

    def __init__(self, algorithm: Algorithm, group: EnvRunnerGroup, method: str, request: dict,
                 repeat: bool) -> None:
        self.algorithm, self.group, self.method, self.request, self.repeat = algorithm, group, method, request, repeat
        self.outputs: list[dict] = []
        self.refs: dict[int, Any] = {}
        if group.local_env_runner is not None:
            self.outputs = group.call(method, **request)
        else:
            self.refs = group.call_each(method, **request)

    def keep_busy(self) -> None:
        if not self.repeat or not self.refs:
            return
        ready, _ = solray.wait(list(self.refs.values()), num_returns=len(self.refs), timeout=0)
        done = {index: ref for index, ref in self.refs.items() if ref in ready}
        self.outputs += self.group.gather(done)
        self.refs = {index: ref for index, ref in self.refs.items() if index not in done}
        self.refs.update(self.group.call_each(self.method, indexes=set(done), **self.request))

    def finish(self) -> dict:
        self.outputs += self.group.gather(self.refs)
        self.refs = {}
        metrics = [o["metrics"] for o in self.outputs]
        summary = episode_summary(metrics)
        summary["weights_seq_no"] = self.request["version"]
        logger = self.algorithm._eval_metrics_logger
        for m in metrics:
            logger.merge(m.get("custom", []))
        summary.update(logger.reduce())
        result = {"env_runners": summary}
        self.algorithm._callbacks("on_evaluate_end", algorithm=self.algorithm, metrics_logger=None,
                                  evaluation_metrics=result)
        return result


def _import_path(path: str) -> type:
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)
