"""The keys each ``AlgorithmConfig`` builder method accepts, with their defaults and checks.

One table per builder section (``environment``, ``env_runners``, ``training`` ...) so that an
unknown key or a value of the wrong type is refused when the user sets it, naming the key, and
so ``to_dict``/``from_dict`` (what Tune passes around) check the same things. Defaults follow
Ray's RLlib documentation for the new API stack.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

Number = (int, float)


@dataclass(frozen=True)
class Key:
    """One config key: its default, the types it accepts and an optional extra check."""

    default: Any
    types: tuple = ()
    check: Any = None  # callable(value) -> error text or None
    nullable: bool = False


def at_least(low: float):
    return lambda v: None if v >= low else f"must be >= {low}"


def between(low: float, high: float):
    return lambda v: None if low <= v <= high else f"must be in [{low}, {high}]"


def one_of(*choices: Any):
    return lambda v: None if v in choices else f"must be one of {list(choices)}"


def _auto_or_positive(v: Any) -> str | None:
    if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v > 0):
        return None
    return "must be 'auto' or a positive int"


def _callables(v: Any) -> str | None:
    fns = v if isinstance(v, (list, tuple)) else [v]
    return None if all(callable(f) for f in fns) else "must be a function or a list of functions"


INT = (int,)
FLOAT = Number
BOOL = (bool,)
DICT = (dict,)

SECTIONS: dict[str, dict[str, Key]] = {
    "environment": {
        "env": Key(None, (str, type), nullable=True),
        "env_config": Key({}, DICT, nullable=True),
        "observation_space": Key(None, (), nullable=True),
        "action_space": Key(None, (), nullable=True),
        "clip_rewards": Key(None, (bool, int, float), nullable=True),
        "normalize_actions": Key(True, BOOL),
        "clip_actions": Key(False, BOOL),
        "disable_env_checking": Key(False, BOOL),
        "render_env": Key(False, BOOL),
        "is_atari": Key(None, BOOL, nullable=True),
    },
    "env_runners": {
        "num_env_runners": Key(0, INT, at_least(0)),
        "num_envs_per_env_runner": Key(1, INT, at_least(1)),
        "rollout_fragment_length": Key("auto", (int, str), _auto_or_positive),
        "batch_mode": Key("truncate_episodes", (str,), one_of("truncate_episodes", "complete_episodes")),
        "explore": Key(True, BOOL),
        "num_cpus_per_env_runner": Key(1, FLOAT, at_least(0)),
        "num_gpus_per_env_runner": Key(0, FLOAT, at_least(0)),
        "sample_timeout_s": Key(60.0, FLOAT, at_least(0), nullable=True),
        "max_requests_in_flight_per_env_runner": Key(1, INT, at_least(1)),
        "observation_filter": Key("NoFilter", (str,), one_of("NoFilter")),
        "gym_env_vectorize_mode": Key("SYNC", (str,), one_of("SYNC", "sync", "ASYNC", "async")),
        "create_env_on_local_worker": Key(False, BOOL),
        "env_to_module_connector": Key(None, (), nullable=True),
        "module_to_env_connector": Key(None, (), nullable=True),
        "add_default_connectors_to_env_to_module_pipeline": Key(True, BOOL),
        "add_default_connectors_to_module_to_env_pipeline": Key(True, BOOL),
        "episode_lookback_horizon": Key(1, INT, at_least(1)),
        "compress_observations": Key(False, BOOL),
    },
    "learners": {
        "num_learners": Key(0, INT, at_least(0)),
        "num_cpus_per_learner": Key(1, FLOAT, at_least(0)),
        "num_gpus_per_learner": Key(0, FLOAT, at_least(0)),
        "num_aggregator_actors_per_learner": Key(0, INT, at_least(0)),
    },
    "training": {
        "gamma": Key(0.99, FLOAT, between(0.0, 1.0)),
        "lr": Key(0.001, FLOAT, at_least(0)),
        "train_batch_size_per_learner": Key(None, INT, at_least(1), nullable=True),
        "train_batch_size": Key(4000, INT, at_least(1)),
        "minibatch_size": Key(None, INT, at_least(1), nullable=True),
        "num_epochs": Key(1, INT, at_least(1)),
        "grad_clip": Key(None, FLOAT, at_least(0), nullable=True),
        "grad_clip_by": Key("global_norm", (str,), one_of("value", "norm", "global_norm")),
        "shuffle_batch_per_epoch": Key(True, BOOL),
        "optimizer": Key({}, DICT),
        "model": Key({}, DICT),
        "learner_class": Key(None, (type,), nullable=True),
        "learner_connector": Key(None, (), nullable=True),
        "max_requests_in_flight_per_learner": Key(3, INT, at_least(1)),
    },
    "rl_module": {
        "model_config": Key(None, (), nullable=True),
        "rl_module_spec": Key(None, (), nullable=True),
        "algorithm_config_overrides_per_module": Key(None, DICT, nullable=True),
    },
    "framework": {
        "framework": Key("torch", (str,), one_of("torch", "tf2", "tf", "jax")),
        "eager_tracing": Key(True, BOOL),
        "torch_compile_learner": Key(False, BOOL),
        "torch_compile_worker": Key(False, BOOL),
    },
    "resources": {
        "num_gpus": Key(0, FLOAT, at_least(0)),
        "num_cpus_for_main_process": Key(1, FLOAT, at_least(0)),
        "placement_strategy": Key("PACK", (str,), one_of("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")),
    },
    "evaluation": {
        "evaluation_interval": Key(None, INT, at_least(1), nullable=True),
        "evaluation_duration": Key(10, (int, str), _auto_or_positive),
        "evaluation_duration_unit": Key("episodes", (str,), one_of("episodes", "timesteps")),
        "evaluation_num_env_runners": Key(0, INT, at_least(0)),
        "evaluation_config": Key(None, DICT, nullable=True),
        "evaluation_parallel_to_training": Key(False, BOOL),
        "evaluation_sample_timeout_s": Key(120.0, FLOAT, at_least(0)),
        "evaluation_force_reset_envs_before_iteration": Key(True, BOOL),
    },
    "debugging": {
        "seed": Key(None, INT, nullable=True),
        "log_level": Key("WARN", (str,), one_of("DEBUG", "INFO", "WARN", "WARNING", "ERROR")),
        "logger_config": Key(None, DICT, nullable=True),
        "log_sys_usage": Key(True, BOOL),
    },
    "fault_tolerance": {
        "restart_failed_env_runners": Key(True, BOOL),
        "ignore_env_runner_failures": Key(False, BOOL),
        "max_num_env_runner_restarts": Key(1000, INT, at_least(0)),
        "delay_between_env_runner_restarts_s": Key(0.0, FLOAT, at_least(0)),
        "num_consecutive_env_runner_failures_tolerance": Key(100, INT, at_least(0)),
        "env_runner_health_probe_timeout_s": Key(30.0, FLOAT, at_least(0)),
        "env_runner_restore_timeout_s": Key(1800.0, FLOAT, at_least(0)),
        "restart_failed_sub_environments": Key(False, BOOL),
    },
    "multi_agent": {
        "policies": Key(None, (dict, set, list, tuple), nullable=True),
        "policy_mapping_fn": Key(None, (), nullable=True),
        "policies_to_train": Key(None, (list, set, tuple), nullable=True),
        "count_steps_by": Key("env_steps", (str,), one_of("env_steps", "agent_steps")),
    },
    "reporting": {
        "metrics_num_episodes_for_smoothing": Key(100, INT, at_least(1)),
        "min_time_s_per_iteration": Key(None, FLOAT, at_least(0), nullable=True),
        "min_sample_timesteps_per_iteration": Key(0, INT, at_least(0)),
        "min_train_timesteps_per_iteration": Key(0, INT, at_least(0)),
        "keep_per_episode_custom_metrics": Key(False, BOOL),
    },
    "checkpointing": {
        "export_native_model_files": Key(False, BOOL),
        "checkpoint_trainable_policies_only": Key(False, BOOL),
    },
    "api_stack": {
        "enable_rl_module_and_learner": Key(True, BOOL),
        "enable_env_runner_and_connector_v2": Key(True, BOOL),
    },
    "callbacks": {
        "callbacks_class": Key(None, (type, list, tuple), nullable=True),
        **{f"callbacks_{hook}": Key(None, (), check=_callables, nullable=True) for hook in (
            "on_algorithm_init", "on_train_result", "on_evaluate_start", "on_evaluate_end",
            "on_env_runners_recreated", "on_checkpoint_loaded", "on_environment_created", "on_episode_created",
            "on_episode_start", "on_episode_step", "on_episode_end", "on_sample_end")},
    },
}

# Ray's older names, accepted and mapped to the current ones.
ALIASES = {
    "num_rollout_workers": "num_env_runners",
    "num_workers": "num_env_runners",
    "num_envs_per_worker": "num_envs_per_env_runner",
    "num_sgd_iter": "num_epochs",
    "sgd_minibatch_size": "minibatch_size",
    "recreate_failed_env_runners": "restart_failed_env_runners",
    "recreate_failed_workers": "restart_failed_env_runners",
    "evaluation_num_workers": "evaluation_num_env_runners",
}


def unknown_key_error(where: str, key: str, known: list[str]) -> ValueError:
    """An error naming the unknown key and the closest known ones."""
    close = difflib.get_close_matches(key, known, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"{where} got an unknown config key {key!r}.{hint}")


def check_value(key: str, spec: Key, value: Any) -> None:
    """Raise ``TypeError``/``ValueError`` naming ``key`` if ``value`` does not fit ``spec``."""
    if value is None:
        if spec.nullable:
            return
        raise TypeError(f"config key {key!r} may not be None")
    if spec.types:
        ok = isinstance(value, spec.types) and not (isinstance(value, bool) and bool not in spec.types)
        # Schedules ([[timestep, value], ...]) are accepted wherever a float is (lr, entropy_coeff).
        if not ok and float in spec.types and isinstance(value, list):
            ok = all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value)
            if ok:
                return
        if not ok:
            names = " or ".join(t.__name__ for t in spec.types)
            raise TypeError(f"config key {key!r} must be {names}, got {type(value).__name__} {value!r}")
    if spec.check is not None:
        problem = spec.check(value)
        if problem:
            raise ValueError(f"config key {key!r} {problem}, got {value!r}")
