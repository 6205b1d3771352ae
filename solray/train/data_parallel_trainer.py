"""``DataParallelTrainer``: run ``train_loop_per_worker`` on every worker of a group, each
with its shard of the datasets; framework trainers (Torch, XGBoost, LightGBM) add their
collective's setup through a ``BackendConfig``."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from solray.air.config import RunConfig, ScalingConfig
from solray.air.result import Result
from solray.train._internal.backend import BackendConfig
from solray.train.base_trainer import BaseTrainer


@dataclasses.dataclass
class DataConfig:
    """Which datasets are split between the workers (``"all"`` or a list of names); the
    others are given whole to every worker."""

    datasets_to_split: str | list[str] = "all"
    execution_options: Any = None
    enable_shard_locality: bool = True

    def __post_init__(self) -> None:
        if self.datasets_to_split != "all" and not (
            isinstance(self.datasets_to_split, (list, tuple))
            and all(isinstance(n, str) for n in self.datasets_to_split)
        ):
            raise TypeError(f"DataConfig(datasets_to_split={self.datasets_to_split!r}): 'all' or a list of names")


def _loop_arity(fn: Callable) -> int:
    if not callable(fn):
        raise TypeError(f"train_loop_per_worker must be a function, got {type(fn).__name__}")
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return 1
    if len(params) > 1:
        raise ValueError(
            f"train_loop_per_worker must take no argument or one (the train_loop_config dict); "
            f"{getattr(fn, '__name__', fn)} takes {len(params)}"
        )
    return len(params)


class DataParallelTrainer(BaseTrainer):
    """Runs ``train_loop_per_worker(train_loop_config)`` on ``scaling_config.num_workers``
    workers; inside it use ``solray.train.report``, ``get_context``, ``get_checkpoint``
    and ``get_dataset_shard``."""

    _default_backend_config: type[BackendConfig] = BackendConfig

    def __init__(
        self,
        train_loop_per_worker: Callable,
        *,
        train_loop_config: dict | None = None,
        backend_config: BackendConfig | None = None,
        scaling_config: ScalingConfig | None = None,
        dataset_config: DataConfig | None = None,
        run_config: RunConfig | None = None,
        datasets: dict | None = None,
        metadata: dict | None = None,
        resume_from_checkpoint: Any = None,
    ):
        super().__init__(scaling_config=scaling_config, run_config=run_config, datasets=datasets,
                         metadata=metadata, resume_from_checkpoint=resume_from_checkpoint)
        self._loop_arity = _loop_arity(train_loop_per_worker)
        if train_loop_config is not None and not isinstance(train_loop_config, dict):
            raise TypeError(f"train_loop_config must be a dict, got {type(train_loop_config).__name__}")
        if dataset_config is None:
            dataset_config = DataConfig()
        if not isinstance(dataset_config, DataConfig):
            raise TypeError(f"dataset_config must be a solray.train.DataConfig, got {type(dataset_config).__name__}")
        if backend_config is None:
            backend_config = self._default_backend_config()
        if not isinstance(backend_config, BackendConfig):
            raise TypeError(f"backend_config must be a BackendConfig, got {type(backend_config).__name__}")
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = train_loop_config
        self.dataset_config = dataset_config
        self._backend_config = backend_config

    def _run(self, tune_session) -> Result | None:
        from solray.train._internal.controller import TrainController
        from solray.train._internal.worker_group import check_feasible

        if tune_session is None or getattr(tune_session, "placement_group", None) is None:
            bundles = [b for b in self.scaling_config.as_placement_group_bundles() if b]
            check_feasible(bundles, self.scaling_config.placement_strategy)
        return TrainController(self, tune_session).run()

    def _worker_function(self) -> Callable[[], Any]:
        fn, config, arity = self.train_loop_per_worker, self.train_loop_config, self._loop_arity

        def run_loop() -> Any:
            return fn(config if config is not None else {}) if arity else fn()

        return run_loop

    def _dataset_shards(self, num_workers: int, in_tune: bool = False) -> list[dict]:
        """Per rank, ``{name: DataIterator}``: a streaming split of each split dataset,
        the whole dataset otherwise.

        Streaming runs Data tasks while the workers train; when the workers hold every CPU
        those tasks could never run, so the datasets are materialized and split first.
        """
        presplit = getattr(self, "_presplit", None)
        if presplit is not None and len(presplit) == num_workers:
            return [{name: part.iterator() for name, part in parts.items()} for parts in presplit]
        to_split = self.dataset_config.datasets_to_split
        shards: list[dict] = [{} for _ in range(num_workers)]
        if not self.datasets:
            return shards
        stream = self._cpus_left_for_data(in_tune) >= 1
        for name, ds in self.datasets.items():
            if to_split == "all" or name in to_split:
                if stream:
                    iterators = ds.streaming_split(num_workers, equal=True)
                else:
                    iterators = [part.iterator() for part in ds.split(num_workers, equal=True)]
                for rank, it in enumerate(iterators):
                    shards[rank][name] = it
            else:
                whole = ds if stream else ds.materialize()
                for rank in range(num_workers):
                    shards[rank][name] = whole.iterator()
        return shards

    def _split_for_trials(self) -> list[dict] | None:
        """Per rank, ``{name: MaterializedDataset}``, computed once before Tune reserves any
        trial: inside a trial the workers hold the trial's CPUs, and Data tasks started
        there could wait for them forever."""
        if not self.datasets:
            return None
        n = self.scaling_config.num_workers
        to_split = self.dataset_config.datasets_to_split
        parts: list[dict] = [{} for _ in range(n)]
        for name, ds in self.datasets.items():
            pieces = ds.split(n, equal=True) if to_split == "all" or name in to_split else [ds.materialize()] * n
            for rank, piece in enumerate(pieces):
                parts[rank][name] = piece
        return parts

    def _cpus_left_for_data(self, in_tune: bool) -> float:
        import solray

        if in_tune:  # the trial's workers are already reserved
            return solray.available_resources().get("CPU", 0)
        demand = sum(b.get("CPU", 0) for b in self.scaling_config.as_placement_group_bundles())
        return solray.cluster_resources().get("CPU", 0) - demand
