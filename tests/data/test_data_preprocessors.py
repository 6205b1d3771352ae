"""Preprocessors: fit on the cluster, transform datasets lazily and batches eagerly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import solray.data as rd
from solray.data.preprocessors import (
    Chain,
    Concatenator,
    LabelEncoder,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PreprocessorNotFittedException,
    SimpleImputer,
    StandardScaler,
)


def test_standard_and_minmax_scalers(ray_data):
    ds = rd.from_pandas(pd.DataFrame({"X1": [-2, 0, 2], "X2": [-3, -3, 3], "X3": [1, 1, 1]}))
    out = StandardScaler(columns=["X1", "X2"]).fit_transform(ds).to_pandas()
    np.testing.assert_allclose(out["X1"], [-1.224745, 0.0, 1.224745], rtol=1e-5)
    np.testing.assert_allclose(out["X2"], [-0.707107, -0.707107, 1.414214], rtol=1e-5)
    assert out["X3"].tolist() == [1, 1, 1]
    assert StandardScaler(columns=["X3"]).fit_transform(ds).to_pandas()["X3"].tolist() == [0.0, 0.0, 0.0]
    appended = StandardScaler(columns=["X1"], output_columns=["X1_scaled"]).fit_transform(ds).to_pandas()
    assert list(appended.columns) == ["X1", "X2", "X3", "X1_scaled"]
    mm = MinMaxScaler(columns=["X1"]).fit(ds)
    assert mm.transform(ds).to_pandas()["X1"].tolist() == [0.0, 0.5, 1.0]
    # The same fitted preprocessor on one batch (serving time).
    assert mm.transform_batch(pd.DataFrame({"X1": [1.0]}))["X1"].tolist() == [0.75]
    assert mm.transform_batch({"X1": np.array([2.0])})["X1"].tolist() == [1.0]
    with pytest.raises(PreprocessorNotFittedException):
        StandardScaler(columns=["X1"]).transform(ds)


def test_encoders(ray_data):
    df = pd.DataFrame({"color": ["red", "green", "red", "red", "blue", "green"]})
    ds = rd.from_pandas(df)
    onehot = OneHotEncoder(columns=["color"]).fit_transform(ds).to_pandas()
    assert [list(v) for v in onehot["color"]] == [[0, 0, 1], [0, 1, 0], [0, 0, 1], [0, 0, 1], [1, 0, 0], [0, 1, 0]]
    top2 = OneHotEncoder(columns=["color"], max_categories={"color": 2}).fit_transform(ds).to_pandas()
    assert [list(v) for v in top2["color"]][:5] == [[1, 0], [0, 1], [1, 0], [1, 0], [0, 0]]
    iris = pd.DataFrame({"species": ["setosa", "versicolor", "setosa", "virginica"]})
    enc = LabelEncoder(label_column="species").fit(rd.from_pandas(iris))
    assert enc.transform(rd.from_pandas(iris)).to_pandas()["species"].tolist() == [0, 1, 0, 2]
    unknown = enc.transform_batch(pd.DataFrame({"species": ["rose"]}))["species"].tolist()
    assert np.isnan(unknown[0])
    levels = pd.DataFrame({"sex": ["male", "female", "male", "female"], "level": ["L4", "L5", "L3", "L4"]})
    ordinal = OrdinalEncoder(columns=["sex", "level"]).fit_transform(rd.from_pandas(levels)).to_pandas()
    assert ordinal["sex"].tolist() == [1, 0, 1, 0] and ordinal["level"].tolist() == [1, 2, 0, 1]


def test_imputer_concatenator_chain(ray_data):
    df = pd.DataFrame({"X": [0, None, 3, 3], "Y": [None, "b", "c", "c"]})
    ds = rd.from_pandas(df)
    assert SimpleImputer(columns=["X"]).fit_transform(ds).to_pandas()["X"].tolist() == [0.0, 2.0, 3.0, 3.0]
    freq = SimpleImputer(columns=["X", "Y"], strategy="most_frequent").fit_transform(ds).to_pandas()
    assert freq["X"].tolist() == [0.0, 3.0, 3.0, 3.0] and freq["Y"].tolist() == ["c", "b", "c", "c"]
    const = SimpleImputer(columns=["Y"], strategy="constant", fill_value="?")
    assert const.fit_status() == "NOT_FITTABLE"
    assert const.transform(ds).to_pandas()["Y"].tolist() == ["?", "b", "c", "c"]
    nums = rd.from_pandas(pd.DataFrame({"X0": [0, 3, 1], "X1": [0.5, 0.2, 0.9]}))
    cat = Concatenator(columns=["X0", "X1"], dtype=np.float32).transform(nums)
    batch = cat.take_batch(3)
    assert list(batch) == ["concat_out"] and batch["concat_out"].shape == (3, 2)
    assert batch["concat_out"].dtype == np.float32
    chain = Chain(MinMaxScaler(columns=["X0"]), Concatenator(columns=["X0", "X1"]))
    out = chain.fit_transform(nums).take_batch(3)["concat_out"]
    np.testing.assert_allclose(out[:, 0], [0.0, 1.0, 1 / 3])
    assert chain.fit_status() == "FITTED"
