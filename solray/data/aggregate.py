"""Aggregations for ``Dataset.aggregate`` and ``GroupedData.aggregate`` (Ray's ``ray.data.aggregate``).

Built-ins (Count, Sum, Min, Max, Mean, Std) are vectorised: each task computes per-group
partial states with Arrow's hash aggregation, and the reduce side merges them exactly (Std
uses Chan's parallel variance merge). ``AggregateFn`` takes plain Python callables for
anything else and runs them group by group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class AggregateFn:
    """A user-defined aggregation: ``init(key) -> acc``, accumulate, ``merge``, ``finalize``."""

    vectorized = False

    def __init__(
        self,
        init: Callable[[Any], Any],
        merge: Callable[[Any, Any], Any],
        name: str,
        accumulate_row: Callable[[Any, dict], Any] | None = None,
        accumulate_block: Callable[[Any, pa.Table], Any] | None = None,
        finalize: Callable[[Any], Any] | None = None,
    ):
        if (accumulate_row is None) == (accumulate_block is None):
            raise ValueError("Exactly one of accumulate_row or accumulate_block must be provided.")
        if not isinstance(name, str) or not name:
            raise ValueError("AggregateFn needs a non-empty string name")
        self.init = init
        self.merge = merge
        self.name = name
        self.accumulate_row = accumulate_row
        self.accumulate_block = accumulate_block
        self.finalize = finalize or (lambda a: a)

    def _validate(self, columns: list[str]) -> None:
        on = getattr(self, "_on", None)
        if on is not None and on not in columns:
            raise ValueError(
                f"aggregation {self.name}: column {on!r} not found; the dataset has columns {columns}"
            )

    # Python path, per group (used by the reduce-side helpers).
    def _accumulate(self, key: Any, group: pa.Table) -> Any:
        acc = self.init(key)
        if self.accumulate_block is not None:
            return self.accumulate_block(acc, group)
        from solray.data._internal.block import iter_rows

        for row in iter_rows(group):
            acc = self.accumulate_row(acc, row)
        return acc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class _Vectorized(AggregateFn):
    """Base of the built-ins: per-group states computed and merged column-wise."""

    vectorized = True
    fn_label = ""

    def __init__(self, on: str | None, ignore_nulls: bool, alias_name: str | None):
        if on is not None and not isinstance(on, str):
            raise TypeError(f"on must be a column name (str), got {type(on).__name__}")
        self._on = on
        self.ignore_nulls = ignore_nulls
        self.name = alias_name or f"{self.fn_label}({on or ''})"

    # Map side: Arrow hash-aggregation specs producing this agg's state columns, in order.
    def map_specs(self) -> list[tuple]:
        raise NotImplementedError

    # Reduce side: merge sorted partial states by group ``starts``; returns merged states.
    def merge_states(self, states: list[pa.ChunkedArray], starts: np.ndarray, n: int) -> list:
        raise NotImplementedError

    def finalize_states(self, merged: list) -> pa.Array:
        return merged[0]


def _values_and_nulls(col: pa.ChunkedArray | pa.Array):
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    nulls = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return col, nulls


def _reduce(col, starts: np.ndarray, how: str, ignore_nulls: bool) -> pa.Array:
    """Group-wise sum/min/max of a state column (rows sorted by group, groups at ``starts``)."""
    col, nulls = _values_and_nulls(col)
    ngroups = len(starts)
    if ngroups == 0:
        return pa.array([], type=col.type)
    valid_counts = np.add.reduceat((~nulls).astype(np.int64), starts)
    null_counts = np.add.reduceat(nulls.astype(np.int64), starts)
    out_null = valid_counts == 0 if ignore_nulls else null_counts > 0
    ty = col.type
    if pa.types.is_integer(ty) or pa.types.is_floating(ty) or pa.types.is_boolean(ty):
        values = col.fill_null(0 if how == "sum" else 0).to_numpy(zero_copy_only=False)
        if pa.types.is_boolean(ty):
            values = values.astype(np.int64)
        if how == "sum":
            res = np.add.reduceat(np.where(nulls, 0, values), starts)
        else:
            if values.dtype.kind == "f":
                fill = np.inf if how == "min" else -np.inf
            else:
                info = np.iinfo(values.dtype)
                fill = info.max if how == "min" else info.min
            ufunc = np.minimum if how == "min" else np.maximum
            res = ufunc.reduceat(np.where(nulls, fill, values), starts)
        out_ty = ty if how != "sum" or not pa.types.is_boolean(ty) else pa.int64()
        return pa.array(res, mask=out_null, type=out_ty if how != "sum" else None)
    # Anything else (strings, dates...): a Python loop over groups.
    py = col.to_pylist()
    bounds = list(starts) + [len(py)]
    out = []
    for g in range(ngroups):
        vals = [v for v in py[bounds[g]:bounds[g + 1]] if v is not None]
        if out_null[g] or not vals:
            out.append(None)
        elif how == "min":
            out.append(min(vals))
        elif how == "max":
            out.append(max(vals))
        else:
            out.append(sum(vals))
    return pa.array(out, type=ty if how != "sum" else None)


class Count(_Vectorized):
    fn_label = "count"

    def __init__(self, on: str | None = None, ignore_nulls: bool = False, alias_name: str | None = None):
        super().__init__(on, ignore_nulls, alias_name)

    def map_specs(self):
        if self._on is None:
            return [([], "count_all", None)]
        mode = "only_valid" if self.ignore_nulls else "all"
        return [(self._on, "count", pc.CountOptions(mode=mode))]

    def merge_states(self, states, starts, n):
        return [_reduce(states[0], starts, "sum", True)]


class Sum(_Vectorized):
    fn_label = "sum"

    def __init__(self, on: str | None = None, ignore_nulls: bool = True, alias_name: str | None = None):
        super().__init__(on, ignore_nulls, alias_name)

    def map_specs(self):
        return [(self._on, "sum", pc.ScalarAggregateOptions(skip_nulls=self.ignore_nulls, min_count=1))]

    def merge_states(self, states, starts, n):
        return [_reduce(states[0], starts, "sum", self.ignore_nulls)]


class Min(_Vectorized):
    fn_label = "min"

    def __init__(self, on: str | None = None, ignore_nulls: bool = True, alias_name: str | None = None,
                 zero_factory=None):
        super().__init__(on, ignore_nulls, alias_name)

    def map_specs(self):
        return [(self._on, "min", pc.ScalarAggregateOptions(skip_nulls=self.ignore_nulls, min_count=1))]

    def merge_states(self, states, starts, n):
        return [_reduce(states[0], starts, "min", self.ignore_nulls)]


class Max(Min):
    fn_label = "max"

    def map_specs(self):
        return [(self._on, "max", pc.ScalarAggregateOptions(skip_nulls=self.ignore_nulls, min_count=1))]

    def merge_states(self, states, starts, n):
        return [_reduce(states[0], starts, "max", self.ignore_nulls)]


class Mean(_Vectorized):
    fn_label = "mean"

    def __init__(self, on: str | None = None, ignore_nulls: bool = True, alias_name: str | None = None):
        super().__init__(on, ignore_nulls, alias_name)

    def map_specs(self):
        opts = pc.ScalarAggregateOptions(skip_nulls=self.ignore_nulls, min_count=1)
        mode = "only_valid"
        return [(self._on, "sum", opts), (self._on, "count", pc.CountOptions(mode=mode))]

    def merge_states(self, states, starts, n):
        return [_reduce(states[0], starts, "sum", self.ignore_nulls), _reduce(states[1], starts, "sum", True)]

    def finalize_states(self, merged):
        s, c = merged
        s_np = s.to_numpy(zero_copy_only=False).astype(np.float64)
        c_np = c.to_numpy(zero_copy_only=False).astype(np.float64)
        mask = np.asarray(s.is_null().to_numpy(zero_copy_only=False), dtype=bool) | (c_np == 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return pa.array(np.where(mask, 0.0, s_np / np.where(c_np == 0, 1, c_np)), mask=mask)


class Std(_Vectorized):
    fn_label = "std"

    def __init__(self, on: str | None = None, ddof: int = 1, ignore_nulls: bool = True,
                 alias_name: str | None = None):
        super().__init__(on, ignore_nulls, alias_name)
        self.ddof = ddof

    def map_specs(self):
        return [
            (self._on, "count", pc.CountOptions(mode="only_valid")),
            (self._on, "mean", pc.ScalarAggregateOptions(skip_nulls=self.ignore_nulls, min_count=1)),
            (self._on, "variance", pc.VarianceOptions(ddof=0, skip_nulls=self.ignore_nulls, min_count=1)),
        ]

    def merge_states(self, states, starts, n):
        count = states[0].to_numpy().astype(np.float64) if isinstance(states[0], pa.Array) else \
            states[0].to_numpy().astype(np.float64)
        mean_col, mean_null = _values_and_nulls(states[1])
        var_col, var_null = _values_and_nulls(states[2])
        mean = np.where(mean_null, 0.0, mean_col.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64))
        var = np.where(var_null, 0.0, var_col.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64))
        bad = (mean_null | var_null) & (count > 0)
        m2 = var * count
        n_tot = np.add.reduceat(count, starts) if len(starts) else np.array([])
        sum_x = np.add.reduceat(count * mean, starts) if len(starts) else np.array([])
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_tot = np.where(n_tot > 0, sum_x / np.where(n_tot == 0, 1, n_tot), 0.0)
        group_of_row = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(count))))
        dev = m2 + count * (mean - mean_tot[group_of_row]) ** 2
        m2_tot = np.add.reduceat(dev, starts) if len(starts) else np.array([])
        any_bad = np.add.reduceat(bad.astype(np.int64), starts) > 0 if len(starts) else np.array([], bool)
        return [n_tot, m2_tot, any_bad]

    def finalize_states(self, merged):
        n_tot, m2_tot, any_bad = merged
        denom = n_tot - self.ddof
        mask = (denom <= 0) | (any_bad if not self.ignore_nulls else np.zeros_like(any_bad))
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.sqrt(np.maximum(m2_tot, 0) / np.where(denom <= 0, 1, denom))
        return pa.array(np.where(mask, 0.0, out), mask=mask)


class AbsMax(AggregateFn):
    """Maximum of absolute values."""

    def __init__(self, on: str | None = None, ignore_nulls: bool = True, alias_name: str | None = None,
                 zero_factory=None):
        col = on

        def acc_block(acc, block: pa.Table):
            values = block.column(col)
            if values.null_count and not ignore_nulls:
                return np.nan
            arr = values.drop_null().to_numpy(zero_copy_only=False)
            if len(arr) == 0:
                return acc
            m = float(np.max(np.abs(arr)))
            return m if acc is None else max(acc, m)

        def merge(a, b):
            if a is None:
                return b
            if b is None:
                return a
            return max(a, b)

        super().__init__(init=lambda k: None, merge=merge, accumulate_block=acc_block,
                         name=alias_name or f"abs_max({on})")
        self._on = on


class Unique(AggregateFn):
    """The set of distinct values of a column (as a list)."""

    def __init__(self, on: str | None = None, ignore_nulls: bool = False, alias_name: str | None = None,
                 encode_lists=None):
        col = on

        def acc_block(acc, block: pa.Table):
            values = pc.unique(block.column(col)).to_pylist()
            acc.update(v for v in values if not (ignore_nulls and v is None))
            return acc

        super().__init__(init=lambda k: set(), merge=lambda a, b: a | b, accumulate_block=acc_block,
                         finalize=lambda a: list(a), name=alias_name or f"unique({on})")
        self._on = on


class Quantile(AggregateFn):
    """The ``q``-quantile of a column (exact, linear interpolation)."""

    def __init__(self, on: str | None = None, q: float = 0.5, ignore_nulls: bool = True,
                 alias_name: str | None = None):
        col = on

        def acc_block(acc, block: pa.Table):
            acc.extend(block.column(col).drop_null().to_pylist())
            return acc

        def fin(acc):
            return float(np.quantile(np.asarray(acc, dtype=float), q)) if acc else None

        super().__init__(init=lambda k: [], merge=lambda a, b: a + b, accumulate_block=acc_block,
                         finalize=fin, name=alias_name or f"quantile({on})")
        self._on = on


__all__ = ["AbsMax", "AggregateFn", "Count", "Max", "Mean", "Min", "Quantile", "Std", "Sum", "Unique"]
