"""``Dataset``: a lazy, distributed table of rows (Ray's ``ray.data.Dataset``).

Transforms return a new ``Dataset`` wrapping a bigger logical plan; nothing runs until a
consumption API (iteration, ``take``, ``count``, ``write_*``, ``materialize``...) executes the
plan with the streaming executor. A ``MaterializedDataset`` holds already computed blocks.
"""

from __future__ import annotations

import inspect
import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from solray.data import aggregate as A
from solray.data._internal import block as B
from solray.data._internal import logical as L
from solray.data._internal.arguments import as_list, check_fn, remote_args, resolve_compute
from solray.data._internal.builtin_udfs import AddColumn, Sampler, stratified_split
from solray.data._internal.ref_bundle import RefBundle
from solray.data.compute import TaskPoolStrategy
from solray.data.context import DataContext
from solray.data.iterator import DataIterator, DatasetIterator
from solray.data.schema import Schema

_ids = itertools.count()


class Dataset:
    """A lazily computed, distributed dataset of rows stored as Arrow blocks."""

    def __init__(self, logical_op: L.LogicalOp, *, name: str | None = None):
        self._op = logical_op
        self._name = name
        self._uuid = f"dataset_{next(_ids)}_{uuid.uuid4().hex[:8]}"
        self._last_stats = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_last_stats"] = None  # stats stay with the process that ran the dataset
        return state

    # ------------------------------------------------------------------------------------
    # Plumbing

    def _derive(self, op: L.LogicalOp) -> Dataset:
        return Dataset(op)

    def _execute(self, op: L.LogicalOp | None = None, *, record_stats: bool = True) -> Iterator[RefBundle]:
        """Run ``op`` (default: this dataset's plan) and stream its output bundles."""
        from solray.data._internal.executor import StreamingExecutor
        from solray.data._internal.optimizer import optimize
        from solray.data._internal.planner import Planner
        from solray.data._internal.runtime import Runtime

        op = op or self._op
        ctx = DataContext.get_current()
        runtime = Runtime(ctx.scheduling_strategy)
        physical = Planner(ctx, runtime.total_cpus).plan(optimize(op))
        executor = StreamingExecutor(physical, ctx, runtime, dataset_name=self._name or self._uuid)
        if record_stats:
            self._last_stats = executor.stats
        yield from executor.run()

    def _iter_bundles(self) -> Iterator[RefBundle]:
        return self._execute()

    def _iter_tables(self, op: L.LogicalOp | None = None) -> Iterator[pa.Table]:
        import solray

        for bundle in self._execute(op):
            yield from B.as_blocks(solray.get(bundle.ref))

    def _validate_udf_kwargs(self, api, fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs):
        check_fn(fn, api)
        if not inspect.isclass(fn) and (fn_constructor_args or fn_constructor_kwargs):
            raise ValueError(f"{api}: fn_constructor_args/fn_constructor_kwargs need a callable class")
        if fn_args is not None and not isinstance(fn_args, (list, tuple)):
            raise TypeError(f"{api}: fn_args must be a list or tuple, got {type(fn_args).__name__}")
        if fn_kwargs is not None and not isinstance(fn_kwargs, dict):
            raise TypeError(f"{api}: fn_kwargs must be a dict, got {type(fn_kwargs).__name__}")

    # ------------------------------------------------------------------------------------
    # Transforms (lazy)

    def map_batches(self, fn, *, batch_size: int | None | str = None, compute=None,
                    batch_format: str | None = "default", zero_copy_batch: bool = True, fn_args=None,
                    fn_kwargs=None, fn_constructor_args=None, fn_constructor_kwargs=None,
                    num_cpus=None, num_gpus=None, memory=None, concurrency=None,
                    udf_modifying_row_count: bool = True, ray_remote_args_fn=None,
                    **ray_remote_args) -> Dataset:
        """Apply ``fn`` to batches (dict of NumPy arrays by default) in parallel tasks or actors."""
        api = "map_batches"
        self._validate_udf_kwargs(api, fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs)
        B.validate_batch_format(batch_format)
        if batch_size == "default":
            batch_size = 1024
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ValueError(f"{api}: batch_size must be a positive int or None, got {batch_size!r}")
        if num_gpus and batch_size is None:
            batch_size = None
        compute = resolve_compute(fn, compute, concurrency, api)
        op = L.MapBatches(
            self._op, fn, batch_size=batch_size, batch_format=batch_format, zero_copy_batch=zero_copy_batch,
            fn_args=fn_args, fn_kwargs=fn_kwargs, fn_constructor_args=fn_constructor_args,
            fn_constructor_kwargs=fn_constructor_kwargs, compute=compute,
            ray_remote_args=remote_args(num_cpus, num_gpus, memory, ray_remote_args, api),
            ray_remote_args_fn=ray_remote_args_fn,
        )
        return self._derive(op)

    def _row_udf(self, cls, api, fn, compute, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs,
                 num_cpus, num_gpus, memory, concurrency, ray_remote_args_fn, ray_remote_args):
        self._validate_udf_kwargs(api, fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs)
        compute = resolve_compute(fn, compute, concurrency, api)
        op = cls(self._op, fn, fn_args=fn_args, fn_kwargs=fn_kwargs, fn_constructor_args=fn_constructor_args,
                 fn_constructor_kwargs=fn_constructor_kwargs, compute=compute,
                 ray_remote_args=remote_args(num_cpus, num_gpus, memory, ray_remote_args, api),
                 ray_remote_args_fn=ray_remote_args_fn)
        return self._derive(op)

    def map(self, fn, *, compute=None, fn_args=None, fn_kwargs=None, fn_constructor_args=None,
            fn_constructor_kwargs=None, num_cpus=None, num_gpus=None, memory=None, concurrency=None,
            ray_remote_args_fn=None, **ray_remote_args) -> Dataset:
        """Apply ``fn(row: dict) -> dict`` to each row."""
        return self._row_udf(L.MapRows, "map", fn, compute, fn_args, fn_kwargs, fn_constructor_args,
                             fn_constructor_kwargs, num_cpus, num_gpus, memory, concurrency,
                             ray_remote_args_fn, ray_remote_args)

    def flat_map(self, fn, *, compute=None, fn_args=None, fn_kwargs=None, fn_constructor_args=None,
                 fn_constructor_kwargs=None, num_cpus=None, num_gpus=None, memory=None, concurrency=None,
                 ray_remote_args_fn=None, **ray_remote_args) -> Dataset:
        """Apply ``fn(row) -> list[dict]`` to each row and flatten the results."""
        return self._row_udf(L.FlatMap, "flat_map", fn, compute, fn_args, fn_kwargs, fn_constructor_args,
                             fn_constructor_kwargs, num_cpus, num_gpus, memory, concurrency,
                             ray_remote_args_fn, ray_remote_args)

    def filter(self, fn=None, expr=None, *, compute=None, fn_args=None, fn_kwargs=None,
               fn_constructor_args=None, fn_constructor_kwargs=None, num_cpus=None, num_gpus=None,
               memory=None, concurrency=None, ray_remote_args_fn=None, **ray_remote_args) -> Dataset:
        """Keep rows where ``fn(row)`` is true, or where the expression ``expr`` holds.

        ``expr`` is a string such as ``"score > 0.5 and label == 'cat'"`` (or a
        ``pyarrow.compute.Expression``); expression filters run vectorised in Arrow and are
        pushed into Parquet reads.
        """
        api = "filter"
        if (fn is None) == (expr is None):
            raise ValueError("filter: pass exactly one of fn or expr")
        if expr is not None:
            from solray.data._internal.expressions import parse_expression

            text = expr if isinstance(expr, str) else None
            pexpr = parse_expression(expr)
            op = L.Filter(self._op, expr=pexpr, expr_text=text, compute=resolve_compute(None, compute, concurrency, api),
                          ray_remote_args=remote_args(num_cpus, num_gpus, memory, ray_remote_args, api))
            return self._derive(op)
        self._validate_udf_kwargs(api, fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs)
        compute = resolve_compute(fn, compute, concurrency, api)
        op = L.Filter(self._op, fn=fn, fn_args=fn_args, fn_kwargs=fn_kwargs,
                      fn_constructor_args=fn_constructor_args, fn_constructor_kwargs=fn_constructor_kwargs,
                      compute=compute, ray_remote_args=remote_args(num_cpus, num_gpus, memory, ray_remote_args, api),
                      ray_remote_args_fn=ray_remote_args_fn)
        return self._derive(op)

    def add_column(self, col: str, fn: Callable, *, batch_format: str | None = "pandas", compute=None,
                   concurrency=None, num_cpus=None, num_gpus=None, memory=None, **ray_remote_args) -> Dataset:
        """Add (or replace) column ``col`` computed as ``fn(batch)``."""
        if not isinstance(col, str):
            raise TypeError(f"add_column: col must be a string, got {type(col).__name__}")
        check_fn(fn, "add_column")
        B.validate_batch_format(batch_format)
        op = L.MapBatches(self._op, AddColumn(col, fn), batch_format=batch_format, zero_copy_batch=False,
                          compute=resolve_compute(None, compute, concurrency, "add_column"),
                          ray_remote_args=remote_args(num_cpus, num_gpus, memory, ray_remote_args, "add_column"),
                          name="MapBatches(add_column)")
        return self._derive(op)

    def drop_columns(self, cols: list[str], *, compute=None, concurrency=None, num_cpus=None, num_gpus=None,
                     memory=None, **ray_remote_args) -> Dataset:
        """Remove the given columns."""
        cols = as_list(cols, "drop_columns: cols")
        if len(set(cols)) != len(cols):
            raise ValueError(f"drop_columns: duplicate column names in {cols}")
        return self._derive(L.Project(self._op, drop=cols, compute=compute,
                                      ray_remote_args=remote_args(num_cpus, num_gpus, memory, ray_remote_args,
                                                                   "drop_columns")))

    def select_columns(self, cols, *, compute=None, concurrency=None, num_cpus=None, num_gpus=None,
                       memory=None, **ray_remote_args) -> Dataset:
        """Keep only the given columns, in the given order."""
        cols = as_list(cols, "select_columns: cols")
        if len(set(cols)) != len(cols):
            raise ValueError(f"select_columns: duplicate column names in {cols}")
        return self._derive(L.Project(self._op, select=cols, compute=compute,
                                      ray_remote_args=remote_args(num_cpus, num_gpus, memory, ray_remote_args,
                                                                   "select_columns")))

    def rename_columns(self, names, *, concurrency=None, num_cpus=None, num_gpus=None, memory=None,
                       **ray_remote_args) -> Dataset:
        """Rename columns: a dict of old -> new, or a list of new names for every column."""
        if isinstance(names, dict):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in names.items()):
                raise TypeError("rename_columns: the mapping must be str -> str")
            if len(set(names.values())) != len(names):
                raise ValueError(f"rename_columns: new names must be unique, got {list(names.values())}")
            rename: Any = dict(names)
        elif isinstance(names, (list, tuple)):
            if not all(isinstance(n, str) for n in names):
                raise TypeError("rename_columns: new names must be strings")
            rename = list(names)
        else:
            raise TypeError(f"rename_columns: names must be a dict or a list, got {type(names).__name__}")
        return self._derive(L.Project(self._op, rename=rename,
                                      ray_remote_args=remote_args(num_cpus, num_gpus, memory, ray_remote_args,
                                                                   "rename_columns")))

    def limit(self, limit: int) -> Dataset:
        """The first ``limit`` rows."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a non-negative int, got {limit!r}")
        return self._derive(L.Limit(self._op, limit))

    def random_shuffle(self, *, seed: int | None = None, num_blocks: int | None = None,
                       **ray_remote_args) -> Dataset:
        """Shuffle all rows across blocks (a full map/reduce shuffle)."""
        if num_blocks is not None and (not isinstance(num_blocks, int) or num_blocks < 1):
            raise ValueError(f"random_shuffle: num_blocks must be a positive int, got {num_blocks!r}")
        return self._derive(L.RandomShuffle(self._op, seed=seed, num_blocks=num_blocks,
                                            ray_remote_args=ray_remote_args))

    def randomize_block_order(self, *, seed: int | None = None) -> Dataset:
        """Shuffle the order of blocks (cheap: no data moves)."""
        return self._derive(L.RandomizeBlockOrder(self._op, seed=seed))

    def random_sample(self, fraction: float, *, seed: int | None = None) -> Dataset:
        """Keep each row with probability ``fraction``."""
        if not 0 <= fraction <= 1:
            raise ValueError(f"random_sample: fraction must be in [0, 1], got {fraction}")
        return self.map_batches(Sampler(fraction, seed), batch_format="pyarrow")

    def repartition(self, num_blocks: int | None = None, target_num_rows_per_block: int | None = None, *,
                    strict: bool = False, shuffle: bool = False, keys=None, sort: bool = False) -> Dataset:
        """Redistribute rows into ``num_blocks`` blocks of (nearly) equal size, keeping order."""
        if (num_blocks is None) == (target_num_rows_per_block is None):
            raise ValueError("repartition: pass exactly one of num_blocks or target_num_rows_per_block")
        for name, v in (("num_blocks", num_blocks), ("target_num_rows_per_block", target_num_rows_per_block)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"repartition: {name} must be a positive int, got {v!r}")
        if shuffle and num_blocks is None:
            raise ValueError("repartition: shuffle=True needs num_blocks")
        return self._derive(L.Repartition(self._op, num_blocks, shuffle=shuffle,
                                          target_num_rows_per_block=target_num_rows_per_block))

    def sort(self, key, descending=False, boundaries=None) -> Dataset:
        """Sort by one or more columns (``descending`` per key or for all)."""
        keys = as_list(key, "sort: key")
        if not keys:
            raise ValueError("sort: key must name at least one column")
        if isinstance(descending, bool):
            desc = [descending] * len(keys)
        elif isinstance(descending, (list, tuple)) and len(descending) == len(keys):
            desc = [bool(d) for d in descending]
        else:
            raise ValueError(f"sort: descending must be a bool or a list of {len(keys)} bools, got {descending!r}")
        return self._derive(L.Sort(self._op, keys, desc, boundaries))

    def groupby(self, key, num_partitions: int | None = None):
        """Group rows by one or more key columns (``None``: the whole dataset is one group)."""
        from solray.data.grouped_data import GroupedData

        keys = None if key is None else as_list(key, "groupby: key")
        return GroupedData(self, keys, num_partitions)

    def union(self, *other: Dataset) -> Dataset:
        """Concatenate datasets' rows (this one's first)."""
        for o in other:
            if not isinstance(o, Dataset):
                raise TypeError(f"union: expected Datasets, got {type(o).__name__}")
        if not other:
            return self
        return self._derive(L.Union([self._op] + [o._op for o in other]))

    def zip(self, *other: Dataset) -> Dataset:
        """Combine datasets column-wise, row by row (they must have the same number of rows).

        Duplicate column names get a suffix (``id`` -> ``id_1``).
        """
        for o in other:
            if not isinstance(o, Dataset):
                raise TypeError(f"zip: expected Datasets, got {type(o).__name__}")
        if not other:
            return self
        return self._derive(L.Zip([self._op] + [o._op for o in other]))

    # ------------------------------------------------------------------------------------
    # Splits

    def split(self, n: int, *, equal: bool = False, locality_hints=None) -> list[MaterializedDataset]:
        """Materialize and split into ``n`` datasets (``equal``: same row count each, may drop rows)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"split: n must be a positive int, got {n!r}")
        if locality_hints is not None and len(locality_hints) != n:
            raise ValueError("split: locality_hints must have n entries")
        mat = self.materialize()
        bundles = mat._bundles()
        if equal:
            total = mat.count()
            per = total // n
            return mat.split_at_indices([per * (i + 1) for i in range(n)])[:n]
        # Balance by rows, keeping bundles whole and in order where possible.
        out: list[list[RefBundle]] = [[] for _ in range(n)]
        rows = [0] * n
        for b in sorted(bundles, key=lambda b: -b.num_rows):
            i = rows.index(min(rows))
            out[i].append(b)
            rows[i] += b.num_rows
        order = {id(b): k for k, b in enumerate(bundles)}
        return [MaterializedDataset(L.InputData(sorted(bs, key=lambda b: order[id(b)]))) for bs in out]

    def split_at_indices(self, indices: list[int]) -> list[MaterializedDataset]:
        """Materialize and split at the given global row indices."""
        if not isinstance(indices, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                             for i in indices):
            raise TypeError("split_at_indices: indices must be a list of ints")
        if any(i < 0 for i in indices):
            raise ValueError(f"split_at_indices: indices must be non-negative, got {indices}")
        if list(indices) != sorted(indices):
            raise ValueError(f"split_at_indices: indices must be sorted, got {indices}")
        from solray.data._internal.split import split_bundles_at

        mat = self.materialize()
        return [MaterializedDataset(L.InputData(bs)) for bs in split_bundles_at(mat._bundles(), list(indices))]

    def split_proportionately(self, proportions: list[float]) -> list[MaterializedDataset]:
        """Split into ``len(proportions) + 1`` datasets; the last takes the remainder."""
        if not proportions or any(p <= 0 for p in proportions) or sum(proportions) >= 1:
            raise ValueError("split_proportionately: proportions must be positive and sum to less than 1")
        mat = self.materialize()
        total = mat.count()
        indices, acc = [], 0.0
        for p in proportions:
            acc += p
            indices.append(int(total * acc))
        return mat.split_at_indices(indices)

    def train_test_split(self, test_size: int | float, *, shuffle: bool = False, seed: int | None = None,
                         stratify: str | None = None) -> tuple[MaterializedDataset, MaterializedDataset]:
        """Split into (train, test); ``test_size`` is a fraction in (0, 1) or a row count."""
        if isinstance(test_size, bool) or not isinstance(test_size, (int, float)):
            raise TypeError(f"train_test_split: test_size must be a float or int, got {test_size!r}")
        if isinstance(test_size, float) and not 0 < test_size < 1:
            raise ValueError(f"train_test_split: test_size as a float must be in (0, 1), got {test_size}")
        if isinstance(test_size, int) and test_size <= 0:
            raise ValueError(f"train_test_split: test_size as an int must be positive, got {test_size}")
        ds = self.random_shuffle(seed=seed) if shuffle else self
        if stratify is not None:
            return stratified_split(ds, test_size, stratify)
        mat = ds.materialize()
        total = mat.count()
        n_test = int(test_size) if isinstance(test_size, int) else int(total * test_size)
        if n_test > total:
            raise ValueError(f"train_test_split: test_size={test_size} exceeds the dataset's {total} rows")
        train, test = mat.split_at_indices([total - n_test])
        return train, test

    def streaming_split(self, n: int, *, equal: bool = False, locality_hints=None) -> list[DataIterator]:
        """``n`` iterators that share one streaming execution (e.g. one per Train worker).

        ``locality_hints``: one node id per split; each split then gets, where it can, the
        blocks already on its node (when ``equal=False``)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"streaming_split: n must be a positive int, got {n!r}")
        from solray.data._internal.split import make_streaming_split

        return make_streaming_split(self, n, equal, locality_hints)

    # ------------------------------------------------------------------------------------
    # Consumption

    def iterator(self) -> DataIterator:
        return DatasetIterator(self)

    def iter_batches(self, *, prefetch_batches: int = 1, batch_size: int | None = 256,
                     batch_format: str | None = "default", drop_last: bool = False,
                     local_shuffle_buffer_size: int | None = None, local_shuffle_seed: int | None = None,
                     _collate_fn=None) -> Iterator[Any]:
        """Iterate over batches (executes the dataset, streaming)."""
        return self.iterator().iter_batches(
            prefetch_batches=prefetch_batches, batch_size=batch_size, batch_format=batch_format,
            drop_last=drop_last, local_shuffle_buffer_size=local_shuffle_buffer_size,
            local_shuffle_seed=local_shuffle_seed, _collate_fn=_collate_fn,
        )

    def iter_torch_batches(self, *, prefetch_batches: int = 1, batch_size: int | None = 256, dtypes=None,
                           device="auto", collate_fn=None, drop_last: bool = False,
                           local_shuffle_buffer_size: int | None = None, local_shuffle_seed: int | None = None,
                           pin_memory: bool = False) -> Iterator[Any]:
        """Iterate over batches of ``torch.Tensor``s (needs PyTorch)."""
        return self.iterator().iter_torch_batches(
            prefetch_batches=prefetch_batches, batch_size=batch_size, dtypes=dtypes, device=device,
            collate_fn=collate_fn, drop_last=drop_last, local_shuffle_buffer_size=local_shuffle_buffer_size,
            local_shuffle_seed=local_shuffle_seed, pin_memory=pin_memory,
        )

    def iter_rows(self) -> Iterator[dict]:
        """Iterate over rows as dicts."""
        for table in self._iter_tables():
            yield from B.iter_rows(table)

    def take(self, limit: int = 20) -> list[dict]:
        """The first ``limit`` rows."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"take: limit must be a non-negative int, got {limit!r}")
        rows: list[dict] = []
        if limit == 0:
            return rows
        for table in self._iter_tables(L.Limit(self._op, limit)):
            for row in B.iter_rows(table):
                rows.append(row)
                if len(rows) >= limit:
                    return rows
        return rows

    def take_batch(self, batch_size: int = 20, *, batch_format: str | None = "default"):
        """The first ``batch_size`` rows as one batch."""
        B.validate_batch_format(batch_format)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"take_batch: batch_size must be a positive int, got {batch_size!r}")
        tables = list(self._iter_tables(L.Limit(self._op, batch_size)))
        if not tables:
            raise ValueError("The dataset is empty.")
        table = B.concat(tables)
        return B.block_to_batch(table.slice(0, batch_size), batch_format)

    def take_all(self, limit: int | None = None) -> list[dict]:
        """Every row (``limit``: raise if there are more than this many)."""
        rows: list[dict] = []
        for table in self._iter_tables():
            for row in B.iter_rows(table):
                rows.append(row)
                if limit is not None and len(rows) > limit:
                    raise ValueError(f"The dataset has more than the given limit of {limit} records.")
        return rows

    def show(self, limit: int = 20) -> None:
        """Print the first ``limit`` rows."""
        for row in self.take(limit):
            print(row)

    def count(self) -> int:
        """Number of rows; from metadata alone when the plan allows, else by executing."""
        n = L.exact_num_rows(self._op)
        if n is not None:
            return n
        from solray.data._internal.optimizer import optimize

        n = L.exact_num_rows(optimize(self._op))
        if n is not None:
            return n
        return sum(b.num_rows for b in self._execute())

    def schema(self, fetch_if_missing: bool = True) -> Schema | None:
        """Column names and types (executes a little of the plan if they aren't known)."""
        s = L.known_schema(self._op)
        if s is None and fetch_if_missing:
            for bundle in self._execute(L.Limit(self._op, 1), record_stats=False):
                s = bundle.schema
                if s is not None:
                    break
            if s is None:
                # Every block was empty: take the schema of an empty output if there was one.
                s = self._empty_schema()
        return Schema(s) if s is not None else None

    def _empty_schema(self):
        stats = self._last_stats
        if stats is not None:
            for op in stats.ops:
                if op.empty_schema is not None:
                    return op.empty_schema
        return None

    def columns(self, fetch_if_missing: bool = True) -> list[str] | None:
        s = self.schema(fetch_if_missing=fetch_if_missing)
        return s.names if s is not None else None

    def num_blocks(self) -> int:
        """Number of blocks (executes a lazy dataset)."""
        return sum(b.num_blocks for b in self._execute())

    def size_bytes(self) -> int:
        """In-memory size of the data (executes a lazy dataset)."""
        return sum(b.size_bytes for b in self._execute())

    def input_files(self) -> list[str]:
        files: list[str] = []
        for op in L.walk(self._op):
            if isinstance(op, L.Read):
                files.extend(op.datasource.input_files())
            elif isinstance(op, L.InputData):
                for b in op.bundles:
                    files.extend(b.input_files())
        return list(dict.fromkeys(files))

    def to_pandas(self, limit: int | None = None):
        """All rows as one pandas DataFrame (``limit``: raise if there are more rows)."""
        import pandas as pd

        tables = []
        rows = 0
        for t in self._iter_tables():
            tables.append(t)
            rows += t.num_rows
            if limit is not None and rows > limit:
                raise ValueError(f"the dataset has more than the given limit of {limit} rows; "
                                 "raise the limit or call limit() first")
        if not tables:
            return pd.DataFrame()
        return B.block_to_pandas(B.concat(tables))

    def to_arrow(self) -> pa.Table:
        return B.concat(list(self._iter_tables()))

    def to_arrow_refs(self) -> list:
        """ObjectRefs of each block as a ``pyarrow.Table``."""
        from solray.data._internal.split import unpack_bundle

        refs = []
        for b in self._execute():
            refs.extend(unpack_bundle(b, "pyarrow"))
        return refs

    def to_pandas_refs(self) -> list:
        from solray.data._internal.split import unpack_bundle

        refs = []
        for b in self._execute():
            refs.extend(unpack_bundle(b, "pandas"))
        return refs

    def to_numpy_refs(self, *, column: str | None = None) -> list:
        from solray.data._internal.split import unpack_bundle

        refs = []
        for b in self._execute():
            refs.extend(unpack_bundle(b, "numpy", column=column))
        return refs

    def get_internal_block_refs(self) -> list:
        return self.to_arrow_refs()

    def materialize(self) -> MaterializedDataset:
        """Execute and keep every block in the object store."""
        bundles = [RefBundle(b.ref, b.metas, owns_blocks=False) for b in self._execute()]
        mat = MaterializedDataset(L.InputData(bundles, name="InputData"))
        mat._last_stats = self._last_stats
        mat._empty = self._empty_schema()
        return mat

    def stats(self) -> str:
        """Execution statistics of the last run of this dataset ('' if it has not run)."""
        if self._last_stats is None:
            return ""
        return self._last_stats.to_summary_string()

    # --- aggregations (execute) ----------------------------------------------------------
    def aggregate(self, *aggs: A.AggregateFn) -> dict:
        """Aggregate the whole dataset: ``{agg name: value}``."""
        if not aggs:
            raise ValueError("aggregate: pass at least one AggregateFn")
        for a in aggs:
            if not isinstance(a, A.AggregateFn):
                raise TypeError(f"aggregate: expected AggregateFn instances, got {type(a).__name__}")
        tables = list(self._iter_tables(L.Aggregate(self._op, None, list(aggs))))
        table = B.concat(tables)
        if table.num_rows == 0:
            return {a.name: None for a in aggs}
        return next(B.iter_rows(table.slice(0, 1)))

    def _simple_agg(self, cls, on, **kw):
        if on is None:
            schema = self.schema()
            on = [n for n, t in zip(schema.names, schema.types, strict=True)
                  if pa.types.is_integer(t) or pa.types.is_floating(t)] if schema else []
        single = isinstance(on, str)
        cols = [on] if single else list(on)
        result = self.aggregate(*[cls(c, **kw) for c in cols])
        if single:
            return next(iter(result.values()))
        return result

    def sum(self, on=None, ignore_nulls: bool = True):
        return self._simple_agg(A.Sum, on, ignore_nulls=ignore_nulls)

    def min(self, on=None, ignore_nulls: bool = True):
        return self._simple_agg(A.Min, on, ignore_nulls=ignore_nulls)

    def max(self, on=None, ignore_nulls: bool = True):
        return self._simple_agg(A.Max, on, ignore_nulls=ignore_nulls)

    def mean(self, on=None, ignore_nulls: bool = True):
        return self._simple_agg(A.Mean, on, ignore_nulls=ignore_nulls)

    def std(self, on=None, ddof: int = 1, ignore_nulls: bool = True):
        return self._simple_agg(A.Std, on, ddof=ddof, ignore_nulls=ignore_nulls)

    def unique(self, column: str, ignore_nulls: bool = False) -> list:
        """Distinct values of ``column``."""
        if not isinstance(column, str):
            raise TypeError(f"unique: column must be a string, got {type(column).__name__}")
        ds = self.select_columns([column]).groupby(column).count()
        values = [r[column] for r in ds.take_all()]
        if ignore_nulls:
            values = [v for v in values if v is not None]
        return values

    # --- writes (execute) ------------------------------------------------------------------
    def write_datasink(self, datasink, *, ray_remote_args: dict | None = None, concurrency: int | None = None,
                       _min_rows_per_bundle: int | None = None) -> None:
        """Write every block through ``datasink`` (runs the dataset)."""
        from solray.data.datasource import WriteResult

        datasink.on_write_start()
        op = L.Write(self._op, datasink, ray_remote_args=ray_remote_args or {},
                     compute=TaskPoolStrategy(size=concurrency) if concurrency else None,
                     min_rows_per_bundle=_min_rows_per_bundle)
        results, rows, size = [], 0, 0
        try:
            for table in self._iter_tables(op):
                for row in B.iter_rows(table):
                    results.append(row["write_result"])
                    rows += row["num_rows"]
                    size += row["size_bytes"]
        except Exception as e:
            datasink.on_write_failed(e)
            raise
        datasink.on_write_complete(WriteResult(rows, size, results))

    def _write_files(self, sink_cls, path, *, ray_remote_args=None, concurrency=None, min_rows_per_file=None,
                     num_rows_per_file=None, **kw) -> None:
        min_rows = min_rows_per_file or num_rows_per_file
        sink = sink_cls(path, min_rows_per_file=min_rows, **kw)
        self.write_datasink(sink, ray_remote_args=ray_remote_args, concurrency=concurrency,
                            _min_rows_per_bundle=min_rows)

    def write_parquet(self, path: str, *, partition_cols=None, filesystem=None, try_create_dir: bool = True,
                      arrow_open_stream_args=None, filename_provider=None, arrow_parquet_args_fn=None,
                      min_rows_per_file=None, max_rows_per_file=None, ray_remote_args=None, concurrency=None,
                      num_rows_per_file=None, mode="append", **arrow_parquet_args) -> None:
        """Write one Parquet file per block under the folder ``path`` (with ``partition_cols``:
        one per block and distinct value under Hive-style ``col=value/`` folders)."""
        from solray.data._internal.datasource.sinks import ParquetDatasink

        if partition_cols:
            arrow_parquet_args["partition_cols"] = partition_cols
        if arrow_parquet_args_fn is not None:
            arrow_parquet_args["arrow_parquet_args_fn"] = arrow_parquet_args_fn
        self._write_files(ParquetDatasink, path, filesystem=filesystem, try_create_dir=try_create_dir,
                          open_stream_args=arrow_open_stream_args, filename_provider=filename_provider,
                          min_rows_per_file=min_rows_per_file, ray_remote_args=ray_remote_args,
                          concurrency=concurrency, num_rows_per_file=num_rows_per_file, mode=mode,
                          **arrow_parquet_args)

    def write_csv(self, path: str, *, filesystem=None, try_create_dir: bool = True, arrow_open_stream_args=None,
                  filename_provider=None, arrow_csv_args_fn=None, min_rows_per_file=None, ray_remote_args=None,
                  concurrency=None, num_rows_per_file=None, mode="append", **arrow_csv_args) -> None:
        """Write one CSV file per block under the folder ``path``."""
        from solray.data._internal.datasource.sinks import CSVDatasink

        if arrow_csv_args_fn is not None:
            arrow_csv_args["arrow_csv_args_fn"] = arrow_csv_args_fn
        self._write_files(CSVDatasink, path, filesystem=filesystem, try_create_dir=try_create_dir,
                          open_stream_args=arrow_open_stream_args, filename_provider=filename_provider,
                          min_rows_per_file=min_rows_per_file, ray_remote_args=ray_remote_args,
                          concurrency=concurrency, num_rows_per_file=num_rows_per_file, mode=mode, **arrow_csv_args)

    def write_json(self, path: str, *, filesystem=None, try_create_dir: bool = True, arrow_open_stream_args=None,
                   filename_provider=None, pandas_json_args_fn=None, min_rows_per_file=None, ray_remote_args=None,
                   concurrency=None, num_rows_per_file=None, mode="append", **pandas_json_args) -> None:
        """Write one JSON-lines file per block under the folder ``path``."""
        from solray.data._internal.datasource.sinks import JSONDatasink

        if pandas_json_args_fn is not None:
            pandas_json_args["pandas_json_args_fn"] = pandas_json_args_fn
        self._write_files(JSONDatasink, path, filesystem=filesystem, try_create_dir=try_create_dir,
                          open_stream_args=arrow_open_stream_args, filename_provider=filename_provider,
                          min_rows_per_file=min_rows_per_file, ray_remote_args=ray_remote_args,
                          concurrency=concurrency, num_rows_per_file=num_rows_per_file, mode=mode,
                          **pandas_json_args)

    def write_numpy(self, path: str, *, column: str, filesystem=None, try_create_dir: bool = True,
                    arrow_open_stream_args=None, filename_provider=None, min_rows_per_file=None,
                    ray_remote_args=None, concurrency=None, num_rows_per_file=None, mode="append") -> None:
        """Write column ``column`` as one ``.npy`` file per block."""
        from solray.data._internal.datasource.sinks import NumpyDatasink

        self._write_files(NumpyDatasink, path, column=column, filesystem=filesystem, try_create_dir=try_create_dir,
                          open_stream_args=arrow_open_stream_args, filename_provider=filename_provider,
                          min_rows_per_file=min_rows_per_file, ray_remote_args=ray_remote_args,
                          concurrency=concurrency, num_rows_per_file=num_rows_per_file, mode=mode)

    # ------------------------------------------------------------------------------------
    # Display

    def set_name(self, name: str | None) -> None:
        self._name = name

    @property
    def name(self) -> str | None:
        return self._name

    def get_dataset_id(self) -> str:
        return self._uuid

    def explain(self) -> None:
        """Print the logical plan and the physical operators it runs as (after fusion)."""
        from solray.data._internal.optimizer import optimize
        from solray.data._internal.planner import Planner

        print("-------- Logical Plan --------")
        print(L.plan_repr(self._op, _leaf_repr))
        print("-------- Physical Plan --------")
        ops = Planner(DataContext.get_current(), 1).plan(optimize(self._op))
        print(" -> ".join(op.name for op in ops))

    def __repr__(self) -> str:
        if not self._op.inputs:
            return _leaf_repr(self._op, type(self).__name__)
        return L.plan_repr(self._op, _leaf_repr)

    __str__ = __repr__

    def __iter__(self):
        raise TypeError("`Dataset` objects aren't iterable. To iterate records, call `ds.iter_rows()` or "
                        "`ds.iter_batches()`. For more information, read https://docs.ray.io/en/latest/data/"
                        "iterating-over-data.html.")


def _schema_str(schema) -> str:
    if schema is None:
        return "Unknown schema"
    from solray.data.schema import _type_str

    return "{" + ", ".join(f"{f.name}: {_type_str(f.type)}" for f in schema) + "}"


def _leaf_repr(op: L.LogicalOp, cls_name: str = "Dataset") -> str:
    n = L.exact_num_rows(op)
    schema = L.known_schema(op)
    rows = "?" if n is None else str(n)
    return f"{cls_name}(num_rows={rows}, schema={_schema_str(schema)})"


class MaterializedDataset(Dataset):
    """A dataset whose blocks are computed and held in the object store."""

    _empty = None

    def _derive(self, op: L.LogicalOp) -> Dataset:
        return Dataset(op)

    def _bundles(self) -> list[RefBundle]:
        return list(self._op.bundles)

    def _iter_bundles(self):
        return iter(self._bundles())

    def num_blocks(self) -> int:
        return sum(b.num_blocks for b in self._bundles())

    def size_bytes(self) -> int:
        return sum(b.size_bytes for b in self._bundles())

    def count(self) -> int:
        return sum(b.num_rows for b in self._bundles())

    def _empty_schema(self):
        return self._empty

    def materialize(self) -> MaterializedDataset:
        return self
