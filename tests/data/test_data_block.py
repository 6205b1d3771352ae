"""Block conversions (no cluster): batches, rows, tensors, objects, batching."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from solray.data._internal import block as B
from solray.data._internal.batcher import batch_tables
from solray.data._internal.expressions import parse_expression


def test_numeric_columns_roundtrip_zero_copy():
    arr = np.arange(10, dtype=np.float64)
    t = B.dict_to_block({"x": arr})
    out = B.block_to_numpy(t)["x"]
    np.testing.assert_array_equal(out, arr)
    assert not out.flags.writeable  # a view on Arrow memory


def test_tensor_column_roundtrip():
    arr = np.arange(24).reshape(4, 2, 3)
    t = B.dict_to_block({"t": arr})
    assert isinstance(t.schema.field("t").type, pa.FixedShapeTensorType)
    np.testing.assert_array_equal(B.block_to_numpy(t)["t"], arr)
    rows = list(B.iter_rows(t))
    np.testing.assert_array_equal(rows[1]["t"], arr[1])


def test_list_of_equal_arrays_becomes_tensor_and_ragged_becomes_objects():
    t = B.dict_to_block({"a": [np.zeros(3), np.ones(3)]})
    assert B.block_to_numpy(t)["a"].shape == (2, 3)
    ragged = B.dict_to_block({"r": [np.zeros(2), np.ones(3)]})
    out = B.block_to_numpy(ragged)["r"]
    assert out.dtype == object and out[1].shape == (3,)


def test_arbitrary_objects_are_pickled():
    class Thing:
        def __init__(self, v):
            self.v = v

    t = B.dict_to_block({"o": [{"a": 1}, 3, "x"]})
    assert [v for v in B.block_to_numpy(t)["o"]] == [{"a": 1}, 3, "x"]


def test_pandas_roundtrip_and_strings():
    df = pd.DataFrame({"a": [1, 2], "s": ["x", "y"]})
    t = B.batch_to_block(df)
    assert t.column_names == ["a", "s"]
    back = B.block_to_pandas(t)
    assert back["s"].tolist() == ["x", "y"]
    assert B.block_to_numpy(t)["s"].tolist() == ["x", "y"]


def test_bad_batches_name_the_problem():
    with pytest.raises(ValueError, match="different lengths"):
        B.dict_to_block({"a": [1, 2], "b": [1]})
    with pytest.raises(TypeError, match="expected a batch"):
        B.batch_to_block(42)
    with pytest.raises(ValueError, match="scalar"):
        B.dict_to_block({"a": 5})
    with pytest.raises(ValueError, match="batch_format"):
        B.block_to_batch(pa.table({"a": [1]}), "polars")


def test_rows_to_block_fills_missing_keys():
    t = B.rows_to_block([{"a": 1}, {"a": 2, "b": "x"}])
    assert t.to_pylist() == [{"a": 1, "b": None}, {"a": 2, "b": "x"}]


def test_block_builder_splits_large_outputs():
    b = B.BlockBuilder(target_max_bytes=800)
    b.add(pa.table({"x": np.arange(500, dtype=np.int64)}))  # 4000 bytes
    blocks = b.finish()
    assert len(blocks) == 5 and sum(x.num_rows for x in blocks) == 500


def test_batching_exact_and_drop_last():
    tables = [pa.table({"x": np.arange(i * 3, i * 3 + 3)}) for i in range(4)]  # 12 rows
    sizes = [t.num_rows for t in batch_tables(tables, 5)]
    assert sizes == [5, 5, 2]
    assert [t.num_rows for t in batch_tables(tables, 5, drop_last=True)] == [5, 5]
    assert [t.num_rows for t in batch_tables(tables, None)] == [3, 3, 3, 3]


def test_local_shuffle_keeps_every_row():
    tables = [pa.table({"x": np.arange(i * 10, i * 10 + 10)}) for i in range(10)]
    out = list(batch_tables(tables, 7, local_shuffle_buffer_size=20, local_shuffle_seed=0))
    values = np.concatenate([t.column("x").to_numpy() for t in out])
    assert sorted(values.tolist()) == list(range(100))
    assert values.tolist() != list(range(100))
    assert all(t.num_rows == 7 for t in out[:-1])


def test_filter_expressions():
    t = pa.table({"a": [1, 2, 3, 4], "s": ["x", "y", None, "x"]})
    assert t.filter(parse_expression("a > 2")).column("a").to_pylist() == [3, 4]
    assert t.filter(parse_expression("a >= 2 and s == 'x'")).column("a").to_pylist() == [4]
    assert t.filter(parse_expression("s is None")).column("a").to_pylist() == [3]
    assert t.filter(parse_expression("a in [1, 4]")).column("a").to_pylist() == [1, 4]
    assert t.filter(parse_expression("not (a < 3) or a == 1")).column("a").to_pylist() == [1, 3, 4]
    assert t.filter(parse_expression("1 < a < 4")).column("a").to_pylist() == [2, 3]
    with pytest.raises(ValueError, match="invalid filter expression"):
        parse_expression("a >")
