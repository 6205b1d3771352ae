"""Transforms: map-likes, column ops, shuffles, sorts, groupby, union/zip, splits."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import solray
import solray.data as rd
from solray.data.aggregate import AggregateFn, Count, Max, Mean, Min, Std, Sum


def ids(ds):
    return [r["id"] for r in ds.take_all()]


def test_map_flat_map_filter(ray_data):
    ds = rd.range(6)
    assert ds.map(lambda r: {"id": r["id"], "sq": r["id"] ** 2}).take(3) == [
        {"id": 0, "sq": 0}, {"id": 1, "sq": 1}, {"id": 2, "sq": 4}]
    assert ids(ds.flat_map(lambda r: [r] * (r["id"] % 3))) == [1, 2, 2, 4, 5, 5]
    assert ids(ds.filter(lambda r: r["id"] % 2 == 0)) == [0, 2, 4]
    assert ids(ds.filter(expr="id > 3")) == [4, 5]
    assert ds.filter(lambda r: False).take_all() == []


def test_map_batches_formats_and_batch_size(ray_data):
    ds = rd.range(10, override_num_blocks=2)

    def numpy_fn(batch):
        assert isinstance(batch, dict) and isinstance(batch["id"], np.ndarray)
        return {"id": batch["id"] + 1, "n": np.full(len(batch["id"]), len(batch["id"]))}

    out = ds.map_batches(numpy_fn, batch_size=3).take_all()
    assert [r["id"] for r in out] == list(range(1, 11))
    # Two blocks of 5 rows, each cut into batches of 3 and 2 (the batch size value per row).
    assert [r["n"] for r in out] == [3, 3, 3, 2, 2] * 2

    def pandas_fn(df):
        assert isinstance(df, pd.DataFrame)
        return df.assign(x=df["id"] * 10)

    assert ds.map_batches(pandas_fn, batch_format="pandas").take(2) == [{"id": 0, "x": 0}, {"id": 1, "x": 10}]

    def arrow_fn(t):
        assert isinstance(t, pa.Table)
        return t.append_column("y", pa.array(["a"] * t.num_rows))

    assert ds.map_batches(arrow_fn, batch_format="pyarrow").take(1) == [{"id": 0, "y": "a"}]

    def gen_fn(batch):
        for v in batch["id"]:
            yield {"id": np.array([v, v])}

    assert len(ds.map_batches(gen_fn).take_all()) == 20


def test_map_batches_fn_args_and_resources(ray_data):
    def add(batch, k, *, mul):
        return {"id": (batch["id"] + k) * mul}

    ds = rd.range(4).map_batches(add, fn_args=(1,), fn_kwargs={"mul": 2}, num_cpus=0.5, memory=10 * 1024**2)
    assert ids(ds) == [2, 4, 6, 8]
    assert ids(rd.range(4).map_batches(add, fn_args=(0,), fn_kwargs={"mul": 1}, concurrency=1)) == [0, 1, 2, 3]


def test_callable_class_on_actor_pool(ray_data, counter):
    class Predictor:
        def __init__(self, offset, counter):
            self.offset = offset
            self.counter = counter
            solray.get(counter.inc.remote("init"))

        def __call__(self, batch):
            solray.get(self.counter.inc.remote("call"))
            return {"pred": batch["id"] + self.offset}

    ds = rd.range(40, override_num_blocks=8).map_batches(
        Predictor, fn_constructor_args=(100, counter), concurrency=2, batch_size=5)
    assert sorted(r["pred"] for r in ds.take_all()) == list(range(100, 140))
    # Constructed once per actor (at most 2), not once per batch (8 batches).
    assert 1 <= solray.get(counter.get.remote("init")) <= 2
    assert solray.get(counter.get.remote("call")) == 8
    auto = rd.range(10).map_batches(Predictor, fn_constructor_kwargs={"offset": 1, "counter": counter},
                                    concurrency=(1, 2))
    assert ids(auto.rename_columns({"pred": "id"})) == list(range(1, 11))


def test_column_ops(ray_data):
    ds = rd.from_items([{"a": i, "b": i * 2, "c": str(i)} for i in range(3)])
    assert ds.select_columns(["c", "a"]).take(1) == [{"c": "0", "a": 0}]
    assert ds.select_columns("b").columns() == ["b"]
    assert ds.drop_columns(["b", "c"]).take_all() == [{"a": 0}, {"a": 1}, {"a": 2}]
    assert ds.rename_columns({"a": "x"}).columns() == ["x", "b", "c"]
    assert ds.rename_columns(["p", "q", "r"]).columns() == ["p", "q", "r"]
    added = ds.add_column("d", lambda df: df["a"] + df["b"])
    assert [r["d"] for r in added.take_all()] == [0, 3, 6]
    np_added = ds.add_column("e", lambda b: b["a"] * 3, batch_format="numpy")
    assert [r["e"] for r in np_added.take_all()] == [0, 3, 6]
    with pytest.raises(ValueError, match=r"column\(s\) \['zzz'\] not found"):
        ds.select_columns(["zzz"]).take_all()
    with pytest.raises(ValueError, match="zzz"):
        ds.drop_columns(["zzz"]).materialize()


def test_limit(ray_data):
    assert ids(rd.range(100).limit(3)) == [0, 1, 2]
    assert rd.range(100).limit(3).count() == 3
    assert ids(rd.range(100).map_batches(lambda b: b).limit(2)) == [0, 1]
    assert rd.range(10).limit(0).take_all() == []


def test_random_shuffle_and_block_order(ray_data):
    ds = rd.range(200, override_num_blocks=4)
    a = ids(ds.random_shuffle(seed=7))
    assert sorted(a) == list(range(200)) and a != list(range(200))
    assert a == ids(ds.random_shuffle(seed=7))  # seeded: reproducible
    b = rd.range(40, override_num_blocks=8).randomize_block_order(seed=3)
    values = ids(b)
    assert sorted(values) == list(range(40))
    runs = [values[i:i + 5] for i in range(0, 40, 5)]
    assert all(r == list(range(r[0], r[0] + 5)) for r in runs)  # blocks stay intact
    sampled = rd.range(1000).random_sample(0.1, seed=1).count()
    assert 30 < sampled < 200


def test_repartition(ray_data):
    ds = rd.range(100, override_num_blocks=3).repartition(7)
    mat = ds.materialize()
    assert mat.num_blocks() == 7 and ids(mat) == list(range(100))
    assert rd.range(100).repartition(target_num_rows_per_block=30).materialize().num_blocks() == 4
    shuffled = rd.range(50).repartition(5, shuffle=True).materialize()
    assert shuffled.num_blocks() == 5 and sorted(ids(shuffled)) == list(range(50))


def test_sort(ray_data):
    data = [{"k": (i * 37) % 101, "s": f"x{i % 7}"} for i in range(101)]
    ds = rd.from_items(data, override_num_blocks=5)
    assert [r["k"] for r in ds.sort("k").take_all()] == list(range(101))
    assert [r["k"] for r in ds.sort("k", descending=True).take(3)] == [100, 99, 98]
    multi = ds.sort(["s", "k"], descending=[False, True]).take_all()
    assert multi == sorted(data, key=lambda r: (r["s"], -r["k"]))
    strs = rd.from_items([{"s": s} for s in ["b", None, "a", "c"]]).sort("s").take_all()
    assert [r["s"] for r in strs] == ["a", "b", "c", None]
    with pytest.raises(ValueError, match="nope"):
        ds.sort("nope").materialize()


def test_groupby_aggregations(ray_data):
    ds = rd.from_items([{"k": i % 3, "v": float(i), "w": i} for i in range(30)], override_num_blocks=4)
    assert ds.groupby("k").count().take_all() == [{"k": 0, "count()": 10}, {"k": 1, "count()": 10},
                                                   {"k": 2, "count()": 10}]
    sums = {r["k"]: r["sum(v)"] for r in ds.groupby("k").sum("v").take_all()}
    assert sums == {k: float(sum(range(k, 30, 3))) for k in range(3)}
    means = ds.groupby("k").mean(["v", "w"]).take_all()
    assert means[1] == {"k": 1, "mean(v)": 14.5, "mean(w)": 14.5}
    stds = {r["k"]: r["std(v)"] for r in ds.groupby("k").std("v").take_all()}
    assert stds[0] == pytest.approx(np.std(np.arange(0, 30, 3), ddof=1))
    assert ds.groupby("k").min("w").take_all()[2] == {"k": 2, "min(w)": 2}
    assert ds.groupby("k").max("w").take_all()[0] == {"k": 0, "max(w)": 27}
    multi = ds.groupby("k").aggregate(Count(), Sum("w"), Mean("v", alias_name="avg")).take_all()
    assert multi[0] == {"k": 0, "count()": 10, "sum(w)": 135, "avg": 13.5}
    two_keys = rd.from_items([{"a": i % 2, "b": i % 3, "v": 1} for i in range(12)]).groupby(["a", "b"]).count()
    assert two_keys.count() == 6 and all(r["count()"] == 2 for r in two_keys.take_all())


def test_groupby_custom_aggregate_and_map_groups(ray_data):
    ds = rd.from_items([{"k": "ab"[i % 2], "v": i} for i in range(10)], override_num_blocks=3)
    concat = AggregateFn(
        init=lambda k: [], accumulate_row=lambda acc, row: acc + [row["v"]],
        merge=lambda a, b: a + b, finalize=lambda acc: sorted(acc), name="values")
    out = ds.groupby("k").aggregate(concat).take_all()
    assert out == [{"k": "a", "values": [0, 2, 4, 6, 8]}, {"k": "b", "values": [1, 3, 5, 7, 9]}]

    def normalize(group):
        return {"k": group["k"], "z": group["v"] - group["v"].mean()}

    z = ds.groupby("k").map_groups(normalize).take_all()
    assert sorted(r["z"] for r in z if r["k"] == "a") == [-4.0, -2.0, 0.0, 2.0, 4.0]

    def size(df):
        return pd.DataFrame({"k": [df["k"].iloc[0]], "n": [len(df)]})

    assert ds.groupby("k").map_groups(size, batch_format="pandas").take_all() == [
        {"k": "a", "n": 5}, {"k": "b", "n": 5}]


def test_whole_dataset_aggregations(ray_data):
    ds = rd.from_items([{"v": float(i), "w": i} for i in range(10)], override_num_blocks=3)
    assert ds.sum("v") == 45.0 and ds.min("w") == 0 and ds.max("w") == 9
    assert ds.mean("v") == 4.5
    assert ds.std("v") == pytest.approx(np.std(np.arange(10), ddof=1))
    assert ds.std("v", ddof=0) == pytest.approx(np.std(np.arange(10)))
    assert ds.sum(["v", "w"]) == {"sum(v)": 45.0, "sum(w)": 45}
    assert ds.aggregate(Count(), Max("w"), Min("v")) == {"count()": 10, "max(w)": 9, "min(v)": 0.0}
    assert sorted(rd.from_items([1, 2, 2, 3, 3]).unique("item")) == [1, 2, 3]
    nulls = rd.from_items([{"x": 1}, {"x": None}, {"x": 3}])
    assert nulls.sum("x") == 4 and nulls.mean("x") == 2.0
    assert nulls.sum("x", ignore_nulls=False) is None
    assert rd.range(5).aggregate(Std("id")) == {"std(id)": pytest.approx(np.std(np.arange(5), ddof=1))}


def test_union_and_zip(ray_data):
    assert ids(rd.range(3).union(rd.range(2), rd.range(1))) == [0, 1, 2, 0, 1, 0]
    z = rd.range(5, override_num_blocks=2).zip(rd.from_items([{"id": i * 10} for i in range(5)],
                                                               override_num_blocks=3))
    assert z.take_all() == [{"id": i, "id_1": i * 10} for i in range(5)]
    with pytest.raises(ValueError, match="different number of rows"):
        rd.range(3).zip(rd.range(4)).take_all()


def test_split_variants(ray_data):
    parts = rd.range(10, override_num_blocks=5).split(3)
    assert sorted(p.count() for p in parts) == [2, 4, 4] or sum(p.count() for p in parts) == 10
    eq = rd.range(10).split(3, equal=True)
    assert [p.count() for p in eq] == [3, 3, 3]
    a, b, c = rd.range(10).split_at_indices([3, 7])
    assert (ids(a), ids(b), ids(c)) == ([0, 1, 2], [3, 4, 5, 6], [7, 8, 9])
    x, y = rd.range(10).split_proportionately([0.2])
    assert (x.count(), y.count()) == (2, 8)
    train, test = rd.range(10).train_test_split(test_size=0.2)
    assert ids(test) == [8, 9] and train.count() == 8
    train, test = rd.range(100).train_test_split(test_size=25, shuffle=True, seed=1)
    assert test.count() == 25 and sorted(ids(train) + ids(test)) == list(range(100))
    assert ids(test) != list(range(75, 100))


def test_train_test_split_stratified(ray_data):
    ds = rd.from_items([{"label": i % 2, "x": i} for i in range(40)])
    train, test = ds.train_test_split(test_size=0.25, stratify="label")
    labels = [r["label"] for r in test.take_all()]
    assert sorted(labels) == [0] * 5 + [1] * 5 and train.count() == 30


def _consume_all(iterators, per_batch=None):
    results = [None] * len(iterators)

    def run(i):
        results[i] = [int(v) for b in iterators[i].iter_batches(batch_size=4) for v in b["id"]]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(iterators))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_streaming_split(ray_data):
    its = rd.range(100, override_num_blocks=10).streaming_split(2)
    a, b = _consume_all(its)
    assert sorted(a + b) == list(range(100))
    eq = rd.range(101, override_num_blocks=7).streaming_split(3, equal=True)
    res = _consume_all(eq)
    assert [len(r) for r in res] == [33, 33, 33]
    assert len(set(res[0]) | set(res[1]) | set(res[2])) == 99
    # A second epoch re-executes the dataset.
    again = _consume_all(eq)
    assert [len(r) for r in again] == [33, 33, 33]


def test_streaming_split_in_remote_workers(ray_data):
    its = rd.range(40, override_num_blocks=4).streaming_split(2, equal=True)

    @solray.remote
    def consume(it):
        return sum(int(v) for b in it.iter_batches(batch_size=8) for v in b["id"])

    totals = solray.get([consume.remote(it) for it in its])
    assert sum(totals) == sum(range(40))


def test_unique_and_materialize(ray_data):
    ds = rd.from_items([{"c": c} for c in "abcab"])
    assert sorted(ds.unique("c")) == ["a", "b", "c"]
    mat = rd.range(10).map(lambda r: {"id": r["id"] * 2}).materialize()
    assert isinstance(mat, rd.MaterializedDataset)
    assert mat.count() == 10 and ids(mat)[:3] == [0, 2, 4]
    assert ids(mat.map(lambda r: {"id": r["id"] + 1}))[:2] == [1, 3]
