"""Datasource / Datasink extension points (Ray's ``ray.data.Datasource``, ``ReadTask``, ``Datasink``).

A datasource plans reads on the driver (listing files, reading footers) and returns
``ReadTask``s; each read task runs in a worker and yields blocks. Pushdown hooks let the
optimizer narrow a read to the columns, rows and row count a plan needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from solray.data._internal.block import BlockMetadata
from solray.data._internal.task_context import TaskContext


class ReadTask:
    """A function that reads one slice of a datasource, with what is known about its output."""

    def __init__(self, read_fn: Callable[[], Iterable[Any]], metadata: BlockMetadata | None = None):
        self._read_fn = read_fn
        self._metadata = metadata or BlockMetadata(num_rows=None, size_bytes=None)

    @property
    def metadata(self) -> BlockMetadata:
        return self._metadata

    @property
    def read_fn(self) -> Callable[[], Iterable[Any]]:
        return self._read_fn

    def __call__(self) -> Iterable[Any]:
        result = self._read_fn()
        if result is None:
            return []
        return result

    def __repr__(self) -> str:
        return f"ReadTask(num_rows={self._metadata.num_rows}, size_bytes={self._metadata.size_bytes})"


class Datasource:
    """Base class for custom datasources (``read_datasource``)."""

    def get_name(self) -> str:
        name = type(self).__name__
        return name[: -len("Datasource")] if name.endswith("Datasource") and len(name) > 10 else name

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        raise NotImplementedError

    @property
    def supports_distributed_reads(self) -> bool:
        return True

    # --- solray planning hooks (all optional) ---------------------------------------
    def num_rows(self) -> int | None:
        """Exact row count if known without reading rows (enables metadata-only count())."""
        return None

    def schema(self):
        """The output schema if known without reading rows."""
        return None

    def input_files(self) -> list[str]:
        return []

    def supports_projection_pushdown(self) -> bool:
        return False

    def apply_projection(self, columns: list[str]) -> Datasource:
        raise NotImplementedError

    def supports_filter_pushdown(self) -> bool:
        return False

    def apply_filter(self, expr) -> Datasource:
        raise NotImplementedError

    def supports_limit_pushdown(self) -> bool:
        return False

    def apply_limit(self, limit: int) -> Datasource:
        raise NotImplementedError


class Datasink:
    """Base class for write targets (``write_datasink``)."""

    def on_write_start(self) -> None:
        pass

    def write(self, blocks: Iterable[Any], ctx: TaskContext) -> Any:
        raise NotImplementedError

    def on_write_complete(self, write_result: Any) -> None:
        pass

    def on_write_failed(self, error: Exception) -> None:
        pass

    def get_name(self) -> str:
        name = type(self).__name__
        return name[: -len("Datasink")] if name.endswith("Datasink") and len(name) > 8 else name

    @property
    def supports_distributed_writes(self) -> bool:
        return True

    @property
    def min_rows_per_write(self) -> int | None:
        return None


class WriteResult:
    """What ``on_write_complete`` receives: rows written and each task's return value."""

    def __init__(self, num_rows: int, size_bytes: int, write_returns: list[Any]):
        self.num_rows = num_rows
        self.size_bytes = size_bytes
        self.write_returns = write_returns

    def __repr__(self) -> str:
        return f"WriteResult(num_rows={self.num_rows}, size_bytes={self.size_bytes})"
