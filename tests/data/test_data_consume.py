"""Consumption APIs: take/show/count/schema/iteration/conversions/stats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import solray
import solray.data as rd


def test_take_variants_and_show(ray_data, capsys):
    ds = rd.range(50)
    assert ds.take() == [{"id": i} for i in range(20)]
    assert ds.take(3) == [{"id": 0}, {"id": 1}, {"id": 2}]
    batch = ds.take_batch(4)
    assert batch["id"].tolist() == [0, 1, 2, 3]
    assert list(ds.take_batch(2, batch_format="pandas")["id"]) == [0, 1]
    assert ds.take_batch(2, batch_format="pyarrow").num_rows == 2
    assert len(ds.take_all()) == 50
    with pytest.raises(ValueError, match="more than the given limit"):
        ds.take_all(limit=10)
    rd.range(3).show()
    assert capsys.readouterr().out.splitlines() == ["{'id': 0}", "{'id': 1}", "{'id': 2}"]


def test_count_from_metadata_without_tasks(ray_data, counter, tmp_path):
    def tick(batch):
        counter.inc.remote()
        return batch

    assert rd.range(1000).count() == 1000
    assert rd.range(1000).map(lambda r: r).select_columns(["id"]).count() == 1000
    rd.range(100).write_parquet(str(tmp_path))
    assert rd.read_parquet(str(tmp_path)).random_shuffle().count() == 100
    # A map_batches may change the row count: count() has to run it.
    assert rd.range(10).map_batches(tick).count() == 10
    assert rd.range(10).filter(lambda r: r["id"] < 3).count() == 3


def test_schema_columns_and_sizes(ray_data):
    ds = rd.from_items([{"a": 1, "b": "x", "t": np.zeros((2, 2))}])
    schema = ds.schema()
    assert schema.names == ["a", "b", "t"]
    assert schema.types[0] == pa.int64() and schema.types[1] == pa.string()
    assert "Column" in str(schema) and "ArrowTensorType(shape=(2, 2)" in str(schema)
    mapped = rd.range(5).map_batches(lambda b: {"f": b["id"].astype(np.float32)})
    assert mapped.schema().names == ["f"] and mapped.schema().types == [pa.float32()]
    assert mapped.columns() == ["f"]
    assert rd.range(100, override_num_blocks=4).num_blocks() == 4
    assert rd.range(100).size_bytes() == 800
    assert rd.range(100).materialize().size_bytes() == 800


def test_iter_rows_and_batches(ray_data):
    ds = rd.range(10, override_num_blocks=3)
    assert [r["id"] for r in ds.iter_rows()] == list(range(10))
    sizes = [len(b["id"]) for b in ds.iter_batches(batch_size=4)]
    assert sizes == [4, 4, 2]
    assert [len(b["id"]) for b in ds.iter_batches(batch_size=4, drop_last=True)] == [4, 4]
    whole = [len(b["id"]) for b in ds.iter_batches(batch_size=None)]
    assert sum(whole) == 10 and len(whole) == 3
    dfs = list(ds.iter_batches(batch_size=5, batch_format="pandas"))
    assert all(isinstance(d, pd.DataFrame) for d in dfs)
    tables = list(ds.iter_batches(batch_size=5, batch_format="pyarrow", prefetch_batches=2))
    assert all(isinstance(t, pa.Table) for t in tables)
    shuffled = [int(v) for b in rd.range(100).iter_batches(batch_size=10, local_shuffle_buffer_size=30,
                                                          local_shuffle_seed=1) for v in b["id"]]
    assert sorted(shuffled) == list(range(100)) and shuffled != list(range(100))
    collated = list(ds.iter_batches(batch_size=5, _collate_fn=lambda b: int(b["id"].sum())))
    assert collated == [10, 35]
    with pytest.raises(ValueError, match="batch_format"):
        list(ds.iter_batches(batch_format="arrow"))
    it = ds.iterator()
    assert sum(len(b["id"]) for b in it.iter_batches(batch_size=3)) == 10
    assert sum(len(b["id"]) for b in it.iter_batches(batch_size=3)) == 10  # iterators re-run


def test_iter_torch_batches(ray_data):
    import torch

    batches = list(rd.range(8).iter_torch_batches(batch_size=4, dtypes=torch.float32))
    assert len(batches) == 2 and batches[0]["id"].dtype == torch.float32


def test_iter_torch_batches_converts_every_column(ray_data, monkeypatch):
    import sys
    import types

    calls = []

    def as_tensor(arr, dtype=None):
        calls.append(dtype)
        return np.asarray(arr)

    fake = types.SimpleNamespace(as_tensor=as_tensor, float32="f32")
    monkeypatch.setitem(sys.modules, "torch", fake)
    ds = rd.range_tensor(6, shape=(2,)).add_column("label", lambda df: df["data"].map(lambda v: v[0]))
    batches = list(ds.iter_torch_batches(batch_size=4, dtypes={"data": fake.float32}))
    assert [b["data"].shape for b in batches] == [(4, 2), (2, 2)]
    assert batches[0]["label"].tolist() == [0, 1, 2, 3]
    assert "f32" in calls and None in calls
    collated = list(ds.iter_torch_batches(batch_size=3, collate_fn=lambda b: len(b["data"])))
    assert collated == [3, 3]


def test_iter_torch_batches_without_torch_is_a_clear_error(ray_data, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # makes ``import torch`` fail
    with pytest.raises(ImportError, match="PyTorch"):
        next(iter(rd.range(3).iter_torch_batches()))


def test_conversions(ray_data):
    ds = rd.from_items([{"a": i, "b": str(i)} for i in range(6)], override_num_blocks=3)
    df = ds.to_pandas()
    assert list(df.columns) == ["a", "b"] and df["a"].tolist() == list(range(6))
    with pytest.raises(ValueError, match="limit"):
        ds.to_pandas(limit=2)
    refs = ds.to_arrow_refs()
    assert len(refs) == 3
    tables = solray.get(refs)
    assert all(isinstance(t, pa.Table) for t in tables) and sum(t.num_rows for t in tables) == 6
    arrays = solray.get(ds.to_numpy_refs(column="a"))
    assert np.concatenate(arrays).tolist() == list(range(6))
    dicts = solray.get(ds.to_numpy_refs())
    assert set(dicts[0]) == {"a", "b"}
    pdfs = solray.get(ds.to_pandas_refs())
    assert sum(len(d) for d in pdfs) == 6


def test_stats_and_repr(ray_data):
    ds = rd.range(20).map_batches(lambda b: b).filter(lambda r: r["id"] % 2 == 0)
    assert ds.stats() == ""  # not executed yet
    text = repr(ds)
    assert "Filter(<lambda>)" in text and "MapBatches(<lambda>)" in text
    assert "Dataset(num_rows=20, schema={id: int64})" in text
    ds.take_all()
    stats = ds.stats()
    assert "ReadRange->MapBatches(<lambda>)->Filter(<lambda>)" in stats
    assert "tasks executed" in stats and "Remote wall time" in stats
    mat = ds.materialize()
    assert repr(mat) == "MaterializedDataset(num_rows=10, schema={id: int64})"
    assert mat.stats() != ""
