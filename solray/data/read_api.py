"""Creating datasets: from Python/NumPy/pandas/Arrow objects, and from files (lazily read)."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np
import pyarrow as pa

from solray.data._internal import block as B
from solray.data._internal import logical as L
from solray.data._internal.ref_bundle import RefBundle
from solray.data.dataset import Dataset, MaterializedDataset


def _put_blocks(tables: list[pa.Table]) -> list[RefBundle]:
    import solray
    from solray.data._internal.runtime import ensure_initialized

    ensure_initialized()
    bundles = []
    for t in tables:
        bundles.append(RefBundle(solray.put(t), [B.metadata_for(t)], owns_blocks=False))
    return bundles


def _materialized(tables: list[pa.Table], name: str) -> MaterializedDataset:
    return MaterializedDataset(L.InputData(_put_blocks(tables), name=name))


def _num_blocks(n_rows: int, override: int | None, parallelism: int) -> int:
    if override is not None:
        if not isinstance(override, int) or override < 1:
            raise ValueError(f"override_num_blocks must be a positive int, got {override!r}")
        return override
    if parallelism and parallelism > 0:
        return parallelism
    from solray.data._internal.runtime import Runtime

    cpus = Runtime().total_cpus
    return max(1, min(n_rows, max(int(cpus * 2), 1), 200)) if n_rows else 1


def _split_table(table: pa.Table, n: int) -> list[pa.Table]:
    n = max(1, min(n, table.num_rows)) if table.num_rows else 1
    return [table.slice((table.num_rows * i) // n, (table.num_rows * (i + 1)) // n - (table.num_rows * i) // n)
            for i in builtins.range(n)]


# --- in-memory sources ----------------------------------------------------------------------


def range(n: int, *, parallelism: int = -1, concurrency: int | None = None,  # noqa: A001
          override_num_blocks: int | None = None) -> Dataset:
    """Integers ``0..n-1`` in column ``id``."""
    from solray.data._internal.datasource.range import RangeDatasource

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"range: n must be a non-negative int, got {n!r}")
    return read_datasource(RangeDatasource(int(n)), parallelism=parallelism, concurrency=concurrency,
                           override_num_blocks=override_num_blocks)


def range_tensor(n: int, *, shape: tuple = (1,), parallelism: int = -1, concurrency: int | None = None,
                 override_num_blocks: int | None = None) -> Dataset:
    """Tensors filled with ``0..n-1`` (shape ``shape``) in column ``data``."""
    from solray.data._internal.datasource.range import RangeDatasource

    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"range_tensor: n must be a non-negative int, got {n!r}")
    if not isinstance(shape, (tuple, list)) or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"range_tensor: shape must be a tuple of positive ints, got {shape!r}")
    return read_datasource(RangeDatasource(n, column="data", tensor_shape=tuple(shape)), parallelism=parallelism,
                           concurrency=concurrency, override_num_blocks=override_num_blocks)


def from_items(items: list[Any], *, parallelism: int = -1, override_num_blocks: int | None = None
               ) -> MaterializedDataset:
    """A dataset of Python objects: dicts become rows; anything else goes in column ``item``."""
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"from_items expects a list, got {type(items).__name__}")
    n = _num_blocks(len(items), override_num_blocks, parallelism)
    tables = []
    size = len(items)
    for i in builtins.range(n):
        chunk = items[(size * i) // n:(size * (i + 1)) // n]
        if not chunk and size:
            continue
        if chunk and all(isinstance(x, dict) for x in chunk):
            tables.append(B.rows_to_block(list(chunk)))
        else:
            if any(isinstance(x, dict) for x in chunk):
                raise TypeError("from_items: items must be all dicts or all non-dicts")
            tables.append(B.dict_to_block({"item": list(chunk)}))
    return _materialized(tables, "FromItems")



def from_pandas(dfs, override_num_blocks: int | None = None) -> MaterializedDataset:
    """A dataset from one or more pandas DataFrames (one block each)."""
    import pandas as pd

    if isinstance(dfs, pd.DataFrame):
        dfs = [dfs]
    if not isinstance(dfs, (list, tuple)) or not all(isinstance(d, pd.DataFrame) for d in dfs):
        raise TypeError("from_pandas expects a pandas.DataFrame or a list of them")
    tables = [B.pandas_to_block(d) for d in dfs]
    if override_num_blocks is not None:
        tables = _split_table(B.concat(tables), override_num_blocks)
    return _materialized(tables, "FromPandas")


def from_numpy(ndarrays) -> MaterializedDataset:
    """A dataset from NumPy arrays: column ``data``, one row per first-axis element."""
    if isinstance(ndarrays, np.ndarray):
        ndarrays = [ndarrays]
    if not isinstance(ndarrays, (list, tuple)) or not all(isinstance(a, np.ndarray) for a in ndarrays):
        raise TypeError("from_numpy expects a numpy.ndarray or a list of them")
    tables = []
    for a in ndarrays:
        if a.ndim == 0:
            a = a.reshape(1)
        tables.append(pa.table({"data": B.column_to_arrow(a, "data")}))
    return _materialized(tables, "FromNumpy")


def from_arrow(tables, *, override_num_blocks: int | None = None) -> MaterializedDataset:
    """A dataset from one or more ``pyarrow.Table``s."""
    if isinstance(tables, (pa.Table, bytes)):
        tables = [tables]
    out = []
    for t in tables:
        if isinstance(t, bytes):
            t = pa.ipc.open_stream(t).read_all()
        if not isinstance(t, pa.Table):
            raise TypeError(f"from_arrow expects pyarrow.Table objects, got {type(t).__name__}")
        out.append(t)
    if override_num_blocks is not None:
        out = _split_table(B.concat(out), override_num_blocks)
    return _materialized(out, "FromArrow")


def _from_refs(refs, name: str) -> MaterializedDataset:
    import solray
    from solray.data._internal.tasks import generic_task

    if not isinstance(refs, (list, tuple)):
        refs = [refs]
    bundles = []
    pending = [generic_task.options(num_returns=2).remote(_w_normalize, r) for r in refs]
    for block_ref, meta_ref in pending:
        result = solray.get(meta_ref)
        bundles.append(RefBundle(block_ref, result.metas, owns_blocks=False))
    return MaterializedDataset(L.InputData(bundles, name=name))


def _w_normalize(value):
    from solray.data._internal.transforms import TaskResult

    if isinstance(value, np.ndarray):
        value = {"data": value}
    blocks = B.as_blocks(value)
    metas = [B.metadata_for(b) for b in blocks]
    return (blocks[0] if len(blocks) == 1 else blocks), TaskResult(metas)


def from_arrow_refs(tables) -> MaterializedDataset:
    return _from_refs(tables, "FromArrow")


def from_pandas_refs(dfs) -> MaterializedDataset:
    return _from_refs(dfs, "FromPandas")


def from_numpy_refs(ndarrays) -> MaterializedDataset:
    return _from_refs(ndarrays, "FromNumpy")


def from_blocks(blocks: list) -> MaterializedDataset:
    return _materialized([B.batch_to_block(b) for b in blocks], "FromBlocks")


def from_torch(dataset, local_read: bool = False) -> MaterializedDataset:
    """A dataset from a map-style ``torch.utils.data.Dataset``: one ``item`` per element."""
    try:
        n = len(dataset)
    except TypeError:
        items = list(iter(dataset))
    else:
        items = [dataset[i] for i in builtins.range(n)]
    return from_items(items)


# --- files ----------------------------------------------------------------------------------


def read_datasource(datasource, *, parallelism: int = -1, num_cpus=None, num_gpus=None, memory=None,
                    concurrency: int | None = None, override_num_blocks: int | None = None,
                    ray_remote_args: dict | None = None, **read_args) -> Dataset:
    """A lazy dataset read from a ``Datasource``."""
    if override_num_blocks is not None:
        if not isinstance(override_num_blocks, int) or override_num_blocks < 1:
            raise ValueError(f"override_num_blocks must be a positive int, got {override_num_blocks!r}")
        parallelism = override_num_blocks
    args = dict(ray_remote_args or {})
    for k, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus), ("memory", memory)):
        if v is not None:
            args[k] = v
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise ValueError(f"concurrency must be a positive int, got {concurrency!r}")
    return Dataset(L.Read(datasource, parallelism=parallelism, ray_remote_args=args, concurrency=concurrency))


def _file_read(ds_cls, paths, *, parallelism=-1, num_cpus=None, num_gpus=None, memory=None, concurrency=None,
               override_num_blocks=None, ray_remote_args=None, **kw) -> Dataset:
    kw = {k: v for k, v in kw.items() if k not in ("label_selector", "fallback_strategy", "max_calls",
                                                    "resources", "accelerator_type", "runtime_env")}
    datasource = ds_cls(paths, **kw)
    return read_datasource(datasource, parallelism=parallelism, num_cpus=num_cpus, num_gpus=num_gpus,
                           memory=memory, concurrency=concurrency, override_num_blocks=override_num_blocks,
                           ray_remote_args=ray_remote_args)


def read_parquet(paths, *, filesystem=None, columns: list[str] | None = None, filter=None,
                 parallelism: int = -1, num_cpus=None, num_gpus=None, memory=None, tensor_column_schema=None,
                 partition_filter=None, partitioning="hive", shuffle=None, include_paths: bool = False,
                 file_extensions=("parquet",), ignore_missing_paths: bool = False, concurrency=None,
                 override_num_blocks=None, ray_remote_args=None, **arrow_parquet_args) -> Dataset:
    """Parquet files or folders (hive partitions become columns). ``columns``/``filter`` push down."""
    from solray.data._internal.datasource.parquet import ParquetDatasource
    from solray.data._internal.expressions import parse_expression

    if columns is not None and (isinstance(columns, str) or not all(isinstance(c, str) for c in columns)):
        raise TypeError(f"read_parquet: columns must be a list of column names, got {columns!r}")
    if filter is not None:
        filter = parse_expression(filter)
    arrow_parquet_args.pop("schema", None)
    return _file_read(ParquetDatasource, paths, filesystem=filesystem, columns=columns, filter=filter,
                      partitioning=partitioning, include_paths=include_paths, file_extensions=file_extensions,
                      ignore_missing_paths=ignore_missing_paths, shuffle=shuffle,
                      tensor_column_schema=tensor_column_schema, parallelism=parallelism, num_cpus=num_cpus,
                      num_gpus=num_gpus, memory=memory, concurrency=concurrency,
                      override_num_blocks=override_num_blocks, ray_remote_args=ray_remote_args,
                      **arrow_parquet_args)


def read_csv(paths, *, filesystem=None, parallelism=-1, num_cpus=None, num_gpus=None, memory=None,
             arrow_open_stream_args=None, partition_filter=None, partitioning="hive", include_paths=False,
             ignore_missing_paths=False, shuffle=None, file_extensions=None, concurrency=None,
             override_num_blocks=None, ray_remote_args=None, **arrow_csv_args) -> Dataset:
    """CSV files or folders."""
    from solray.data._internal.datasource.formats import CSVDatasource

    return _file_read(CSVDatasource, paths, filesystem=filesystem, partitioning=partitioning,
                      include_paths=include_paths, ignore_missing_paths=ignore_missing_paths, shuffle=shuffle,
                      file_extensions=file_extensions, parallelism=parallelism, num_cpus=num_cpus,
                      num_gpus=num_gpus, memory=memory, concurrency=concurrency,
                      override_num_blocks=override_num_blocks, ray_remote_args=ray_remote_args, **arrow_csv_args)


def read_json(paths, *, lines: bool | None = None, filesystem=None, parallelism=-1, num_cpus=None, num_gpus=None,
              memory=None, arrow_open_stream_args=None, partition_filter=None, partitioning="hive",
              include_paths=False, ignore_missing_paths=False, shuffle=None, file_extensions="default",
              concurrency=None, override_num_blocks=None, ray_remote_args=None, **arrow_json_args) -> Dataset:
    """JSON-lines files (or files holding a JSON array of objects)."""
    from solray.data._internal.datasource.formats import JSONDatasource

    return _file_read(JSONDatasource, paths, lines=lines, filesystem=filesystem, partitioning=partitioning,
                      include_paths=include_paths, ignore_missing_paths=ignore_missing_paths, shuffle=shuffle,
                      file_extensions=file_extensions, parallelism=parallelism, num_cpus=num_cpus,
                      num_gpus=num_gpus, memory=memory, concurrency=concurrency,
                      override_num_blocks=override_num_blocks, ray_remote_args=ray_remote_args, **arrow_json_args)


def read_text(paths, *, encoding: str = "utf-8", drop_empty_lines: bool = True, filesystem=None,
              parallelism=-1, num_cpus=None, num_gpus=None, memory=None, arrow_open_stream_args=None,
              partition_filter=None, partitioning=None, include_paths=False, ignore_missing_paths=False,
              shuffle=None, file_extensions=None, concurrency=None, override_num_blocks=None,
              ray_remote_args=None) -> Dataset:
    """Text files: one row per line, column ``text``."""
    from solray.data._internal.datasource.formats import TextDatasource

    return _file_read(TextDatasource, paths, encoding=encoding, drop_empty_lines=drop_empty_lines,
                      filesystem=filesystem, partitioning=partitioning, include_paths=include_paths,
                      ignore_missing_paths=ignore_missing_paths, shuffle=shuffle, file_extensions=file_extensions,
                      parallelism=parallelism, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
                      concurrency=concurrency, override_num_blocks=override_num_blocks,
                      ray_remote_args=ray_remote_args)


def read_binary_files(paths, *, include_paths: bool = False, filesystem=None, parallelism=-1, num_cpus=None,
                      num_gpus=None, memory=None, arrow_open_stream_args=None, partition_filter=None,
                      partitioning=None, ignore_missing_paths=False, shuffle=None, file_extensions=None,
                      concurrency=None, override_num_blocks=None, ray_remote_args=None) -> Dataset:
    """Whole files as bytes: column ``bytes`` (and ``path`` with ``include_paths``)."""
    from solray.data._internal.datasource.formats import BinaryDatasource

    return _file_read(BinaryDatasource, paths, include_paths=include_paths, filesystem=filesystem,
                      partitioning=partitioning, ignore_missing_paths=ignore_missing_paths, shuffle=shuffle,
                      file_extensions=file_extensions, parallelism=parallelism, num_cpus=num_cpus,
                      num_gpus=num_gpus, memory=memory, concurrency=concurrency,
                      override_num_blocks=override_num_blocks, ray_remote_args=ray_remote_args)


def read_numpy(paths, *, filesystem=None, parallelism=-1, arrow_open_stream_args=None, partition_filter=None,
               partitioning=None, include_paths=False, ignore_missing_paths=False, shuffle=None,
               file_extensions="default", concurrency=None, override_num_blocks=None,
               allow_pickle: bool = False, **numpy_load_args) -> Dataset:
    """``.npy`` files: column ``data``, one row per first-axis element."""
    from solray.data._internal.datasource.formats import NumpyDatasource

    return _file_read(NumpyDatasource, paths, filesystem=filesystem, partitioning=partitioning,
                      include_paths=include_paths, ignore_missing_paths=ignore_missing_paths, shuffle=shuffle,
                      file_extensions=file_extensions, parallelism=parallelism, concurrency=concurrency,
                      override_num_blocks=override_num_blocks, allow_pickle=allow_pickle, **numpy_load_args)


def read_images(paths, *, filesystem=None, parallelism=-1, num_cpus=None, num_gpus=None, memory=None,
                arrow_open_file_args=None, partition_filter=None, partitioning=None, size=None, mode=None,
                include_paths=False, ignore_missing_paths=False, shuffle=None, file_extensions="default",
                concurrency=None, override_num_blocks=None, ray_remote_args=None) -> Dataset:
    """Image files decoded with Pillow: column ``image`` (H x W x C arrays)."""
    from solray.data._internal.datasource.formats import ImageDatasource

    if size is not None and (len(size) != 2 or not all(isinstance(d, int) and d > 0 for d in size)):
        raise ValueError(f"read_images: size must be (height, width), got {size!r}")
    return _file_read(ImageDatasource, paths, filesystem=filesystem, partitioning=partitioning, size=size,
                      mode=mode, include_paths=include_paths, ignore_missing_paths=ignore_missing_paths,
                      shuffle=shuffle, file_extensions=file_extensions, parallelism=parallelism,
                      num_cpus=num_cpus, num_gpus=num_gpus, memory=memory, concurrency=concurrency,
                      override_num_blocks=override_num_blocks, ray_remote_args=ray_remote_args)

