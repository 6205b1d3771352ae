"""``BaseTrainer``: what every Trainer shares — ``fit()``, and ``as_trainable()`` for Tune."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

from solray.air.config import RunConfig, ScalingConfig
from solray.air.result import Result


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in; nested dicts merge, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class BaseTrainer:
    """A training run on the cluster. Subclasses implement the run in ``_run(tune_session)``.

    The constructor's arguments are kept in ``_param_dict`` so that Tune can rebuild the
    trainer with sampled values merged in (``Tuner(trainer, param_space={"params": ...})``).
    """

    _param_dict: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any):
        instance = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(instance, *args, **kwargs)
        except TypeError:
            bound = None  # __init__ reports the mistake with its own message
        if bound is not None:
            params = dict(bound.arguments)
            params.pop("self", None)
            extra = {k: v for k, v in params.items() if inspect.signature(cls.__init__).parameters[k].kind
                     == inspect.Parameter.VAR_KEYWORD}
            for k in extra:
                params.pop(k)
                params.update(extra[k])
            instance._param_dict = params
        return instance

    def __init__(
        self,
        *,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        datasets: dict | None = None,
        metadata: dict | None = None,
        resume_from_checkpoint: Any = None,
    ):
        from solray.train._checkpoint import Checkpoint

        if scaling_config is None:
            scaling_config = ScalingConfig()
        if not isinstance(scaling_config, ScalingConfig):
            raise TypeError(f"scaling_config must be a ScalingConfig, got {type(scaling_config).__name__}")
        if run_config is None:
            run_config = RunConfig()
        if not isinstance(run_config, RunConfig):
            raise TypeError(f"run_config must be a RunConfig, got {type(run_config).__name__}")
        if resume_from_checkpoint is not None and not isinstance(resume_from_checkpoint, Checkpoint):
            raise TypeError(
                f"resume_from_checkpoint must be a solray.train.Checkpoint, got {type(resume_from_checkpoint).__name__}"
            )
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        self.scaling_config = scaling_config
        self.run_config = run_config
        self.datasets = _check_datasets(datasets)
        self.metadata = metadata
        self.resume_from_checkpoint = resume_from_checkpoint

    def fit(self) -> Result:
        """Run training to the end; the ``Result`` has ``error`` set when it failed after
        ``FailureConfig(max_failures=...)`` restarts."""
        import solray

        if not solray.is_initialized():
            solray.init()
        return self._run(None)

    def _run(self, tune_session) -> Result | None:
        raise NotImplementedError

    def _split_for_trials(self) -> list[dict] | None:
        """Data prepared once in the driver for every Tune trial (see DataParallelTrainer)."""
        return None

    def as_trainable(self) -> Callable[[dict], None]:
        """A Tune function trainable: ``f(config)`` rebuilds this trainer with ``config``
        deep-merged into its arguments and runs it, reporting each result to the trial."""
        cls = type(self)
        params = self._param_dict
        bundles = self.scaling_config.as_placement_group_bundles()
        presplit = self._split_for_trials()

        def train_func(config: dict | None = None) -> None:
            from solray.air._internal import session as air_session

            trainer = cls(**deep_merge(params, config or {}))
            if "datasets" not in (config or {}):
                trainer._presplit = presplit
            trainer._run(air_session.current())

        train_func.__name__ = train_func.__qualname__ = cls.__name__
        train_func._solray_bundles = bundles
        train_func._solray_strategy = self.scaling_config.placement_strategy
        train_func._solray_trainer_class = cls
        # The datasets are split already: trials need no CPU left free for Data tasks.
        train_func._solray_datasets_prepared = presplit is not None
        return train_func

    def _param_dict_for_logging(self) -> dict:
        """The JSON-able part of the constructor arguments (params.json)."""
        out = {}
        for key, value in getattr(self, "_param_dict", {}).items():
            if isinstance(value, (str, int, float, bool, type(None))):
                out[key] = value
            elif isinstance(value, dict):
                try:
                    import json

                    json.dumps(value)
                    out[key] = copy.deepcopy(value)
                except TypeError:
                    out[key] = {k: str(v) for k, v in value.items()}
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} scaling_config={self.scaling_config!r}>"


def _check_datasets(datasets: dict | None) -> dict:
    if datasets is None:
        return {}
    if not isinstance(datasets, dict):
        raise TypeError(f"datasets must be a dict of name -> solray.data.Dataset, got {type(datasets).__name__}")
    from solray.data import Dataset

    out = {}
    for name, ds in datasets.items():
        if not isinstance(name, str):
            raise TypeError(f"datasets: names must be strings, got {name!r}")
        if callable(ds) and not isinstance(ds, Dataset):  # Ray accepts a function making the dataset
            ds = ds()
        if not isinstance(ds, Dataset):
            raise TypeError(f"datasets[{name!r}] must be a solray.data.Dataset, got {type(ds).__name__}")
        out[name] = ds
    return out
