"""What XGBoostTrainer and LightGBMTrainer share: the two constructor forms (Ray's
``label_column=/params=/num_boost_round=`` form and the ``train_loop_per_worker`` form),
reading a worker's dataset shards into frames, and the report callback's bookkeeping."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

from solray.air.config import RunConfig, ScalingConfig
from solray.train.data_parallel_trainer import DataConfig, DataParallelTrainer

DEFAULT_NUM_BOOST_ROUND = 10


def shard_frame(name: str):
    """This worker's shard of ``datasets[name]`` as one pandas DataFrame."""
    import pyarrow as pa

    from solray.train import get_dataset_shard

    tables = list(get_dataset_shard(name).iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=0))
    if not tables:
        raise ValueError(f"dataset {name!r}: this worker's shard is empty (fewer rows than workers?)")
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def split_label(frame, label_column: str, dataset_name: str):
    if label_column not in frame.columns:
        raise KeyError(
            f"label_column={label_column!r} is not a column of dataset {dataset_name!r}; "
            f"its columns are {list(frame.columns)}"
        )
    return frame.drop(columns=[label_column]), frame[label_column]


def seed_inputs(config: dict, threads_param: str, load_model: Callable) -> tuple[dict, dict, Any]:
    """For the seed-form loop on a worker: the params (one thread per worker CPU unless
    set), ``{dataset name: (features, labels)}`` of this worker's shards, and the model to
    continue from (the checkpoint's after a restart, else None)."""
    from solray.train import get_checkpoint, get_context

    params = dict(config["params"])
    cpus = get_context().get_trial_resources().num_cpus_per_worker
    if cpus and threads_param not in params and "n_jobs" not in params:
        params[threads_param] = max(1, int(cpus))
    label = config["label_column"]
    frames = {name: split_label(shard_frame(name), label, name) for name in config["dataset_names"]}
    checkpoint = get_checkpoint()
    return params, frames, load_model(checkpoint) if checkpoint is not None else None


class GBDTTrainer(DataParallelTrainer):
    """Base of the boosting trainers; subclasses set the seed-form loop and their config."""


    def __init__(
        self,
        train_loop_per_worker: Callable | None = None,
        *,
        train_loop_config: dict | None = None,
        backend_config=None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        datasets: dict | None = None,
        dataset_config: DataConfig | None = None,
        metadata: dict | None = None,
        resume_from_checkpoint: Any = None,
        label_column: str | None = None,
        params: dict | None = None,
        num_boost_round: int | None = None,
        **train_kwargs: Any,
    ):
        self.label_column = label_column
        self.params = params
        if train_loop_per_worker is None:
            train_loop_per_worker, train_loop_config = self._seed_form(
                label_column, params, num_boost_round, datasets, run_config, train_loop_config, train_kwargs
            )
        elif label_column is not None or params is not None or num_boost_round is not None or train_kwargs:
            raise ValueError(
                f"{type(self).__name__}: pass either train_loop_per_worker or label_column/params/"
                "num_boost_round, not both"
            )
        super().__init__(
            train_loop_per_worker,
            train_loop_config=train_loop_config,
            backend_config=backend_config,
            scaling_config=scaling_config,
            dataset_config=dataset_config,
            run_config=run_config,
            datasets=datasets,
            metadata=metadata,
            resume_from_checkpoint=resume_from_checkpoint,
        )

    def _seed_form(self, label_column, params, num_boost_round, datasets, run_config, loop_config, train_kwargs):
        name = type(self).__name__
        if label_column is None or not isinstance(label_column, str):
            raise ValueError(f"{name}: label_column= (a column name) is required without train_loop_per_worker")
        if not isinstance(datasets, dict) or "train" not in datasets:
            raise ValueError(f"{name}: datasets= must include a 'train' dataset; got {list(datasets or {})}")
        if params is not None and not isinstance(params, dict):
            raise TypeError(f"{name}: params must be a dict, got {type(params).__name__}")
        if num_boost_round is None:
            num_boost_round = DEFAULT_NUM_BOOST_ROUND
        if isinstance(num_boost_round, bool) or not isinstance(num_boost_round, int) or num_boost_round < 1:
            raise ValueError(f"{name}: num_boost_round must be an integer >= 1, got {num_boost_round!r}")
        checkpoint_config = (run_config or RunConfig()).checkpoint_config
        config = {
            "label_column": label_column,
            "params": dict(params or {}),
            "num_boost_round": num_boost_round,
            "dataset_names": list(datasets),
            "train_kwargs": train_kwargs,
            "frequency": checkpoint_config.checkpoint_frequency,
            "checkpoint_at_end": checkpoint_config.checkpoint_at_end is not False,
            **(loop_config or {}),
        }
        return type(self)._seed_loop, config

    @staticmethod
    def _seed_loop(config: dict) -> None:
        raise NotImplementedError


class ReportCallbackBase:
    """Turns a booster's evaluation log into reported metrics (``<data>-<metric>``) and
    saves the model as the checkpoint every ``frequency`` rounds and at the end."""

    DEFAULT_FILENAME = ""
    FRAMEWORK = ""

    def __init__(self, metrics: str | list[str] | dict[str, str] | None = None, filename: str | None = None,
                 frequency: int = 0, checkpoint_at_end: bool = True,
                 results_postprocessing_fn: Callable[[dict], dict] | None = None):
        if isinstance(metrics, str):
            metrics = [metrics]
        if frequency < 0:
            raise ValueError(f"RayTrainReportCallback(frequency={frequency}): must be >= 0")
        self._metrics = metrics
        self._filename = filename or self.DEFAULT_FILENAME
        self._frequency = frequency
        self._checkpoint_at_end = checkpoint_at_end
        self._postprocess = results_postprocessing_fn
        self._last_checkpointed: int | None = None
        self._last_metrics: dict | None = None

    @classmethod
    def _load_from(cls, checkpoint, filename: str, load: Callable[[str], Any]) -> Any:
        with checkpoint.as_directory() as path:
            model_path = os.path.join(path, filename)
            if not os.path.exists(model_path):
                raise FileNotFoundError(f"no {filename} in {checkpoint}: was it saved by a {cls.FRAMEWORK} trainer?")
            return load(model_path)

    def _select(self, flat: dict) -> dict:
        if self._metrics is None:
            out = flat
        elif isinstance(self._metrics, dict):
            out = {key: flat[metric] for key, metric in self._metrics.items() if metric in flat}
        else:
            out = {metric: flat[metric] for metric in self._metrics if metric in flat}
        return self._postprocess(out) if self._postprocess else out

    def _report(self, metrics: dict, iteration: int, model: Any, checkpoint: bool) -> None:
        from solray.train import Checkpoint, get_context, report

        self._last_metrics = metrics
        if not checkpoint:
            report(metrics)
            return
        self._last_checkpointed = iteration
        if get_context().get_world_rank() != 0:  # every rank has the same model; rank 0 saves it
            report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            self._save(model, os.path.join(tmp, self._filename))
            report(metrics, checkpoint=Checkpoint.from_directory(tmp))

    def _should_checkpoint(self, iteration: int) -> bool:
        return bool(self._frequency) and (iteration + 1) % self._frequency == 0

    def _save(self, model: Any, path: str) -> None:
        model.save_model(path)
