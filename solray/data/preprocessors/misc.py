"""SimpleImputer, Concatenator and Chain."""

from __future__ import annotations

import numpy as np

from solray.data.aggregate import Mean
from solray.data.preprocessors.base import Preprocessor, check_columns, output_names
from solray.data.preprocessors.encoders import _value_counts


class SimpleImputer(Preprocessor):
    """Fill missing values with the column mean, the most frequent value, or a constant."""

    _STRATEGIES = ("mean", "most_frequent", "constant")

    def __init__(self, columns: list[str], strategy: str = "mean", fill_value=None, *,
                 output_columns: list[str] | None = None):
        super().__init__()
        if strategy not in self._STRATEGIES:
            raise ValueError(f"strategy must be one of {self._STRATEGIES}, got {strategy!r}")
        if strategy == "constant" and fill_value is None:
            raise ValueError("strategy='constant' needs a fill_value")
        self.columns = list(columns)
        self.strategy = strategy
        self.fill_value = fill_value
        self.output_columns = output_names(self.columns, output_columns)
        if strategy == "constant":
            self._is_fittable = False

    def _fit(self, ds):
        if self.strategy == "mean":
            self.stats_ = ds.aggregate(*[Mean(c) for c in self.columns])
        else:
            for col in self.columns:
                counts = _value_counts(ds, col)
                # Most frequent; ties go to the smallest value (deterministic).
                ordered = sorted(counts.items(), key=lambda kv: (-kv[1], repr(kv[0])))
                self.stats_[f"most_frequent({col})"] = ordered[0][0] if ordered else None

    def _transform_pandas(self, df):
        check_columns(df, self.columns, "SimpleImputer")
        for col, out in zip(self.columns, self.output_columns, strict=True):
            if self.strategy == "constant":
                value = self.fill_value
            elif self.strategy == "mean":
                value = self.stats_[f"mean({col})"]
            else:
                value = self.stats_[f"most_frequent({col})"]
            df[out] = df[col].fillna(value) if value is not None else df[col]
        return df


class Concatenator(Preprocessor):
    """Combine numeric columns into one tensor column (``concat_out`` by default)."""

    _is_fittable = False

    def __init__(self, columns: list[str], output_column_name: str = "concat_out", dtype=None,
                 raise_if_missing: bool = False, flatten: bool = False):
        super().__init__()
        self.columns = list(columns)
        self.output_column_name = output_column_name
        self.dtype = dtype
        self.raise_if_missing = raise_if_missing
        self.flatten = flatten

    def _transform_pandas(self, df):
        missing = [c for c in self.columns if c not in df.columns]
        if missing and self.raise_if_missing:
            raise ValueError(f"Concatenator: missing columns {missing}; the batch has {list(df.columns)}")
        cols = [c for c in self.columns if c in df.columns]
        parts = []
        for c in cols:
            values = df[c].to_numpy()
            if values.dtype == object:
                values = np.stack([np.ravel(np.asarray(v)) for v in values]) if self.flatten else np.stack(values)
            else:
                values = values.reshape(len(df), -1)
            parts.append(values.reshape(len(df), -1))
        out = np.concatenate(parts, axis=1) if parts else np.zeros((len(df), 0))
        if self.dtype is not None:
            out = out.astype(self.dtype)
        df = df.drop(columns=cols)
        df[self.output_column_name] = list(out)
        return df


class Chain(Preprocessor):
    """Apply preprocessors in order; fitting fits each on the output of the previous ones."""

    def __init__(self, *preprocessors: Preprocessor):
        super().__init__()
        self.preprocessors = list(preprocessors)
        self._is_fittable = any(p._is_fittable for p in self.preprocessors)

    def fit(self, ds):
        for p in self.preprocessors:
            p.fit(ds)
            ds = p.transform(ds)
        self._fitted = True
        return self

    def fit_transform(self, ds):
        for p in self.preprocessors:
            ds = p.fit_transform(ds)
        self._fitted = True
        return ds

    def transform(self, ds):
        for p in self.preprocessors:
            ds = p.transform(ds)
        return ds

    def transform_batch(self, data):
        for p in self.preprocessors:
            data = p.transform_batch(data)
        return data

    def fit_status(self) -> str:
        statuses = {p.fit_status() for p in self.preprocessors}
        if statuses <= {"FITTED", "NOT_FITTABLE"}:
            return "FITTED" if "FITTED" in statuses else "NOT_FITTABLE"
        return "PARTIALLY_FITTED" if "FITTED" in statuses else "NOT_FITTED"
