"""The reporting session of one training worker, and the context it exposes.

``report`` uploads the worker's checkpoint (if any) to the run folder under a temporary
name and queues the result; the coordinator takes each round's results from every worker,
commits the checkpoint and records rank 0's metrics.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Any

from solray.air._internal.session import Session


@dataclasses.dataclass
class WorkerInfo:
    """Where one worker sits in the group."""

    world_rank: int
    local_rank: int
    node_rank: int
    world_size: int
    local_world_size: int
    node_id: str = ""
    node_ip: str = ""


class TrainContext:
    """What a training function may ask about its run (``solray.train.get_context()``)."""

    def __init__(self, info: WorkerInfo, experiment_name: str, trial_name: str, trial_id: str, storage,
                 metadata: dict | None = None, trial_resources: Any = None):
        self._info = info
        self._experiment_name = experiment_name
        self._trial_name = trial_name
        self._trial_id = trial_id
        self._storage = storage
        self._metadata = metadata or {}
        self._trial_resources = trial_resources

    def get_world_size(self) -> int:
        return self._info.world_size

    def get_world_rank(self) -> int:
        return self._info.world_rank

    def get_local_rank(self) -> int:
        return self._info.local_rank

    def get_local_world_size(self) -> int:
        return self._info.local_world_size

    def get_node_rank(self) -> int:
        return self._info.node_rank

    def get_experiment_name(self) -> str:
        return self._experiment_name

    def get_trial_name(self) -> str:
        return self._trial_name

    def get_trial_id(self) -> str:
        return self._trial_id

    def get_trial_dir(self) -> str:
        return self._storage.run_fs_path

    def get_storage(self):
        return self._storage

    def get_metadata(self) -> dict:
        return dict(self._metadata)

    def get_trial_resources(self):
        return self._trial_resources

    def __repr__(self) -> str:
        i = self._info
        return f"TrainContext(world_rank={i.world_rank}, world_size={i.world_size}, local_rank={i.local_rank})"


class TrainSession(Session):
    """Installed in each training worker while its training function runs."""

    def __init__(self, context: TrainContext, checkpoint, dataset_shards: dict, results: queue.Queue,
                 acks: threading.Semaphore | None = None):
        self.context = context
        self._acks = acks
        self.checkpoint = checkpoint
        self.dataset_shards = dataset_shards
        self._results = results
        self.iteration = 0

    def report(self, metrics: dict, checkpoint: Any = None, checkpoint_dir_name: str | None = None) -> None:
        from solray.train._checkpoint import Checkpoint

        if not isinstance(metrics, dict):
            raise TypeError(f"report(metrics=...) expects a dict, got {type(metrics).__name__}")
        bad = [k for k in metrics if not isinstance(k, str)]
        if bad:
            raise TypeError(f"report(metrics=...): metric names must be strings, got {bad!r}")
        if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
            raise TypeError(
                f"report(checkpoint=...) expects a solray.train.Checkpoint, got {type(checkpoint).__name__}; "
                "build one with Checkpoint.from_directory(path)"
            )
        staged = self.context.get_storage().stage_checkpoint(checkpoint) if checkpoint is not None else None
        self.iteration += 1
        self._results.put(("report", dict(metrics), staged))
        if self._acks is not None:
            self._acks.acquire()

    def get_checkpoint(self):
        return self.checkpoint

    def get_context(self) -> TrainContext:
        return self.context

    def get_dataset_shard(self, name: str | None = None):
        if not self.dataset_shards:
            raise KeyError("get_dataset_shard: this trainer was given no datasets (pass datasets={...} to it)")
        if name is None:
            if len(self.dataset_shards) > 1:
                raise KeyError(f"get_dataset_shard: name one of {sorted(self.dataset_shards)}")
            name = next(iter(self.dataset_shards))
        if name not in self.dataset_shards:
            raise KeyError(f"get_dataset_shard({name!r}): no such dataset; the trainer has {sorted(self.dataset_shards)}")
        return self.dataset_shards[name]
