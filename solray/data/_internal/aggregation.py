"""Group-wise aggregation kernels: partial states per task, exact merge on the reduce side."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa

from solray.data._internal import block as B


def sort_table(table: pa.Table, keys: list[str], descending: list[bool] | None = None) -> pa.Table:
    if not keys or table.num_rows <= 1:
        return table
    descending = descending or [False] * len(keys)
    return table.sort_by([(k, "descending" if d else "ascending") for k, d in zip(keys, descending, strict=True)])


def group_starts(table: pa.Table, keys: list[str]) -> np.ndarray:
    """Start offsets of runs of equal keys in a table already sorted by ``keys``."""
    n = table.num_rows
    if n == 0:
        return np.array([], dtype=np.int64)
    if not keys:
        return np.array([0], dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for k in keys:
        col = table.column(k).combine_chunks()
        if isinstance(col.type, pa.ExtensionType):
            col = col.storage
        vals = col.to_numpy(zero_copy_only=False)
        nulls = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if vals.dtype.kind == "f":
            diff = (vals[1:] != vals[:-1]) & ~(np.isnan(vals[1:]) & np.isnan(vals[:-1]))
        elif vals.dtype == object:
            diff = np.fromiter((a != b for a, b in zip(vals[1:], vals[:-1], strict=True)), bool, n - 1)
        else:
            diff = vals[1:] != vals[:-1]
        diff = np.where(nulls[1:] | nulls[:-1], nulls[1:] != nulls[:-1], diff)
        change[1:] |= diff
    return np.flatnonzero(change).astype(np.int64)


def group_boundaries(table: pa.Table, keys: list[str]) -> list[tuple[int, int]]:
    starts = group_starts(table, keys)
    ends = list(starts[1:]) + [table.num_rows]
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def _key_of(table: pa.Table, keys: list[str], row: int):
    if not keys:
        return None
    vals = tuple(table.column(k)[row].as_py() for k in keys)
    return vals[0] if len(vals) == 1 else vals


def _state_names(i: int, n: int) -> list[str]:
    return [f"__agg{i}_{j}" for j in range(n)]


def partial_aggregate(table: pa.Table, keys: list[str], aggs: list) -> pa.Table:
    """Per-group partial states of one block: key columns + ``__agg{i}_{j}`` state columns."""
    keys = list(keys or [])
    for agg in aggs:
        agg._validate(table.column_names)
    for k in keys:
        if k not in table.column_names:
            raise ValueError(f"groupby key {k!r} not found; the dataset has columns {table.column_names}")
    columns: dict[str, pa.Array] = {}
    specs, owners = [], []
    for i, agg in enumerate(aggs):
        if agg.vectorized:
            s = agg.map_specs()
            specs.extend(s)
            owners.append((i, len(s)))
    if table.num_rows == 0:
        return pa.table({})
    has_python = any(not agg.vectorized for agg in aggs)
    sorted_table = sort_table(table, keys) if has_python else None
    if specs:
        res = sort_table(table.group_by(keys, use_threads=False).aggregate(specs), keys)
        for k in keys:
            columns[k] = res.column(k)
        state_cols = [res.column(j) for j in range(res.num_columns) if res.column_names[j] not in keys]
        pos = 0
        for i, n in owners:
            for name, col in zip(_state_names(i, n), state_cols[pos:pos + n], strict=True):
                columns[name] = col
            pos += n
    if has_python:
        starts = group_starts(sorted_table, keys)
        if keys and not specs:
            key_rows = sorted_table.take(pa.array(starts))
            for k in keys:
                columns[k] = key_rows.column(k)
        elif specs and len(starts) != len(columns[next(iter(columns))]):
            raise RuntimeError("internal error: group counts disagree between hash and sort grouping")
        ends = list(starts[1:]) + [sorted_table.num_rows]
        for i, agg in enumerate(aggs):
            if agg.vectorized:
                continue
            states = []
            for s, e in zip(starts, ends, strict=True):
                group = sorted_table.slice(int(s), int(e - s))
                states.append(agg._accumulate(_key_of(group, keys, 0), group))
            columns[_state_names(i, 1)[0]] = B._object_array(states)
    order = keys + [n for n in columns if n not in keys]
    return pa.table({n: columns[n] for n in order})


def merge_and_finalize(partials: list[pa.Table], keys: list[str], aggs: list) -> pa.Table:
    """Merge partial states from many tasks and produce the final aggregated table."""
    keys = list(keys or [])
    partials = [p for p in partials if p.num_rows > 0]
    if not partials:
        if keys:
            return pa.table({})
        # Aggregating an empty dataset: one row of nulls (count is 0).
        out = {}
        for agg in aggs:
            out[agg.name] = [0] if type(agg).__name__ == "Count" else [None]
        return pa.table(out)
    table = sort_table(B.concat(partials), keys)
    starts = group_starts(table, keys)
    out: dict[str, pa.Array] = {}
    if keys:
        key_rows = table.take(pa.array(starts))
        for k in keys:
            out[k] = key_rows.column(k)
    ends = list(starts[1:]) + [table.num_rows]
    for i, agg in enumerate(aggs):
        if agg.vectorized:
            n = len(agg.map_specs())
            states = [table.column(name) for name in _state_names(i, n)]
            merged = agg.merge_states(states, starts, table.num_rows)
            out[agg.name] = agg.finalize_states(merged)
        else:
            col = table.column(_state_names(i, 1)[0]).combine_chunks()
            raw = col.storage.to_pylist()
            results = []
            for s, e in zip(starts, ends, strict=True):
                acc = None
                first = True
                for v in raw[int(s):int(e)]:
                    state = pickle.loads(v)
                    acc = state if first else agg.merge(acc, state)
                    first = False
                results.append(agg.finalize(acc))
            out[agg.name] = B.column_to_arrow(results, agg.name)
    names = list(out.keys())
    if len(set(names)) != len(names):
        raise ValueError(f"aggregations produce duplicate output columns: {names}; use alias_name")
    return pa.table(out)
