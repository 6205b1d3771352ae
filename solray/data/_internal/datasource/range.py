"""``range`` / ``range_tensor``: integers generated inside read tasks (nothing is shipped)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from solray.data._internal.block import BlockMetadata, column_to_arrow
from solray.data.datasource import Datasource, ReadTask


def _make_block(start: int, count: int, column: str, tensor_shape) -> pa.Table:
    values = np.arange(start, start + count, dtype=np.int64)
    if tensor_shape is None:
        return pa.table({column: values})
    data = np.ones((count, *tensor_shape), dtype=np.int64) * values.reshape((count,) + (1,) * len(tensor_shape))
    return pa.table({column: column_to_arrow(data, column)})


class RangeDatasource(Datasource):
    def __init__(self, n: int, column: str = "id", tensor_shape: tuple | None = None, columns=None):
        self._n = n
        self._column = column
        self._shape = tuple(tensor_shape) if tensor_shape is not None else None
        self._projected = columns

    def get_name(self) -> str:
        return "Range" if self._shape is None else "RangeTensor"

    def _row_bytes(self) -> int:
        return 8 * (int(np.prod(self._shape)) if self._shape else 1)

    def estimate_inmemory_data_size(self) -> int:
        return self._n * self._row_bytes()

    def num_rows(self) -> int:
        return self._n

    def schema(self):
        if self._projected == []:
            return pa.schema([])
        return _make_block(0, 1, self._column, self._shape).schema

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        n = self._n
        parallelism = max(1, min(parallelism, n)) if n else 0
        tasks = []
        column, shape, projected = self._column, self._shape, self._projected
        row_bytes = self._row_bytes()
        for i in range(parallelism):
            start = (n * i) // parallelism
            end = (n * (i + 1)) // parallelism
            count = end - start
            if count <= 0:
                continue

            def read(start=start, count=count):
                block_rows = max(1, (64 * 1024 * 1024) // row_bytes)
                for off in range(0, count, block_rows):
                    t = _make_block(start + off, min(block_rows, count - off), column, shape)
                    yield t.select(projected) if projected is not None else t

            tasks.append(ReadTask(read, BlockMetadata(num_rows=count, size_bytes=count * row_bytes)))
        return tasks

    def supports_limit_pushdown(self) -> bool:
        return True

    def apply_limit(self, limit: int) -> RangeDatasource:
        return RangeDatasource(min(self._n, limit), self._column, self._shape, self._projected)

    def supports_projection_pushdown(self) -> bool:
        return True

    def apply_projection(self, columns) -> RangeDatasource:
        return RangeDatasource(self._n, self._column, self._shape, list(columns))
