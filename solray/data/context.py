"""``DataContext``: the knobs of Ray Data, one instance per process (``get_current()``)."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class ExecutionResources:
    """Resource amounts; ``None`` means "no limit" (Ray's ``ExecutionResources``)."""

    cpu: float | None = None
    gpu: float | None = None
    object_store_memory: float | None = None
    memory: float | None = None

    @classmethod
    def for_limits(cls, cpu=None, gpu=None, object_store_memory=None, memory=None) -> ExecutionResources:
        return cls(cpu=cpu, gpu=gpu, object_store_memory=object_store_memory, memory=memory)


@dataclass
class ExecutionOptions:
    """How a dataset executes: resource limits, ordering, progress verbosity."""

    resource_limits: ExecutionResources = field(default_factory=ExecutionResources)
    exclude_resources: ExecutionResources = field(default_factory=ExecutionResources)
    # Ray's default is False; solray keeps block order anyway (it is cheap with bounded
    # in-flight work and makes take()/limit() deterministic). The flag is kept for API parity.
    preserve_order: bool = False
    actor_locality_enabled: bool = True
    locality_with_output: bool = False
    verbose_progress: bool | None = None

    def __post_init__(self) -> None:
        if self.resource_limits is None:
            self.resource_limits = ExecutionResources()
        if self.exclude_resources is None:
            self.exclude_resources = ExecutionResources()


@dataclass
class DataContext:
    """Per-process settings for Data (``DataContext.get_current()`` to read or change them).

    The driver's context travels with each execution, so changing it before consuming a
    dataset affects that execution (as in Ray).
    """

    target_max_block_size: int | None = 128 * 1024 * 1024
    target_min_block_size: int = 1 * 1024 * 1024
    target_shuffle_max_block_size: int = 1024 * 1024 * 1024
    read_op_min_num_blocks: int = 200
    min_parallelism: int = 200
    enable_progress_bars: bool = True
    enable_operator_progress_bars: bool = True
    use_ray_tqdm: bool = True
    enable_auto_log_stats: bool = False
    verbose_stats_logs: bool = False
    use_push_based_shuffle: bool = False
    enable_tensor_extension_casting: bool = True
    max_errored_blocks: int = 0
    max_tasks_in_flight_per_actor: int | None = None
    actor_prefetcher_enabled: bool = False
    print_on_execution_start: bool = True
    # Fraction of the cluster's object store that one execution may fill (in-flight task
    # outputs plus queued blocks) before operators are backpressured.
    object_store_memory_limit_fraction: float = 0.25
    execution_options: ExecutionOptions = field(default_factory=ExecutionOptions)
    scheduling_strategy: Any = "SPREAD"

    _current: ClassVar[DataContext | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def get_current(cls) -> DataContext:
        """The context of this process (created with defaults on first use)."""
        with cls._lock:
            if cls._current is None:
                cls._current = cls()
            return cls._current

    @classmethod
    def _set_current(cls, context: DataContext) -> None:
        with cls._lock:
            cls._current = context

    def copy(self) -> DataContext:
        return copy.deepcopy(self)

    def set_config(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def get_config(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


# Ray's older name.
DatasetContext = DataContext
