"""File datasinks: Parquet, CSV, JSON lines and NumPy, one file per block.

Files are named ``{write_uuid}_{task_index:06}_{block_index:06}.{ext}`` (Ray's default) unless
a ``filename_provider`` is given. With ``min_rows_per_file``, a task merges consecutive blocks
until a file has at least that many rows.
"""

from __future__ import annotations

import enum
import json
import os
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from solray.data._internal import block as B
from solray.data._internal.datasource.file_based import _fs_for
from solray.data.datasource import Datasink


class SaveMode(str, enum.Enum):
    APPEND = "append"
    OVERWRITE = "overwrite"
    IGNORE = "ignore"
    ERROR = "error"


class FilenameProvider:
    """Names written files; override ``get_filename_for_block`` or ``get_filename_for_task``."""

    def __init__(self, file_format: str | None = None):
        self.file_format = file_format

    def get_filename_for_block(self, block, write_uuid: str, task_index: int, block_index: int) -> str:
        return f"{write_uuid}_{task_index:06}_{block_index:06}.{self.file_format}"

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        return f"{write_uuid}_{task_index:06}.{self.file_format}"


class FileDatasink(Datasink):
    file_format = "bin"

    def __init__(self, path: str, *, filesystem=None, try_create_dir: bool = True, filename_provider=None,
                 min_rows_per_file: int | None = None, mode=SaveMode.APPEND, open_stream_args=None,
                 **writer_args):
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path must be a string, got {type(path).__name__}")
        self.fs, self.path = _fs_for(os.fspath(path), filesystem)
        self.try_create_dir = try_create_dir
        self.filename_provider = filename_provider or FilenameProvider(self.file_format)
        if getattr(self.filename_provider, "file_format", None) is None:
            self.filename_provider.file_format = self.file_format
        self.min_rows_per_file = min_rows_per_file
        self.mode = SaveMode(mode.value if isinstance(mode, enum.Enum) else mode)
        self.writer_args = writer_args
        self.open_stream_args = open_stream_args or {}
        self.write_uuid = uuid.uuid4().hex[:16]
        self.skip = False

    def get_name(self) -> str:
        return type(self).__name__.replace("Datasink", "")

    def on_write_start(self) -> None:
        info = self.fs.get_file_info(self.path)
        exists = info.type != pafs.FileType.NotFound
        if exists and self.mode == SaveMode.ERROR:
            raise FileExistsError(f"{self.path} already exists (mode='error')")
        if exists and self.mode == SaveMode.IGNORE:
            self.skip = True
            return
        if exists and self.mode == SaveMode.OVERWRITE:
            if info.type == pafs.FileType.Directory:
                self.fs.delete_dir_contents(self.path)
            else:
                self.fs.delete_file(self.path)
        if self.try_create_dir:
            self.fs.create_dir(self.path, recursive=True)

    def _groups(self, blocks):
        if not self.min_rows_per_file:
            for b in blocks:
                if b.num_rows:
                    yield b
            return
        pending, rows = [], 0
        for b in blocks:
            if not b.num_rows:
                continue
            pending.append(b)
            rows += b.num_rows
            if rows >= self.min_rows_per_file:
                yield B.concat(pending)
                pending, rows = [], 0
        if pending:
            yield B.concat(pending)

    def write(self, blocks, ctx) -> list[str]:
        written = []
        if self.skip:
            for _ in blocks:
                pass
            return written
        for i, table in enumerate(self._groups(blocks)):
            name = self.filename_provider.get_filename_for_block(table, self.write_uuid, ctx.task_idx, i)
            full = f"{self.path.rstrip('/')}/{name}"
            with self.fs.open_output_stream(full, **self.open_stream_args) as f:
                self.write_block(table, f)
            written.append(full)
        return written

    def write_block(self, table: pa.Table, f) -> None:
        raise NotImplementedError


class ParquetDatasink(FileDatasink):
    """Parquet files; with ``partition_cols``, Hive-style folders ``col=value/`` per distinct
    combination of those columns (which the files then leave out, as pyarrow's datasets do)."""

    file_format = "parquet"

    def __init__(self, path: str, *, partition_cols: list[str] | None = None, **kwargs):
        super().__init__(path, **kwargs)
        if isinstance(partition_cols, str):
            partition_cols = [partition_cols]
        self.partition_cols = list(partition_cols or ())

    def write(self, blocks, ctx) -> list[str]:
        if not self.partition_cols or self.skip:
            return super().write(blocks, ctx)
        import pyarrow.compute as pc

        written = []
        for i, table in enumerate(self._groups(blocks)):
            missing = [c for c in self.partition_cols if c not in table.column_names]
            if missing:
                raise ValueError(f"write_parquet(partition_cols=...): no column(s) {missing} in {table.column_names}")
            keys = table.select(self.partition_cols).group_by(self.partition_cols).aggregate([])
            for key in keys.to_pylist():
                mask = None
                for col, value in key.items():
                    match = pc.is_null(table[col]) if value is None else pc.equal(table[col], value)
                    mask = match if mask is None else pc.and_(mask, match)
                part = table.filter(mask).drop_columns(self.partition_cols)
                folder = "/".join(f"{c}={_partition_value(key[c])}" for c in self.partition_cols)
                name = self.filename_provider.get_filename_for_block(part, self.write_uuid, ctx.task_idx, i)
                full = f"{self.path.rstrip('/')}/{folder}/{name}"
                self.fs.create_dir(f"{self.path.rstrip('/')}/{folder}", recursive=True)
                with self.fs.open_output_stream(full, **self.open_stream_args) as f:
                    self.write_block(part, f)
                written.append(full)
        return written

    def write_block(self, table, f):
        import pyarrow.parquet as pq

        args = dict(self.writer_args)
        fn = args.pop("arrow_parquet_args_fn", None)
        if fn is not None:
            args.update(fn())
        pq.write_table(table, f, **args)


def _partition_value(value) -> str:
    """A folder-safe rendering of a partition value (Hive's default name for nulls)."""
    if value is None:
        return "__HIVE_DEFAULT_PARTITION__"
    from urllib.parse import quote

    return quote(str(value), safe="")


class CSVDatasink(FileDatasink):
    file_format = "csv"

    def write_block(self, table, f):
        from pyarrow import csv

        args = dict(self.writer_args)
        fn = args.pop("arrow_csv_args_fn", None)
        if fn is not None:
            args.update(fn())
        csv.write_csv(table, f, **args)


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return v


class JSONDatasink(FileDatasink):
    file_format = "json"

    def write_block(self, table, f):
        args = dict(self.writer_args)
        fn = args.pop("pandas_json_args_fn", None)
        if fn is not None:
            args.update(fn())
        if args:
            df = B.block_to_pandas(table)
            args.setdefault("orient", "records")
            args.setdefault("lines", True)
            f.write(df.to_json(**args).encode())
            return
        lines = []
        for row in B.iter_rows(table):
            lines.append(json.dumps({k: _jsonable(v) for k, v in row.items()}, default=str))
        f.write(("\n".join(lines) + "\n").encode())


class NumpyDatasink(FileDatasink):
    file_format = "npy"

    def __init__(self, path, column: str, **kw):
        super().__init__(path, **kw)
        self.column = column

    def write_block(self, table, f):
        import io

        if self.column not in table.column_names:
            raise ValueError(f"write_numpy: column {self.column!r} not found; the dataset has {table.column_names}")
        arr = B.column_to_numpy(table.column(self.column))
        if arr.dtype == object:
            arr = np.stack(list(arr))
        buf = io.BytesIO()
        np.save(buf, arr)
        f.write(buf.getvalue())
