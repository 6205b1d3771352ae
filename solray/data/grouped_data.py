"""``GroupedData``: the result of ``Dataset.groupby(key)``."""

from __future__ import annotations

from solray.data import aggregate as A
from solray.data._internal import block as B
from solray.data._internal import logical as L


class GroupedData:
    def __init__(self, dataset, keys: list[str] | None, num_partitions: int | None = None):
        self._dataset = dataset
        self._keys = keys
        self._num_partitions = num_partitions

    def __repr__(self) -> str:
        return f"GroupedData(dataset={self._dataset!r}, key={self._keys!r})"

    def aggregate(self, *aggs: A.AggregateFn):
        """One row per group: the key columns plus one column per aggregation."""
        if not aggs:
            raise ValueError("aggregate: pass at least one AggregateFn")
        for a in aggs:
            if not isinstance(a, A.AggregateFn):
                raise TypeError(f"aggregate: expected AggregateFn instances, got {type(a).__name__}")
        if self._keys is None:
            return self._dataset._derive(L.Aggregate(self._dataset._op, None, list(aggs)))
        return self._dataset._derive(L.Aggregate(self._dataset._op, self._keys, list(aggs), self._num_partitions))

    def _simple(self, cls, on, **kw):
        if on is None:
            raise ValueError(f"{cls.__name__.lower()}: pass the column(s) to aggregate with on=")
        cols = [on] if isinstance(on, str) else list(on)
        return self.aggregate(*[cls(c, **kw) for c in cols])

    def count(self):
        return self.aggregate(A.Count())

    def sum(self, on=None, ignore_nulls: bool = True):
        return self._simple(A.Sum, on, ignore_nulls=ignore_nulls)

    def min(self, on=None, ignore_nulls: bool = True):
        return self._simple(A.Min, on, ignore_nulls=ignore_nulls)

    def max(self, on=None, ignore_nulls: bool = True):
        return self._simple(A.Max, on, ignore_nulls=ignore_nulls)

    def mean(self, on=None, ignore_nulls: bool = True):
        return self._simple(A.Mean, on, ignore_nulls=ignore_nulls)

    def std(self, on=None, ddof: int = 1, ignore_nulls: bool = True):
        return self._simple(A.Std, on, ddof=ddof, ignore_nulls=ignore_nulls)

    def map_groups(self, fn, *, zero_copy_batch: bool = True, compute=None, batch_format: str | None = "default",
                   fn_args=None, fn_kwargs=None, fn_constructor_args=None, fn_constructor_kwargs=None,
                   num_cpus=None, num_gpus=None, memory=None, concurrency=None, ray_remote_args_fn=None,
                   **ray_remote_args):
        """Apply ``fn`` to each group's rows as one batch; outputs are concatenated."""
        from solray.data._internal.arguments import remote_args, resolve_compute

        api = "map_groups"
        self._dataset._validate_udf_kwargs(api, fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs)
        B.validate_batch_format(batch_format)
        compute = resolve_compute(fn, compute, concurrency, api)
        if self._keys is None:
            source = L.Repartition(self._dataset._op, 1)
            keys: list[str] = []
        else:
            source = L.GroupPartition(self._dataset._op, self._keys, self._num_partitions)
            keys = self._keys
        op = L.MapGroups(source, fn, keys, batch_format, fn_args=fn_args, fn_kwargs=fn_kwargs,
                         fn_constructor_args=fn_constructor_args, fn_constructor_kwargs=fn_constructor_kwargs,
                         compute=compute, ray_remote_args=remote_args(num_cpus, num_gpus, memory,
                                                                       ray_remote_args, api),
                         ray_remote_args_fn=ray_remote_args_fn)
        return self._dataset._derive(op)
