"""Creating datasets from objects and files, and writing them back (real files, real tasks)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import solray
import solray.data as rd


def ids(ds):
    return [r["id"] for r in ds.take_all()]


def test_range_and_range_tensor(ray_data):
    ds = rd.range(10)
    assert ds.count() == 10
    assert ids(ds) == list(range(10))
    assert rd.range(100, override_num_blocks=7).num_blocks() == 7
    t = rd.range_tensor(5, shape=(2, 3))
    batch = t.take_batch(5)
    assert batch["data"].shape == (5, 2, 3)
    assert batch["data"][4].tolist() == [[4, 4, 4], [4, 4, 4]]
    assert rd.range(0).take_all() == []


def test_from_items(ray_data):
    assert rd.from_items([1, 2, 3]).take_all() == [{"item": 1}, {"item": 2}, {"item": 3}]
    ds = rd.from_items([{"a": i, "b": str(i)} for i in range(5)])
    assert ds.count() == 5 and ds.columns() == ["a", "b"]
    assert ds.take(1) == [{"a": 0, "b": "0"}]
    assert rd.from_items(list(range(10)), override_num_blocks=3).num_blocks() == 3


def test_from_pandas_numpy_arrow(ray_data):
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert rd.from_pandas(df).to_pandas().equals(df)
    assert rd.from_pandas([df, df]).count() == 6
    arr = np.arange(12).reshape(6, 2)
    ds = rd.from_numpy(arr)
    assert ds.columns() == ["data"]
    np.testing.assert_array_equal(ds.take_batch(6)["data"], arr)
    assert rd.from_numpy(np.arange(4)).take_all() == [{"data": i} for i in range(4)]
    t = pa.table({"x": [1.5, 2.5]})
    assert rd.from_arrow(t).take_all() == [{"x": 1.5}, {"x": 2.5}]
    assert rd.from_arrow([t, t]).count() == 4


def test_from_refs(ray_data):
    df = pd.DataFrame({"a": [1, 2]})
    assert rd.from_pandas_refs([solray.put(df)]).take_all() == [{"a": 1}, {"a": 2}]
    assert rd.from_arrow_refs(solray.put(pa.table({"a": [3]}))).take_all() == [{"a": 3}]
    assert rd.from_numpy_refs([solray.put(np.arange(3))]).take_all() == [{"data": i} for i in range(3)]


def test_parquet_roundtrip_columns_and_filter(ray_data, tmp_path):
    path = str(tmp_path / "pq")
    ds = rd.from_items([{"id": i, "v": float(i) * 2, "s": f"s{i}"} for i in range(50)], override_num_blocks=4)
    ds.write_parquet(path)
    files = sorted(os.listdir(path))
    assert len(files) == 4 and all(f.endswith(".parquet") for f in files)
    # Ray's naming: {write uuid}_{task index:06}_{block index:06}.parquet
    assert [f.split("_", 1)[1] for f in files] == [f"{i:06}_000000.parquet" for i in range(4)]
    back = rd.read_parquet(path)
    assert back.count() == 50  # from footers
    assert back.schema().names == ["id", "v", "s"]
    assert sorted(ids(back)) == list(range(50))
    cols = rd.read_parquet(path, columns=["v"])
    assert cols.columns() == ["v"]
    assert sorted(r["v"] for r in cols.take_all()) == [float(i) * 2 for i in range(50)]
    filt = rd.read_parquet(path, filter="id >= 45")
    assert sorted(ids(filt)) == [45, 46, 47, 48, 49]
    import pyarrow.dataset as pds

    assert rd.read_parquet(path, filter=pds.field("id") < 2).count() == 2
    assert len(rd.read_parquet(path).input_files()) == 4


def test_parquet_single_file_splits_by_row_group_and_hive_partitions(ray_data, tmp_path):
    f = str(tmp_path / "one.parquet")
    pq.write_table(pa.table({"x": np.arange(1000)}), f, row_group_size=100)
    ds = rd.read_parquet(f, override_num_blocks=5)
    assert ds.num_blocks() == 5 and ds.sum("x") == sum(range(1000))
    root = tmp_path / "part"
    for k in (1, 2):
        (root / f"k={k}").mkdir(parents=True)
        pq.write_table(pa.table({"v": [k * 10, k * 10 + 1]}), str(root / f"k={k}" / "d.parquet"))
    rows = sorted((r["k"], r["v"]) for r in rd.read_parquet(str(root)).take_all())
    assert rows == [(1, 10), (1, 11), (2, 20), (2, 21)]
    paths = rd.read_parquet(str(root), include_paths=True).take_all()
    assert all(r["path"].endswith("d.parquet") for r in paths)


def test_parquet_projection_pushdown_reads_fewer_columns(ray_data, tmp_path):
    path = str(tmp_path / "wide.parquet")
    pq.write_table(pa.table({"a": np.arange(10), "b": np.arange(10) * 2}), path)
    ds = rd.read_parquet(path).select_columns(["b"])
    assert ds.take(2) == [{"b": 0}, {"b": 2}]
    stats = ds.stats()
    assert "ReadParquet" in stats and "Project" not in stats  # the projection ran in the reader


def test_csv_json_text_binary_numpy(ray_data, tmp_path):
    d = tmp_path
    base = rd.from_items([{"id": i, "name": f"n{i}"} for i in range(10)], override_num_blocks=2)
    base.write_csv(str(d / "csv"))
    csv = rd.read_csv(str(d / "csv"))
    assert sorted(ids(csv)) == list(range(10)) and set(csv.columns()) == {"id", "name"}
    base.write_json(str(d / "json"))
    assert all(f.endswith(".json") for f in os.listdir(d / "json"))
    js = rd.read_json(str(d / "json"))
    assert sorted(ids(js)) == list(range(10))
    (d / "arr.json").write_text(json.dumps([{"a": 1}, {"a": 2}]))
    assert rd.read_json(str(d / "arr.json")).take_all() == [{"a": 1}, {"a": 2}]
    (d / "t.txt").write_text("hello\n\nworld\n")
    assert rd.read_text(str(d / "t.txt")).take_all() == [{"text": "hello"}, {"text": "world"}]
    (d / "b.bin").write_bytes(b"\x00\x01")
    rows = rd.read_binary_files(str(d / "b.bin"), include_paths=True).take_all()
    assert rows[0]["bytes"] == b"\x00\x01" and rows[0]["path"].endswith("b.bin")
    np.save(d / "x.npy", np.arange(6).reshape(3, 2))
    arr = rd.read_numpy(str(d / "x.npy")).take_batch(3)["data"]
    assert arr.tolist() == [[0, 1], [2, 3], [4, 5]]
    rd.from_numpy(np.arange(6).reshape(3, 2)).write_numpy(str(d / "npy"), column="data")
    (f,) = os.listdir(d / "npy")
    assert np.load(d / "npy" / f).tolist() == [[0, 1], [2, 3], [4, 5]]


def test_globs_lists_and_missing_paths(ray_data, tmp_path):
    for i in range(3):
        (tmp_path / f"f{i}.txt").write_text(f"line{i}\n")
    (tmp_path / "other.csv").write_text("a\n1\n")
    assert rd.read_text(str(tmp_path / "*.txt")).count() == 3
    assert rd.read_text([str(tmp_path / "f0.txt"), str(tmp_path / "f1.txt")]).count() == 2
    with pytest.raises(FileNotFoundError, match="nope"):
        rd.read_parquet(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="column.*missing"):
        pq.write_table(pa.table({"a": [1]}), str(tmp_path / "a.parquet"))
        rd.read_parquet(str(tmp_path / "a.parquet"), columns=["missing"])


def test_write_modes_and_min_rows_per_file(ray_data, tmp_path):
    path = str(tmp_path / "out")
    rd.range(100, override_num_blocks=10).write_parquet(path, min_rows_per_file=50)
    files = os.listdir(path)
    assert len(files) == 2
    assert sum(pq.read_table(os.path.join(path, f)).num_rows for f in files) == 100
    rd.range(10).write_parquet(path, mode="overwrite")
    assert rd.read_parquet(path).count() == 10
    with pytest.raises(FileExistsError):
        rd.range(10).write_parquet(path, mode="error")


def test_write_parquet_partition_cols_round_trip(ray_data, tmp_path):
    path = str(tmp_path / "parts")
    rows = [{"year": 2020 + i % 2, "city": ["a b", "c/d", None][i % 3], "v": i} for i in range(12)]
    rd.from_items(rows, override_num_blocks=3).write_parquet(path, partition_cols=["year", "city"])
    folders = sorted(os.listdir(path))
    assert folders == ["year=2020", "year=2021"]
    assert sorted(os.listdir(os.path.join(path, "year=2020"))) == [
        "city=__HIVE_DEFAULT_PARTITION__", "city=a%20b", "city=c%2Fd"]
    one = os.path.join(path, "year=2021", "city=a%20b")
    assert all(pq.read_table(os.path.join(one, f)).column_names == ["v"] for f in os.listdir(one))
    back = rd.read_parquet(path).take_all()
    assert sorted(r["v"] for r in back) == list(range(12))
    by_v = {r["v"]: r for r in back}
    assert str(by_v[3]["year"]) == "2021" and by_v[0]["city"] == "a b" and by_v[1]["city"] == "c/d"
    with pytest.raises(ValueError, match="nope"):
        rd.from_items(rows).write_parquet(str(tmp_path / "bad"), partition_cols=["nope"])


def test_read_images_needs_pillow(ray_data, tmp_path):
    PIL = pytest.importorskip("PIL.Image")
    img = PIL.fromarray(np.zeros((4, 5, 3), dtype=np.uint8))
    img.save(tmp_path / "a.png")
    batch = rd.read_images(str(tmp_path)).take_batch(1)
    assert batch["image"].shape == (1, 4, 5, 3)


def test_custom_datasource_and_datasink(ray_data, tmp_path):
    class Squares(rd.Datasource):
        def get_read_tasks(self, parallelism):
            def read(i):
                return [pa.table({"sq": [i * i]})]

            return [rd.ReadTask(lambda i=i: read(i), rd.BlockMetadata(num_rows=1, size_bytes=8)) for i in range(4)]

    assert sorted(r["sq"] for r in rd.read_datasource(Squares()).take_all()) == [0, 1, 4, 9]

    class Collect(rd.Datasink):
        def write(self, blocks, ctx):
            return sum(b.num_rows for b in blocks)

        def on_write_complete(self, result):
            (tmp_path / "done").write_text(str((result.num_rows, sorted(result.write_returns))))

    rd.range(10, override_num_blocks=2).write_datasink(Collect())
    assert (tmp_path / "done").read_text() == "(10, [5, 5])"
