"""Built-in batch functions behind some Dataset methods (add_column, random_sample, stratify)."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from solray.data._internal import block as B


class AddColumn:
    """The batch function behind ``add_column``."""

    def __init__(self, col: str, fn: Callable):
        self.col = col
        self.fn = fn
        self.__name__ = "add_column"

    def __call__(self, batch):
        value = self.fn(batch)
        if isinstance(batch, pa.Table):
            arr = value if isinstance(value, (pa.Array, pa.ChunkedArray)) else B.column_to_arrow(value, self.col)
            if self.col in batch.column_names:
                return batch.set_column(batch.column_names.index(self.col), self.col, arr)
            return batch.append_column(self.col, arr)
        batch[self.col] = value
        return batch


class Sampler:
    """The batch function behind ``random_sample``: keeps each row with probability ``fraction``."""

    def __init__(self, fraction: float, seed):
        self.fraction = fraction
        self.seed = seed
        self.__name__ = "random_sample"

    def __call__(self, table: pa.Table) -> pa.Table:
        import numpy as np

        from solray.data._internal.task_context import TaskContext

        rng = np.random.default_rng(None if self.seed is None else [self.seed, TaskContext.current().task_idx])
        return table.filter(pa.array(rng.random(table.num_rows) < self.fraction))


def stratified_split(ds, test_size, column: str):
    """train_test_split(stratify=column): each group contributes the same test fraction."""
    mat = ds.materialize()
    total = mat.count()
    frac = test_size / total if isinstance(test_size, int) else test_size

    class _Split:
        def __init__(self, want_test: bool):
            self.want_test = want_test
            self.__name__ = "stratify"

        def __call__(self, df):
            import pandas as pd

            parts = []
            for _, g in df.groupby(column, sort=False, dropna=False):
                n_test = int(round(len(g) * frac))
                parts.append(g.iloc[len(g) - n_test:] if self.want_test else g.iloc[:len(g) - n_test])
            return pd.concat(parts) if parts else df.iloc[:0]

    grouped = mat.groupby(column)
    train = grouped.map_groups(_Split(False), batch_format="pandas").materialize()
    test = grouped.map_groups(_Split(True), batch_format="pandas").materialize()
    return train, test
