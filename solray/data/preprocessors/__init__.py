"""Preprocessors: fit statistics on a dataset, then transform datasets or single batches.

``fit`` runs aggregations on the cluster (mean/std/min/max, value counts); ``transform`` is a
lazy ``map_batches`` over pandas batches; ``transform_batch`` applies the same logic to one
in-memory batch (for serving). Same names and behaviour as Ray's ``ray.data.preprocessors``.
"""

from __future__ import annotations

from solray.data.preprocessors.base import Preprocessor, PreprocessorNotFittedException
from solray.data.preprocessors.encoders import LabelEncoder, OneHotEncoder, OrdinalEncoder
from solray.data.preprocessors.misc import Chain, Concatenator, SimpleImputer
from solray.data.preprocessors.scalers import MaxAbsScaler, MinMaxScaler, StandardScaler

__all__ = [
    "Chain",
    "Concatenator",
    "LabelEncoder",
    "MaxAbsScaler",
    "MinMaxScaler",
    "OneHotEncoder",
    "OrdinalEncoder",
    "Preprocessor",
    "PreprocessorNotFittedException",
    "SimpleImputer",
    "StandardScaler",
]
