"""All-to-all operations as map/reduce task graphs: shuffle, sort, repartition, aggregate, zip.

Each ``*_bulk`` function runs on the driver once its operator has every input bundle. It submits
the map stage (each map task splits its bundle into one part per output partition, returned as
separate objects), then one reduce task per partition that receives exactly its parts. Reduce
outputs are returned as pending ``(block_ref, meta_ref)`` pairs in output order; the operator
waits on them like any other task. Sorting samples keys first to pick range boundaries, so
partition ``i`` holds keys below partition ``i+1``'s and the output comes out globally sorted.

The functions prefixed ``_w_`` run in workers.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from solray.data._internal import block as B
from solray.data._internal.aggregation import merge_and_finalize, partial_aggregate, sort_table
from solray.data._internal.ref_bundle import RefBundle
from solray.data._internal.transforms import TaskResult

_SAMPLES_PER_BLOCK = 20


def _blocks(values: tuple) -> list[pa.Table]:
    out: list[pa.Table] = []
    for v in values:
        out.extend(B.as_blocks(v))
    return out


def _result(tables: list[pa.Table], start: float, cpu_start: float, target: int | None = None):
    tables = [t for t in tables if t is not None]
    table = B.concat(tables) if tables else pa.table({})
    blocks = B.split_by_size(table, target) if target else [table]
    stats = B.ExecStats(wall_s=time.perf_counter() - start, cpu_s=time.process_time() - cpu_start)
    metas = [B.metadata_for(b) for b in blocks]
    return (blocks[0] if len(blocks) == 1 else blocks), TaskResult(metas, stats)


def _clock():
    return time.perf_counter(), time.process_time()


def _parts_return(parts: list[pa.Table]):
    return parts[0] if len(parts) == 1 else tuple(parts)


# --- slicing (limit, repartition, split_at_indices) ------------------------------------------


def _w_slice(specs: list[tuple[int, int, int]], *values):
    """Concatenate ``values[i][start:start+length]`` for each spec ``(i, start, length)``."""
    t0, c0 = _clock()
    pieces = []
    for i, start, length in specs:
        table = B.concat(B.as_blocks(values[i]))
        pieces.append(table.slice(start, length))
    return _result(pieces, t0, c0)


def slice_bundle_task(ex, bundle: RefBundle, start: int, length: int):
    return ex.runtime.submit_fn(_w_slice, [[(0, start, length)], bundle.ref], num_returns=2)


def submit_row_range(ex, bundles: list[RefBundle], offsets: list[int], start: int, end: int):
    """A task producing rows ``[start, end)`` of the concatenation of ``bundles``."""
    specs, refs = [], []
    for b, off in zip(bundles, offsets, strict=True):
        b_start, b_end = off, off + b.num_rows
        lo, hi = max(start, b_start), min(end, b_end)
        if lo < hi:
            specs.append((len(refs), lo - b_start, hi - lo))
            refs.append(b.ref)
    return ex.runtime.submit_fn(_w_slice, [specs, *refs], num_returns=2)


def _offsets(bundles: list[RefBundle]) -> list[int]:
    out, acc = [], 0
    for b in bundles:
        out.append(acc)
        acc += b.num_rows
    return out


def repartition_bulk(num_blocks: int | None, target_rows: int | None):
    def run(bundles: list[RefBundle], ex, op) -> list:
        total = sum(b.num_rows for b in bundles)
        n = num_blocks
        if n is None:
            n = max(1, -(-total // max(1, target_rows)))
        offsets = _offsets(bundles)
        outputs = []
        for j in range(n):
            start, end = (total * j) // n, (total * (j + 1)) // n
            outputs.append(submit_row_range(ex, bundles, offsets, start, end))
        return outputs

    return run


# --- random shuffle ------------------------------------------------------------------------


def _rng(seed, *salt):
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng([int(seed), *salt])


def _w_shuffle_map(seed, index: int, num_parts: int, *values):
    table = B.concat(_blocks(values))
    rng = _rng(seed, index, 0)
    assign = rng.integers(0, num_parts, size=table.num_rows) if table.num_rows else np.array([], int)
    order = np.argsort(assign, kind="stable")
    counts = np.bincount(assign, minlength=num_parts)
    shuffled = table.take(pa.array(order)) if table.num_rows else table
    parts, pos = [], 0
    for c in counts:
        parts.append(shuffled.slice(pos, int(c)))
        pos += int(c)
    return _parts_return(parts)


def _w_shuffle_reduce(seed, index: int, *parts):
    t0, c0 = _clock()
    table = B.concat([p for p in parts if p is not None and p.num_columns])
    if table.num_rows:
        perm = _rng(seed, index, 1).permutation(table.num_rows)
        table = table.take(pa.array(perm))
    return _result([table], t0, c0)


def _map_reduce(ex, bundles, num_parts: int, map_fn, map_args, reduce_fn, reduce_args_fn, remote_args=None):
    """Submit ``map_fn(*map_args, i, num_parts, bundle)`` per bundle and one reduce per part."""
    parts_by_map = []
    for i, b in enumerate(bundles):
        refs = ex.runtime.submit_fn(map_fn, [*map_args(i), b.ref], num_returns=num_parts, remote_args=remote_args)
        parts_by_map.append([refs] if num_parts == 1 else list(refs))
    outputs = []
    for j in range(num_parts):
        parts = [pm[j] for pm in parts_by_map]
        outputs.append(ex.runtime.submit_fn(reduce_fn, [*reduce_args_fn(j), *parts], num_returns=2,
                                            remote_args=remote_args))
    return outputs


def shuffle_bulk(seed, num_blocks: int | None, remote_args: dict | None = None):
    def run(bundles, ex, op):
        bundles = [b for b in bundles if b.num_rows]
        if not bundles:
            return []
        n = num_blocks or len(bundles)
        return _map_reduce(
            ex, bundles, n, _w_shuffle_map, lambda i: [seed, i, n],
            _w_shuffle_reduce, lambda j: [seed, j], remote_args,
        )

    return run


def randomize_order_bulk(seed):
    def run(bundles, ex, op):
        order = _rng(seed, 7).permutation(len(bundles))
        return [bundles[i] for i in order]

    return run


# --- sort / range partitioning -------------------------------------------------------------


def _key_values(table: pa.Table, key: str):
    col = table.column(key).combine_chunks()
    return col


def _w_sample(key: str, n: int, *values):
    table = B.concat(_blocks(values))
    if key not in table.column_names:
        raise ValueError(f"sort key {key!r} not found; the dataset has columns {table.column_names}")
    col = _key_values(table, key).drop_null()
    if len(col) == 0:
        return []
    idx = np.linspace(0, len(col) - 1, num=min(n, len(col))).astype(np.int64)
    return col.take(pa.array(idx)).to_pylist()


def _boundaries(samples: list, num_parts: int) -> list:
    values = sorted(v for v in samples if v is not None)
    if not values or num_parts <= 1:
        return []
    idx = [int(len(values) * (i + 1) / num_parts) for i in range(num_parts - 1)]
    return [values[min(i, len(values) - 1)] for i in idx]


def _partition_ids(table: pa.Table, key: str, boundaries: list, descending: bool) -> np.ndarray:
    col = _key_values(table, key)
    if not boundaries:
        return np.zeros(len(col), dtype=np.int64)
    n = len(boundaries) + 1
    nulls = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_null(col.type):
        return np.full(len(col), 0 if descending else n - 1, dtype=np.int64)
    filled = col.fill_null(pa.scalar(boundaries[0], type=col.type)) if col.null_count else col
    values = filled.to_numpy(zero_copy_only=False)
    bounds = pa.array(boundaries, type=col.type).to_numpy(zero_copy_only=False)
    ids = np.searchsorted(bounds, values, side="right").astype(np.int64)
    # Nulls sort last in either direction; descending output reverses partition order.
    ids[nulls] = 0 if descending else n - 1
    return ids


def _w_range_partition(key: str, boundaries: list, descending: bool, index: int, num_parts: int, *values):
    table = B.concat(_blocks(values))
    if table.num_rows == 0:
        return _parts_return([table] * num_parts)
    ids = _partition_ids(table, key, boundaries, descending)
    order = np.argsort(ids, kind="stable")
    counts = np.bincount(ids, minlength=num_parts)
    reordered = table.take(pa.array(order))
    parts, pos = [], 0
    for c in counts:
        parts.append(reordered.slice(pos, int(c)))
        pos += int(c)
    return _parts_return(parts)


def _w_sort_reduce(keys: list[str], descending: list[bool], *parts):
    t0, c0 = _clock()
    table = B.concat([p for p in parts if p is not None and p.num_columns])
    return _result([sort_table(table, keys, descending)], t0, c0)


def _sample_boundaries(ex, bundles, key: str, num_parts: int) -> list:
    refs = [ex.runtime.submit_fn(_w_sample, [key, _SAMPLES_PER_BLOCK, b.ref]) for b in bundles]
    samples: list[Any] = []
    for r in refs:
        samples.extend(ex.runtime.get(r))
    return _boundaries(samples, num_parts)


def _nonempty_with_keys(bundles: list, keys: list[str], what: str) -> list:
    """The bundles that hold rows, after checking the dataset has every key column."""
    bundles = [b for b in bundles if b.num_rows]
    schema = bundles[0].schema if bundles else None
    if schema is not None:
        missing = [k for k in keys if k not in schema.names]
        if missing:
            raise ValueError(f"{what} key(s) {missing} not found; the dataset has columns {schema.names}")
    return bundles


def sort_bulk(keys: list[str], descending: list[bool], boundaries: list | None = None):
    def run(bundles, ex, op):
        bundles = _nonempty_with_keys(bundles, keys, "sort")
        if not bundles:
            return []
        if boundaries is not None:
            bounds = list(boundaries)
        else:
            bounds = _sample_boundaries(ex, bundles, keys[0], len(bundles))
        n = len(bounds) + 1
        outputs = _map_reduce(
            ex, bundles, n, _w_range_partition, lambda i: [keys[0], bounds, descending[0], i, n],
            _w_sort_reduce, lambda j: [keys, descending],
        )
        return outputs[::-1] if descending[0] else outputs

    return run


# --- aggregate ------------------------------------------------------------------------------


def _w_agg_map(keys, aggs, boundaries, index: int, num_parts: int, *values):
    table = B.concat(_blocks(values))
    partial = partial_aggregate(table, keys, aggs)
    if num_parts == 1 or partial.num_rows == 0:
        return _parts_return([partial] + [partial.slice(0, 0)] * (num_parts - 1))
    return _w_range_partition(keys[0], boundaries, False, index, num_parts, partial)


def _w_agg_reduce(keys, aggs, *parts):
    t0, c0 = _clock()
    out = merge_and_finalize([p for p in parts if p is not None], keys, aggs)
    return _result([out], t0, c0)


def aggregate_bulk(keys: list[str] | None, aggs: list, num_partitions: int | None):
    def run(bundles, ex, op):
        nonempty = [b for b in bundles if b.num_rows]
        if keys:
            schema = nonempty[0].schema if nonempty else None
            if schema is not None:
                missing = [k for k in keys if k not in schema.names]
                if missing:
                    raise ValueError(f"groupby key(s) {missing} not found; the dataset has columns {schema.names}")
                for agg in aggs:
                    agg._validate(schema.names)
            if not nonempty:
                return []
            n = num_partitions or len(nonempty)
            bounds = _sample_boundaries(ex, nonempty, keys[0], n)
            n = len(bounds) + 1
            return _map_reduce(
                ex, nonempty, n, _w_agg_map, lambda i: [keys, aggs, bounds, i, n],
                _w_agg_reduce, lambda j: [keys, aggs],
            )
        if nonempty and nonempty[0].schema is not None:
            for agg in aggs:
                agg._validate(nonempty[0].schema.names)
        # Whole-dataset aggregation: partials per bundle, one merge.
        partial_refs = [
            ex.runtime.submit_fn(_w_agg_map, [[], aggs, [], i, 1, b.ref]) for i, b in enumerate(nonempty)
        ]
        return [ex.runtime.submit_fn(_w_agg_reduce, [[], aggs, *partial_refs], num_returns=2)]

    return run


def group_partition_bulk(keys: list[str], num_partitions: int | None):
    """Range-partition by the first key and sort each partition: whole groups per block."""

    def run(bundles, ex, op):
        bundles = _nonempty_with_keys(bundles, keys, "groupby")
        if not bundles:
            return []
        n = num_partitions or len(bundles)
        bounds = _sample_boundaries(ex, bundles, keys[0], n)
        n = len(bounds) + 1
        return _map_reduce(
            ex, bundles, n, _w_range_partition, lambda i: [keys[0], bounds, False, i, n],
            _w_sort_reduce, lambda j: [keys, [False] * len(keys)],
        )

    return run


# --- zip ------------------------------------------------------------------------------------


def _w_zip(layout: list[list[tuple[int, int, int]]], *values):
    """``layout[k]`` lists ``(arg index, start, length)`` slices forming dataset k's rows."""
    t0, c0 = _clock()
    tables = []
    for specs in layout:
        pieces = [B.concat(B.as_blocks(values[i])).slice(s, n) for i, s, n in specs]
        tables.append(B.concat(pieces))
    out = tables[0]
    names = set(out.column_names)
    for k, t in enumerate(tables[1:], start=1):
        for col_name, col in zip(t.column_names, t.columns, strict=True):
            name = col_name
            suffix = k
            while name in names:
                name = f"{col_name}_{suffix}"
                suffix += 1
            names.add(name)
            out = out.append_column(name, col)
    return _result([out], t0, c0)


def zip_bulk():
    def run(per_input: list[list[RefBundle]], ex, op):
        counts = [sum(b.num_rows for b in bs) for bs in per_input]
        if len(set(counts)) > 1:
            raise ValueError(f"Cannot zip datasets of different number of rows: {counts}")
        left = per_input[0]
        offsets = [_offsets(bs) for bs in per_input]
        outputs = []
        pos = 0
        for lb in left:
            if lb.num_rows == 0:
                continue
            start, end = pos, pos + lb.num_rows
            pos = end
            refs, layout = [], []
            for bs, offs in zip(per_input, offsets, strict=True):
                specs = []
                for b, off in zip(bs, offs, strict=True):
                    lo, hi = max(start, off), min(end, off + b.num_rows)
                    if lo < hi:
                        specs.append((len(refs), lo - off, hi - lo))
                        refs.append(b.ref)
                layout.append(specs)
            outputs.append(ex.runtime.submit_fn(_w_zip, [layout, *refs], num_returns=2))
        return outputs

    return run


