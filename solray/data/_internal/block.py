"""Blocks: the unit of data that tasks pass around, always a ``pyarrow.Table``.

User code sees batches (dict of NumPy arrays, pandas DataFrame or Arrow Table) and rows
(dicts); this module converts between those and Arrow at the edges, so everything between
operators is Arrow, zero-copy readable from shared memory.

Column conversion rules (what makes NumPy round-trip):
- 1-D numeric/string arrays become plain Arrow arrays (numeric ones without copying);
- N-D arrays, or lists of equal-shaped arrays, become ``fixed_shape_tensor`` columns, read
  back as N-D NumPy arrays;
- anything Arrow cannot type (ragged arrays, arbitrary objects) is pickled into a
  ``PythonObjectType`` extension column, read back as an object array.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

VALID_BATCH_FORMATS = ("default", "numpy", "pandas", "pyarrow", None)


class PythonObjectType(pa.ExtensionType):
    """Arrow extension type for values Arrow cannot represent: pickled Python objects."""

    def __init__(self) -> None:
        super().__init__(pa.large_binary(), "solray.data.python_object")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized) -> PythonObjectType:
        return cls()

    def __reduce__(self):
        return PythonObjectType, ()


try:
    pa.register_extension_type(PythonObjectType())
except pa.ArrowKeyError:  # already registered (module reloaded)
    pass


@dataclass
class ExecStats:
    """What one task measured about itself."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    node_id: str | None = None


@dataclass
class BlockMetadata:
    """Everything the driver knows about a block without fetching it."""

    num_rows: int
    size_bytes: int
    schema: pa.Schema | None = None
    input_files: list[str] = field(default_factory=list)
    exec_stats: ExecStats | None = None


def metadata_for(table: pa.Table, input_files: list[str] | None = None, exec_stats=None) -> BlockMetadata:
    return BlockMetadata(
        num_rows=table.num_rows,
        size_bytes=table_nbytes(table),
        schema=table.schema,
        input_files=list(input_files or []),
        exec_stats=exec_stats,
    )


def table_nbytes(table: pa.Table) -> int:
    try:
        return int(table.nbytes)
    except Exception:  # some extension arrays cannot size slices
        return int(table.get_total_buffer_size())


# ---------------------------------------------------------------------------------------
# Normalising what a bundle ref holds into a list of tables.


def as_blocks(obj: Any) -> list[pa.Table]:
    """The blocks an object-store value holds: a table, a list of tables, or a DataFrame."""
    if isinstance(obj, pa.Table):
        return [obj]
    if isinstance(obj, list):
        return [b if isinstance(b, pa.Table) else batch_to_block(b) for b in obj]
    return [batch_to_block(obj)]


# ---------------------------------------------------------------------------------------
# Batch / column -> Arrow


def _object_array(values: list) -> pa.Array:
    data = [None if v is None else pickle.dumps(v, protocol=5) for v in values]
    storage = pa.array(data, type=pa.large_binary())
    return pa.ExtensionArray.from_storage(PythonObjectType(), storage)


def _tensor_array(arr: np.ndarray) -> pa.Array:
    arr = np.ascontiguousarray(arr)
    if arr.dtype == object or arr.dtype.kind in "OUSV":
        return _object_array(list(arr))
    # Built from storage rather than FixedShapeTensorArray.from_numpy_ndarray, which rejects
    # arrays whose leading dimension has size 1 (numpy gives it a zero stride).
    value_type = pa.from_numpy_dtype(arr.dtype)
    ty = pa.fixed_shape_tensor(value_type, list(arr.shape[1:]))
    size = int(np.prod(arr.shape[1:]))
    storage = pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1), type=value_type), size)
    return pa.ExtensionArray.from_storage(ty, storage)


def column_to_arrow(values: Any, name: str = "?") -> pa.Array | pa.ChunkedArray:
    """Convert one column of a batch (array, list, Series...) to an Arrow array."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    try:
        import pandas as pd

        if isinstance(values, pd.Series):
            if values.dtype == object:
                return column_to_arrow(list(values), name)
            return pa.Array.from_pandas(values)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(values, np.ndarray):
        if values.ndim == 0:
            raise ValueError(
                f"column {name!r} is a scalar ({values!r}); a batch's columns must be arrays "
                "with one value per row"
            )
        if values.ndim > 1:
            return _tensor_array(values)
        if values.dtype == object:
            return column_to_arrow(list(values), name)
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return _object_array(list(values))
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(
            f"column {name!r} is a scalar of type {type(values).__name__}; a batch's columns "
            "must be arrays or lists with one value per row"
        )
    values = list(values)
    if values and all(isinstance(v, np.ndarray) for v in values):
        first = values[0]
        if all(v.shape == first.shape and v.dtype == first.dtype for v in values) and first.dtype != object:
            return _tensor_array(np.stack(values))
        return _object_array(values)
    if values and any(isinstance(v, np.ndarray) and v.ndim > 0 for v in values):
        return _object_array(values)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError):
        return _object_array(values)


def dict_to_block(batch: dict) -> pa.Table:
    names = list(batch.keys())
    for n in names:
        if not isinstance(n, str):
            raise ValueError(f"column names must be strings, got {n!r} ({type(n).__name__})")
    arrays = [column_to_arrow(batch[n], n) for n in names]
    lengths = {n: len(a) for n, a in zip(names, arrays, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"the batch's columns have different lengths: {lengths}")
    return pa.Table.from_arrays(arrays, names=names)


def pandas_to_block(df) -> pa.Table:
    columns = {}
    for name in df.columns:
        col = df[name]
        if col.dtype == object and len(col) and any(isinstance(v, np.ndarray) for v in col):
            columns[str(name)] = column_to_arrow(list(col), str(name))
        else:
            columns[str(name)] = col
    plain = {n: c for n, c in columns.items() if not isinstance(c, (pa.Array, pa.ChunkedArray))}
    if len(plain) == len(columns):
        try:
            return pa.Table.from_pandas(df.rename(columns=str), preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            pass
    return dict_to_block({n: c for n, c in columns.items()})


def batch_to_block(batch: Any) -> pa.Table:
    """A user batch (dict of arrays, DataFrame, Arrow Table) as a block."""
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, dict):
        return dict_to_block(batch)
    try:
        import pandas as pd

        if isinstance(batch, pd.DataFrame):
            return pandas_to_block(batch)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch])
    raise TypeError(
        f"expected a batch as a dict of column name to array, a pandas.DataFrame or a "
        f"pyarrow.Table, got {type(batch).__name__}"
    )


def rows_to_block(rows: list[dict]) -> pa.Table:
    """A block from a list of row dicts (column order: first appearance)."""
    names: dict[str, None] = {}
    for r in rows:
        if not isinstance(r, dict):
            raise TypeError(f"expected each row to be a dict, got {type(r).__name__}: {r!r}")
        for k in r:
            names.setdefault(k, None)
    return dict_to_block({n: [r.get(n) for r in rows] for n in names})


# ---------------------------------------------------------------------------------------
# Arrow -> batch / column / rows


def _is_tensor(ty: pa.DataType) -> bool:
    return isinstance(ty, pa.FixedShapeTensorType)


def _is_object(ty: pa.DataType) -> bool:
    return isinstance(ty, PythonObjectType)


def column_to_numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    ty = col.type
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            col = col.chunk(0)
        elif col.num_chunks == 0:
            col = pa.array([], type=ty) if not isinstance(ty, pa.ExtensionType) else col.combine_chunks()
        else:
            col = col.combine_chunks()
    if _is_tensor(ty):
        if len(col) == 0:
            return np.empty((0, *ty.shape), dtype=ty.value_type.to_pandas_dtype())
        return col.to_numpy_ndarray()
    if _is_object(ty):
        out = np.empty(len(col), dtype=object)
        for i, v in enumerate(col.storage.to_pylist()):
            out[i] = None if v is None else pickle.loads(v)
        return out
    if isinstance(ty, pa.ExtensionType):
        col = col.storage
    return col.to_numpy(zero_copy_only=False)


def column_to_pylist(col: pa.ChunkedArray) -> list:
    ty = col.type
    if _is_tensor(ty) or _is_object(ty):
        return list(column_to_numpy(col))
    return col.to_pylist()


def block_to_numpy(table: pa.Table) -> dict[str, np.ndarray]:
    return {name: column_to_numpy(table.column(i)) for i, name in enumerate(table.column_names)}


def block_to_pandas(table: pa.Table):
    import pandas as pd

    special = [i for i, f in enumerate(table.schema) if _is_tensor(f.type) or _is_object(f.type)]
    if not special:
        return table.to_pandas()
    data = {}
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        if i in special:
            values = column_to_numpy(col)
            obj = np.empty(len(values), dtype=object)
            for j in range(len(values)):
                obj[j] = values[j]
            data[name] = obj
        else:
            data[name] = col.to_pandas()
    return pd.DataFrame(data)


def block_to_batch(table: pa.Table, batch_format: str | None):
    if batch_format in ("default", "numpy"):
        return block_to_numpy(table)
    if batch_format == "pandas":
        return block_to_pandas(table)
    if batch_format in ("pyarrow", None):
        return table
    raise ValueError(
        f"batch_format must be one of 'default', 'numpy', 'pandas', 'pyarrow' or None, "
        f"got {batch_format!r}"
    )


def validate_batch_format(batch_format: Any, arg: str = "batch_format") -> None:
    if batch_format not in VALID_BATCH_FORMATS:
        raise ValueError(
            f"{arg} must be one of 'default', 'numpy', 'pandas', 'pyarrow' or None, got "
            f"{batch_format!r}"
        )


def iter_rows(table: pa.Table) -> Iterator[dict]:
    names = table.column_names
    if table.num_rows == 0:
        return
    columns = [column_to_pylist(table.column(i)) for i in range(len(names))]
    for values in zip(*columns, strict=True):
        yield dict(zip(names, values, strict=True))


# ---------------------------------------------------------------------------------------
# Combining and splitting


def concat(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t is not None]
    if not tables:
        return pa.table({})
    if len(tables) == 1:
        return tables[0]
    nonempty = [t for t in tables if t.num_rows > 0] or tables[:1]
    if len(nonempty) == 1:
        return nonempty[0]
    try:
        return pa.concat_tables(nonempty, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.concat_tables(nonempty, promote_options="permissive")


def split_by_size(table: pa.Table, max_bytes: int | None) -> list[pa.Table]:
    """Slice a table into pieces of at most ``max_bytes`` each (rows are never split)."""
    if not max_bytes or table.num_rows <= 1:
        return [table]
    size = table_nbytes(table)
    if size <= max_bytes:
        return [table]
    pieces = -(-size // max_bytes)
    rows = -(-table.num_rows // pieces)
    return [table.slice(i, rows) for i in range(0, table.num_rows, rows)]


class BlockBuilder:
    """Collects output tables of a task and cuts them into blocks near the target size."""

    def __init__(self, target_max_bytes: int | None):
        self._target = target_max_bytes
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0
        self.blocks: list[pa.Table] = []

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            if not self.blocks and not self._pending:
                self._empty = table
            return
        self._pending.append(table)
        self._pending_bytes += table_nbytes(table)
        if self._target and self._pending_bytes >= self._target:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        merged = concat(self._pending)
        self._pending, self._pending_bytes = [], 0
        self.blocks.extend(split_by_size(merged, self._target))

    def finish(self) -> list[pa.Table]:
        self._flush()
        if not self.blocks and hasattr(self, "_empty"):
            return [self._empty]
        return self.blocks
