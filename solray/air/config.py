"""Configuration objects shared by Train and Tune, with Ray's names, fields and defaults.

Each validates its input when built, so a mistake is reported where it was made rather
than when the run starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

_PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@dataclasses.dataclass
class ScalingConfig:
    """How many training workers, and the resources of each (and of the coordinator).

    ``trainer_resources`` defaults to no CPU so that ``num_workers`` workers of one CPU
    each fit on a machine with ``num_workers`` CPUs (Ray's coordinator would take one).
    """

    num_workers: int = 1
    use_gpu: bool = False
    resources_per_worker: dict[str, float] | None = None
    placement_strategy: str = "PACK"
    trainer_resources: dict[str, float] | None = None
    accelerator_type: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.num_workers, int) or isinstance(self.num_workers, bool) or self.num_workers < 1:
            raise ValueError(f"ScalingConfig(num_workers={self.num_workers!r}): must be an integer >= 1")
        if self.placement_strategy not in _PLACEMENT_STRATEGIES:
            raise ValueError(
                f"ScalingConfig(placement_strategy={self.placement_strategy!r}): "
                f"must be one of {', '.join(_PLACEMENT_STRATEGIES)}"
            )
        for field in ("resources_per_worker", "trainer_resources"):
            value = getattr(self, field)
            if value is None:
                continue
            if not isinstance(value, dict):
                raise TypeError(f"ScalingConfig({field}=...): expected a dict, got {type(value).__name__}")
            for key, amount in value.items():
                if not isinstance(amount, (int, float)) or amount < 0:
                    raise ValueError(f"ScalingConfig({field}): {key}={amount!r} must be a number >= 0")

    @property
    def num_cpus_per_worker(self) -> float:
        return float(self._worker_resources().get("CPU", 0))

    @property
    def num_gpus_per_worker(self) -> float:
        return float(self._worker_resources().get("GPU", 0))

    def _worker_resources(self) -> dict[str, float]:
        """One worker's bundle: 1 CPU (and 1 GPU with ``use_gpu``) unless given."""
        if self.resources_per_worker is None:
            resources = {"CPU": 1}
        else:
            resources = dict(self.resources_per_worker)
        if self.use_gpu:
            resources.setdefault("GPU", 1)
        return {k: v for k, v in resources.items() if v}

    def _trainer_resources(self) -> dict[str, float]:
        return {k: v for k, v in (self.trainer_resources or {}).items() if v}

    def as_placement_group_bundles(self) -> list[dict[str, float]]:
        """Bundle 0 is the coordinator's (possibly empty: a placement group may need to
        drop it), then one per worker."""
        return [self._trainer_resources()] + [self._worker_resources() for _ in range(self.num_workers)]


@dataclasses.dataclass
class FailureConfig:
    """``max_failures``: how many times to restart after a failure (-1: forever)."""

    max_failures: int = 0
    fail_fast: bool | str = False

    def __post_init__(self) -> None:
        if not isinstance(self.max_failures, int) or self.max_failures < -1:
            raise ValueError(f"FailureConfig(max_failures={self.max_failures!r}): must be an integer >= -1")


@dataclasses.dataclass
class CheckpointConfig:
    """Which reported checkpoints to keep: the best ``num_to_keep`` by the score attribute
    (all when None), the latest always."""

    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool | None = None

    def __post_init__(self) -> None:
        if self.num_to_keep is not None and (not isinstance(self.num_to_keep, int) or self.num_to_keep < 1):
            raise ValueError(f"CheckpointConfig(num_to_keep={self.num_to_keep!r}): must be None or an integer >= 1")
        if self.checkpoint_score_order not in ("max", "min"):
            raise ValueError(
                f"CheckpointConfig(checkpoint_score_order={self.checkpoint_score_order!r}): must be 'max' or 'min'"
            )


@dataclasses.dataclass
class RunConfig:
    """Where a run keeps its results (``storage_path/name``) and how it handles failures.

    ``storage_path`` is a local or NFS path or a pyarrow/fsspec URI (``s3://...``); it
    defaults to ``~/solray_results``. ``stop`` is used by Tune (a dict of metric
    thresholds, a function ``(trial_id, result) -> bool`` or a ``tune.Stopper``).
    """

    name: str | None = None
    storage_path: str | None = None
    storage_filesystem: Any = None
    failure_config: FailureConfig | None = None
    checkpoint_config: CheckpointConfig | None = None
    callbacks: list | None = None
    stop: dict | Callable | Any | None = None
    verbose: int | None = None
    progress_reporter: Any = None
    log_to_file: bool | str | tuple = False
    sync_config: Any = None

    def __post_init__(self) -> None:
        if self.failure_config is None:
            self.failure_config = FailureConfig()
        if self.checkpoint_config is None:
            self.checkpoint_config = CheckpointConfig()
        if self.name is not None and (not isinstance(self.name, str) or "/" in self.name or not self.name):
            raise ValueError(f"RunConfig(name={self.name!r}): must be a non-empty string without '/'")
        if self.storage_path is not None and not isinstance(self.storage_path, str):
            self.storage_path = str(self.storage_path)  # a pathlib.Path
