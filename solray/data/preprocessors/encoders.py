"""Categorical encoders: OrdinalEncoder, OneHotEncoder, LabelEncoder.

Categories come from value counts computed on the cluster (``groupby(col).count()``); an
encoder's ``stats_`` maps ``unique_values(col)`` to ``{category: index}`` in sorted order
(OneHotEncoder with ``max_categories`` keeps the most frequent ones).
"""

from __future__ import annotations

import numpy as np

from solray.data.preprocessors.base import Preprocessor, check_columns, output_names


def _hashable(v):
    if isinstance(v, np.ndarray):
        return tuple(v.tolist())
    if isinstance(v, list):
        return tuple(v)
    return v


def _value_counts(ds, column: str) -> dict:
    counts: dict = {}
    for row in ds.select_columns([column]).groupby(column).count().iter_rows():
        key = _hashable(row[column])
        if key is None or (isinstance(key, float) and np.isnan(key)):
            continue
        counts[key] = counts.get(key, 0) + row["count()"]
    return counts


def _sorted(values):
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


class OrdinalEncoder(Preprocessor):
    """Replace each category with its index among the sorted categories (unknown: NaN)."""

    def __init__(self, columns: list[str], *, encode_lists: bool = True, output_columns: list[str] | None = None):
        super().__init__()
        self.columns = list(columns)
        self.encode_lists = encode_lists
        self.output_columns = output_names(self.columns, output_columns)

    def _fit(self, ds):
        for col in self.columns:
            cats = _sorted(_value_counts(ds, col))
            self.stats_[f"unique_values({col})"] = {c: i for i, c in enumerate(cats)}

    def _transform_pandas(self, df):
        check_columns(df, self.columns, "OrdinalEncoder")
        for col, out in zip(self.columns, self.output_columns, strict=True):
            mapping = self.stats_[f"unique_values({col})"]
            df[out] = [self._encode(v, mapping) for v in df[col]]
        return df

    def _encode(self, v, mapping):
        if self.encode_lists and isinstance(v, (list, np.ndarray)):
            return [mapping.get(_hashable(x), float("nan")) for x in v]
        return mapping.get(_hashable(v), float("nan"))


class OneHotEncoder(Preprocessor):
    """Replace each category with a one-hot vector (unknown or infrequent: all zeros)."""

    def __init__(self, columns: list[str], *, max_categories: dict[str, int] | None = None,
                 output_columns: list[str] | None = None):
        super().__init__()
        self.columns = list(columns)
        self.max_categories = dict(max_categories or {})
        self.output_columns = output_names(self.columns, output_columns)

    def _fit(self, ds):
        for col in self.columns:
            counts = _value_counts(ds, col)
            limit = self.max_categories.get(col)
            if limit is not None:
                cats = [c for c, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:limit]]
            else:
                cats = _sorted(counts)
            self.stats_[f"unique_values({col})"] = {c: i for i, c in enumerate(cats)}

    def _transform_pandas(self, df):
        check_columns(df, self.columns, "OneHotEncoder")
        for col, out in zip(self.columns, self.output_columns, strict=True):
            mapping = self.stats_[f"unique_values({col})"]
            encoded = np.zeros((len(df), len(mapping)), dtype=np.int64)
            for i, v in enumerate(df[col]):
                j = mapping.get(_hashable(v))
                if j is not None:
                    encoded[i, j] = 1
            df[out] = list(encoded)
        return df


class LabelEncoder(Preprocessor):
    """Encode a label column as integers ``0..n-1`` in sorted label order (unknown: NaN)."""

    def __init__(self, label_column: str, *, output_column: str | None = None):
        super().__init__()
        self.label_column = label_column
        self.output_column = output_column or label_column

    def _fit(self, ds):
        cats = _sorted(_value_counts(ds, self.label_column))
        self.stats_[f"unique_values({self.label_column})"] = {c: i for i, c in enumerate(cats)}

    def _transform_pandas(self, df):
        check_columns(df, [self.label_column], "LabelEncoder")
        mapping = self.stats_[f"unique_values({self.label_column})"]
        df[self.output_column] = df[self.label_column].map(lambda v: mapping.get(_hashable(v), float("nan")))
        return df

    def inverse_transform(self, ds):
        """Map encoded labels back to the original ones (lazy)."""
        self._check_fitted()
        inverse = {i: c for c, i in self.stats_[f"unique_values({self.label_column})"].items()}
        col = self.output_column

        def invert(df):
            df[self.label_column] = df[col].map(lambda i: inverse.get(int(i)) if i == i else None)
            return df

        return ds.map_batches(invert, batch_format="pandas")
