"""The ``Preprocessor`` base class: fit once, transform datasets lazily or batches eagerly."""

from __future__ import annotations

from typing import Any

import numpy as np


class PreprocessorNotFittedException(RuntimeError):
    """``transform`` was called on a fittable preprocessor before ``fit``."""


class _TransformBatches:
    """The batch function a fitted preprocessor runs in ``map_batches`` (pickles with its stats)."""

    def __init__(self, preprocessor: Preprocessor):
        self.preprocessor = preprocessor
        self.__name__ = type(preprocessor).__name__

    def __call__(self, df):
        return self.preprocessor._transform_pandas(df)


class Preprocessor:
    _is_fittable = True

    def __init__(self) -> None:
        self.stats_: dict[str, Any] = {}
        self._fitted = False

    # --- public API ------------------------------------------------------------------------
    def fit_status(self) -> str:
        if not self._is_fittable:
            return "NOT_FITTABLE"
        return "FITTED" if self._fitted else "NOT_FITTED"

    def fit(self, ds) -> Preprocessor:
        """Compute the statistics this preprocessor needs from ``ds`` (runs the dataset)."""
        if self._is_fittable:
            self.stats_ = {}
            self._fit(ds)
            self._fitted = True
        return self

    def fit_transform(self, ds):
        return self.fit(ds).transform(ds)

    def transform(self, ds):
        """A lazy dataset with this preprocessor applied to every batch."""
        self._check_fitted()
        return ds.map_batches(_TransformBatches(self), batch_format="pandas")

    def transform_batch(self, data):
        """Apply to one batch: a pandas DataFrame, or a dict of NumPy arrays (same type back)."""
        import pandas as pd

        self._check_fitted()
        if isinstance(data, pd.DataFrame):
            return self._transform_pandas(data.copy())
        if isinstance(data, dict):
            df = pd.DataFrame({k: list(v) if getattr(v, "ndim", 1) > 1 else v for k, v in data.items()})
            out = self._transform_pandas(df)
            return {c: _column_array(out[c]) for c in out.columns}
        raise TypeError(f"transform_batch expects a pandas.DataFrame or a dict of arrays, got {type(data).__name__}")

    # --- for subclasses ----------------------------------------------------------------------
    def _fit(self, ds) -> None:
        raise NotImplementedError

    def _transform_pandas(self, df):
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if self._is_fittable and not self._fitted:
            raise PreprocessorNotFittedException(
                f"`{type(self).__name__}` is not fitted yet: call `fit()` before `transform()`."
            )

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()
                           if not k.startswith("_") and k != "stats_")
        return f"{type(self).__name__}({fields})"


def _column_array(series) -> np.ndarray:
    values = series.to_numpy()
    if values.dtype == object and len(values) and all(isinstance(v, np.ndarray) for v in values):
        shapes = {v.shape for v in values}
        if len(shapes) == 1:
            return np.stack(list(values))
    return values


def output_names(columns: list[str], output_columns: list[str] | None) -> list[str]:
    if output_columns is None:
        return list(columns)
    if len(output_columns) != len(columns):
        raise ValueError(
            f"output_columns must have one name per column: got {len(output_columns)} for {len(columns)}"
        )
    return list(output_columns)


def check_columns(df, columns: list[str], who: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{who}: column(s) {missing} not found in the batch; it has {list(df.columns)}")
