"""Numeric scalers: StandardScaler, MinMaxScaler, MaxAbsScaler."""

from __future__ import annotations

from solray.data.aggregate import AbsMax, Max, Mean, Min, Std
from solray.data.preprocessors.base import Preprocessor, check_columns, output_names


class _ColumnScaler(Preprocessor):
    def __init__(self, columns: list[str], output_columns: list[str] | None = None):
        super().__init__()
        if isinstance(columns, str) or not columns:
            raise ValueError(f"columns must be a non-empty list of column names, got {columns!r}")
        self.columns = list(columns)
        self.output_columns = output_names(self.columns, output_columns)

    def _aggregate(self, ds, aggs):
        return ds.aggregate(*aggs)

    def _transform_pandas(self, df):
        check_columns(df, self.columns, type(self).__name__)
        for col, out in zip(self.columns, self.output_columns, strict=True):
            df[out] = self._scale(df[col].astype("float64"), col)
        return df


class StandardScaler(_ColumnScaler):
    """``(x - mean) / std`` per column (population std); constant columns become 0."""

    def _fit(self, ds):
        aggs = [Mean(c) for c in self.columns] + [Std(c, ddof=0) for c in self.columns]
        self.stats_ = self._aggregate(ds, aggs)

    def _scale(self, x, col):
        mean = self.stats_[f"mean({col})"]
        std = self.stats_[f"std({col})"]
        if mean is None or std is None:
            return x
        if std == 0:
            return x * 0.0
        return (x - mean) / std


class MinMaxScaler(_ColumnScaler):
    """``(x - min) / (max - min)`` per column; constant columns become 0."""

    def _fit(self, ds):
        aggs = [Min(c) for c in self.columns] + [Max(c) for c in self.columns]
        self.stats_ = self._aggregate(ds, aggs)

    def _scale(self, x, col):
        lo, hi = self.stats_[f"min({col})"], self.stats_[f"max({col})"]
        if lo is None or hi is None:
            return x
        span = hi - lo
        return (x - lo) / span if span else x * 0.0


class MaxAbsScaler(_ColumnScaler):
    """``x / max(|x|)`` per column."""

    def _fit(self, ds):
        self.stats_ = self._aggregate(ds, [AbsMax(c) for c in self.columns])

    def _scale(self, x, col):
        m = self.stats_[f"abs_max({col})"]
        return x / m if m else x
