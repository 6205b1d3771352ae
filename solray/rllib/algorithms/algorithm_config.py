"""``AlgorithmConfig``: the chained builder every algorithm is configured with.

    config = (PPOConfig().environment("CartPole-v1")
              .env_runners(num_env_runners=2).training(lr=3e-4).debugging(seed=0))
    algo = config.build_algo()

Each builder method takes the keys of one section (tables in ``_internal/config_schema.py``);
an unknown key or a value of the wrong type raises at once, naming the key. ``to_dict`` and
``from_dict`` turn a config into a flat dict and back (what Tune's ``param_space`` carries).
"""

from __future__ import annotations

import copy
from typing import Any

from solray.rllib._internal import config_schema as schema
from solray.rllib.core.rl_module.default_model_config import DefaultModelConfig

DEFAULT_POLICY_ID = "default_policy"

# Keys stored under another attribute because a builder method or property has their name.
_ATTR = {"framework": "framework_str", "model_config": "_model_config"}


def _attr(key: str) -> str:
    return _ATTR.get(key, key)


def _is_search_space(value: Any) -> bool:
    """Tune's search spaces (``grid_search`` dicts, sample domains) are resolved later."""
    if isinstance(value, dict) and set(value) == {"grid_search"}:
        return True
    module = type(value).__module__ or ""
    return module.startswith(("solray.tune", "ray.tune"))


class AlgorithmConfig:
    """Base configuration; algorithm configs (``PPOConfig``...) add their training keys."""

    #: algorithm-specific training keys, and overrides of the common defaults
    _TRAINING_KEYS: dict[str, schema.Key] = {}
    _DEFAULT_OVERRIDES: dict[str, Any] = {}

    def __init__(self, algo_class: type | None = None) -> None:
        self.algo_class = algo_class
        self._keys: dict[str, schema.Key] = {}
        self._section_of: dict[str, str] = {}
        for section, keys in self._sections().items():
            for name, spec in keys.items():
                self._keys[name] = spec
                self._section_of[name] = section
                object.__setattr__(self, _attr(name), copy.deepcopy(spec.default))
        for name, value in self._DEFAULT_OVERRIDES.items():
            object.__setattr__(self, _attr(name), copy.deepcopy(value))
        self._frozen = False

    @classmethod
    def _sections(cls) -> dict[str, dict[str, schema.Key]]:
        sections = dict(schema.SECTIONS)
        sections["training"] = {**schema.SECTIONS["training"], **cls._TRAINING_KEYS}
        return sections

    # --- setting values ---------------------------------------------------------------------
    def _set(self, section: str | None, values: dict[str, Any]) -> AlgorithmConfig:
        if self._frozen:
            raise RuntimeError("This AlgorithmConfig is frozen (it belongs to a built Algorithm); call .copy().")
        where = f"{type(self).__name__}.{section}()" if section else type(self).__name__
        for key, value in values.items():
            key = schema.ALIASES.get(key, key)
            spec = self._keys.get(key)
            if spec is None or (section and self._section_of[key] != section):
                known = [k for k, s in self._section_of.items() if section is None or s == section]
                raise schema.unknown_key_error(where, key, known)
            if not _is_search_space(value):
                schema.check_value(key, spec, value)
            object.__setattr__(self, _attr(key), value)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        # Direct attribute writes (config.lr = 0.1) get the same checks as the builders.
        if name.startswith("_") or name in ("algo_class", "framework_str") or "_keys" not in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            self._set(None, {name: value})

    def environment(self, env: Any = None, **kwargs: Any) -> AlgorithmConfig:
        """The env: a gymnasium id, a name given to ``tune.register_env``, or an env class."""
        if env is not None:
            kwargs["env"] = env
        return self._set("environment", kwargs)

    def env_runners(self, **kwargs: Any) -> AlgorithmConfig:
        """How many EnvRunner actors sample, with how many envs each, in fragments of what length."""
        return self._set("env_runners", kwargs)

    rollouts = env_runners  # Ray's older name

    def learners(self, **kwargs: Any) -> AlgorithmConfig:
        """``num_learners=0``: learn in this process; ``>=1``: learner actors (torch DDP, gloo)."""
        return self._set("learners", kwargs)

    def training(self, **kwargs: Any) -> AlgorithmConfig:
        """Learning rate, discount, batch sizes, epochs and the algorithm's own keys."""
        return self._set("training", kwargs)

    def rl_module(self, **kwargs: Any) -> AlgorithmConfig:
        """``model_config=`` (dict or ``DefaultModelConfig``) or ``rl_module_spec=``."""
        return self._set("rl_module", kwargs)

    def framework(self, framework: str | None = None, **kwargs: Any) -> AlgorithmConfig:
        """``"torch"`` (default); ``"tf2"`` needs TensorFlow installed."""
        if framework is not None:
            kwargs["framework"] = framework
        return self._set("framework", kwargs)

    def resources(self, **kwargs: Any) -> AlgorithmConfig:
        return self._set("resources", kwargs)

    def evaluation(self, **kwargs: Any) -> AlgorithmConfig:
        return self._set("evaluation", kwargs)

    def debugging(self, **kwargs: Any) -> AlgorithmConfig:
        return self._set("debugging", kwargs)

    def fault_tolerance(self, **kwargs: Any) -> AlgorithmConfig:
        return self._set("fault_tolerance", kwargs)

    def multi_agent(self, **kwargs: Any) -> AlgorithmConfig:
        return self._set("multi_agent", kwargs)

    def reporting(self, **kwargs: Any) -> AlgorithmConfig:
        return self._set("reporting", kwargs)

    def checkpointing(self, **kwargs: Any) -> AlgorithmConfig:
        return self._set("checkpointing", kwargs)

    def api_stack(self, **kwargs: Any) -> AlgorithmConfig:
        return self._set("api_stack", kwargs)

    def callbacks(self, callbacks_class: Any = None, **hooks: Any) -> AlgorithmConfig:
        """An ``RLlibCallback`` subclass (or a list of them), and/or single hooks as functions:
        ``callbacks(on_episode_end=fn)`` (a list of functions runs them in order)."""
        values = {f"callbacks_{hook}": fn for hook, fn in hooks.items()}
        if callbacks_class is not None:
            values["callbacks_class"] = callbacks_class
        return self._set("callbacks", values)

    def offline_data(self, **kwargs: Any) -> AlgorithmConfig:
        raise NotImplementedError("solray.rllib does not support offline RL (config.offline_data) yet.")

    # --- dict views (Tune) ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every key and its value, flat (plus the algorithm class under ``"algo_class"``)."""
        out = {k: getattr(self, _attr(k)) for k in self._keys}
        out["algo_class"] = self.algo_class
        return out

    def update_from_dict(self, values: dict[str, Any]) -> AlgorithmConfig:
        """Set keys from a flat dict; unknown keys raise, naming the key."""
        values = dict(values)
        values.pop("algo_class", None)
        return self._set(None, values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AlgorithmConfig:
        config = cls(algo_class=values.get("algo_class"))
        return config.update_from_dict(values)

    def copy(self, copy_frozen: bool = False) -> AlgorithmConfig:
        new = copy.copy(self)
        new.__dict__ = copy.copy(self.__dict__)
        for key in self._keys:
            value = getattr(self, _attr(key))
            if isinstance(value, (dict, list)):
                object.__setattr__(new, _attr(key), copy.deepcopy(value))
        if not copy_frozen:
            new._frozen = False
        return new

    def freeze(self) -> None:
        self._frozen = True

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, _attr(schema.ALIASES.get(key, key)), default)

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys and key not in schema.ALIASES:
            raise KeyError(key)
        return self.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __repr__(self) -> str:
        return f"{type(self).__name__}(env={self.env!r}, num_env_runners={self.num_env_runners})"

    # --- derived values ---------------------------------------------------------------------
    @property
    def is_multi_agent(self) -> bool:
        return self.policies is not None and not (
            isinstance(self.policies, (set, list, tuple, dict)) and set(self.policies) == {DEFAULT_POLICY_ID}
            and self.policy_mapping_fn is None)

    @property
    def model_config(self) -> DefaultModelConfig:
        raw = self._model_config
        if raw is None and self.model:
            raw = self.model
        return DefaultModelConfig.from_any(raw)

    @property
    def total_train_batch_size(self) -> int:
        per_learner = self.train_batch_size_per_learner
        if per_learner is None:
            return self.train_batch_size
        return per_learner * max(1, self.num_learners)

    def get_rollout_fragment_length(self) -> int:
        """Steps each env of each runner samples per call ("auto": the train batch split evenly)."""
        if self.rollout_fragment_length != "auto":
            return int(self.rollout_fragment_length)
        envs = max(1, self.num_env_runners) * self.num_envs_per_env_runner
        return max(1, -(-self.total_train_batch_size // envs))

    def validate(self) -> None:
        """Checks that span several keys; called by ``build_algo()``."""
        from solray.rllib._internal.frameworks import check_framework

        check_framework(self.framework_str)
        if self.env is None:
            raise ValueError("No environment set: call config.environment('CartPole-v1') (or an env class).")
        if self.minibatch_size is not None and self.minibatch_size > self.total_train_batch_size:
            raise ValueError(
                f"minibatch_size ({self.minibatch_size}) must be <= the train batch size "
                f"({self.total_train_batch_size})")
        if self.evaluation_parallel_to_training and self.evaluation_num_env_runners == 0:
            raise ValueError("evaluation(evaluation_parallel_to_training=True) needs evaluation runners of its "
                             "own: set evaluation_num_env_runners >= 1.")
        if self.evaluation_duration == "auto" and not self.evaluation_parallel_to_training:
            raise ValueError("evaluation_duration='auto' (evaluate as long as training takes) needs "
                             "evaluation_parallel_to_training=True.")
        if self.policy_mapping_fn is not None and not callable(self.policy_mapping_fn):
            raise TypeError("config key 'policy_mapping_fn' must be callable (agent_id, episode, **kwargs) -> policy id")
        if not self.enable_rl_module_and_learner or not self.enable_env_runner_and_connector_v2:
            raise ValueError("solray.rllib implements only RLlib's new API stack; "
                             "api_stack(enable_rl_module_and_learner=False) is not supported.")

    # --- building ---------------------------------------------------------------------------
    def build_algo(self, env: Any = None, logger_creator: Any = None, use_copy: bool = True) -> Any:
        """Validate the config, then build the Algorithm: env runner actors, learners, modules."""
        config = self.copy() if use_copy else self
        if env is not None:
            config.environment(env)
        if config.algo_class is None:
            raise ValueError(f"{type(self).__name__} has no algorithm class to build.")
        return config.algo_class(config=config)

    def build(self, env: Any = None, logger_creator: Any = None, use_copy: bool = True) -> Any:
        """Ray's older name for :meth:`build_algo`."""
        return self.build_algo(env=env, logger_creator=logger_creator, use_copy=use_copy)
