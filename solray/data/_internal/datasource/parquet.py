"""Parquet through ``pyarrow.dataset``: footers read once on the driver, row groups in tasks.

The driver learns the schema (with hive partition columns) and each file's row groups and
row counts, so ``count()`` and ``schema()`` need no task. Column selection and filters are
handed to Arrow's scanner inside each task, so only the needed columns and row groups are
decoded. When there are fewer files than the wanted parallelism, files split by row group.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.dataset as pds

from solray.data._internal.block import BlockMetadata
from solray.data._internal.datasource.file_based import group_by_size, resolve_paths
from solray.data.datasource import Datasource, ReadTask

_BATCH_ROWS = 128 * 1024


class ParquetDatasource(Datasource):
    def __init__(self, paths, *, filesystem=None, columns=None, filter=None, partitioning="hive",
                 include_paths=False, file_extensions=("parquet",), ignore_missing_paths=False,
                 shuffle=None, tensor_column_schema=None, **arrow_parquet_args):
        self._fs, files = resolve_paths(paths, filesystem, list(file_extensions) if file_extensions else None,
                                        ignore_missing_paths)
        self._files = [p for p, _, _ in files]
        self._sizes = {p: s for p, s, _ in files}
        base = files[0][2] if files else None
        if isinstance(paths, str) and self._fs.get_file_info(self._path_for_base(paths)).type == pa.fs.FileType.Directory:
            base = self._path_for_base(paths)
        self._base = base
        flavor = None
        if partitioning == "hive" or (partitioning is not None and getattr(partitioning, "style", None) == "hive"):
            flavor = "hive"
        self._flavor = flavor
        try:
            dataset = self._dataset(self._files)
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"read_parquet: cannot read Parquet metadata: {e}") from None
        self._schema = dataset.schema
        self._columns = list(columns) if columns is not None else None
        if self._columns is not None:
            missing = [c for c in self._columns if c not in self._schema.names]
            if missing:
                raise ValueError(
                    f"read_parquet: column(s) {missing} not found; the files have columns {self._schema.names}"
                )
        self._filter = filter
        self._include_paths = include_paths
        self._limit = None
        self._tensor_schema = tensor_column_schema
        self._arrow_args = arrow_parquet_args
        # Row groups per file, from the footers.
        self._units: list[tuple[str, list[int] | None, int, int]] = []
        self._rg_rows: dict[str, tuple[list[int], list[int]]] = {}
        self._part_exprs: dict[str, pds.Expression] = {}
        self._total_rows = 0
        for frag in dataset.get_fragments():
            md = frag.metadata
            rows = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
            sizes = [md.row_group(i).total_byte_size for i in range(md.num_row_groups)]
            self._units.append((frag.path, list(range(md.num_row_groups)), sum(rows), sum(sizes)))
            self._rg_rows[frag.path] = (rows, sizes)
            self._part_exprs[frag.path] = frag.partition_expression
            self._total_rows += sum(rows)
        if shuffle == "files":
            import random

            random.shuffle(self._units)

    def _path_for_base(self, p: str) -> str:
        if "://" in p:
            return p.split("://", 1)[1]
        return os.path.abspath(os.path.expanduser(p))

    def _dataset(self, files, schema=None):
        kwargs = {}
        if self._flavor == "hive" and self._base:
            kwargs["partitioning"] = "hive"
            kwargs["partition_base_dir"] = self._base
        return pds.dataset(files, schema=schema, format="parquet", filesystem=self._fs, **kwargs)

    def get_name(self) -> str:
        return "Parquet"

    def input_files(self) -> list[str]:
        return list(self._files)

    def _selected_fraction(self) -> float:
        if self._columns is None or not self._schema.names:
            return 1.0
        return max(0.05, len(self._columns) / len(self._schema.names))

    def estimate_inmemory_data_size(self) -> int | None:
        total = sum(u[3] for u in self._units)
        return int(total * self._selected_fraction()) or None

    def num_rows(self) -> int | None:
        if self._filter is not None:
            return None
        return self._total_rows if self._limit is None else min(self._limit, self._total_rows)

    def schema(self):
        schema = self._schema
        if self._columns is not None:
            schema = pa.schema([schema.field(c) for c in self._columns])
        if self._include_paths:
            schema = schema.append(pa.field("path", pa.string()))
        return schema

    # --- pushdown --------------------------------------------------------------------------
    def _copy(self) -> ParquetDatasource:
        import copy

        return copy.copy(self)

    def supports_projection_pushdown(self) -> bool:
        return True

    def apply_projection(self, columns) -> ParquetDatasource:
        new = self._copy()
        cols = [c for c in columns if c != "path" or not self._include_paths]
        new._columns = cols
        if self._include_paths and "path" not in columns:
            new._include_paths = False
        return new

    def supports_filter_pushdown(self) -> bool:
        return True

    def apply_filter(self, expr) -> ParquetDatasource:
        new = self._copy()
        new._filter = expr if self._filter is None else (self._filter & expr)
        return new

    def supports_limit_pushdown(self) -> bool:
        return True

    def apply_limit(self, limit: int) -> ParquetDatasource:
        new = self._copy()
        new._limit = limit if self._limit is None else min(limit, self._limit)
        return new

    # --- tasks -----------------------------------------------------------------------------
    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        units = list(self._units)
        if len(units) < parallelism:
            split = []
            for path, rgs, _, _ in units:
                rows, sizes = self._rg_rows[path]
                for rg in rgs:
                    split.append((path, [rg], rows[rg], sizes[rg]))
            units = split
        frac = self._selected_fraction()
        groups = group_by_size(units, [max(1, u[3]) for u in units], parallelism)
        tasks = []
        schema = self._schema
        for group in groups:
            rows = sum(u[2] for u in group)
            meta = BlockMetadata(
                num_rows=rows if self._filter is None else None,
                size_bytes=int(sum(u[3] for u in group) * frac),
                input_files=sorted({u[0] for u in group}),
            )
            spec = [(u[0], u[1]) for u in group]

            def read(spec=spec, reader=self, schema=schema):
                return reader._read_units(spec, schema)

            tasks.append(ReadTask(read, meta))
        return tasks

    def _read_units(self, spec, schema):
        limit = self._limit
        produced = 0
        fmt = pds.ParquetFileFormat()
        for path, rgs in spec:
            partition_expr = self._part_exprs.get(path)
            frag = fmt.make_fragment(path, filesystem=self._fs, partition_expression=partition_expr)
            if rgs is not None:
                frag = frag.subset(row_group_ids=rgs)
            ds = pds.FileSystemDataset([frag], schema=schema, format=fmt, filesystem=self._fs)
            columns = self._columns
            scanner = ds.scanner(columns=columns, filter=self._filter, batch_size=_BATCH_ROWS, use_threads=False)
            pending: list[pa.RecordBatch] = []
            pending_bytes = 0
            for batch in scanner.to_batches():
                if limit is not None and produced + batch.num_rows > limit:
                    batch = batch.slice(0, limit - produced)
                if batch.num_rows == 0 and limit is not None and produced >= limit:
                    break
                pending.append(batch)
                pending_bytes += batch.nbytes
                produced += batch.num_rows
                if pending_bytes >= 64 * 1024 * 1024:
                    yield self._finish(pa.Table.from_batches(pending), path)
                    pending, pending_bytes = [], 0
                if limit is not None and produced >= limit:
                    break
            if pending:
                yield self._finish(pa.Table.from_batches(pending), path)
            elif produced == 0:
                empty = schema if columns is None else pa.schema([schema.field(c) for c in columns])
                yield self._finish(empty.empty_table(), path)
            if limit is not None and produced >= limit:
                return

    def _finish(self, table: pa.Table, path: str) -> pa.Table:
        if self._include_paths:
            table = table.append_column("path", pa.array([path] * table.num_rows, type=pa.string()))
        return table
