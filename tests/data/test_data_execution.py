"""Execution behaviour: laziness, fusion, errors, context and progress reporting."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import solray
import solray.data as rd
from solray.data import DataContext


def test_nothing_runs_until_consumed(ray_data, counter, tmp_path):
    rd.range(20).write_parquet(str(tmp_path))

    def tick(batch):
        solray.get(counter.inc.remote())
        return batch

    ds = (rd.read_parquet(str(tmp_path))
          .map_batches(tick)
          .map(lambda r: {"id": r["id"] + 1})
          .filter(lambda r: r["id"] > 3)
          .random_shuffle()
          .sort("id")
          .groupby("id").count())
    repr(ds)
    ds.schema(fetch_if_missing=False)
    assert solray.get(counter.get.remote()) == 0
    assert ds.count() == 17
    assert solray.get(counter.get.remote()) > 0


def test_map_filter_map_fuses_into_one_task_per_block(ray_data, counter):
    def record(stage):
        def fn(row):
            task = solray.get_runtime_context().get_task_id()
            solray.get(counter.inc.remote(f"{stage}:{task}"))
            return row
        return fn

    def keep(row):
        return record("filter")(row) is not None

    ds = rd.range(12, override_num_blocks=4).map(record("map1")).filter(keep).map(record("map2"))
    assert len(ds.take_all()) == 12
    counts = solray.get(counter.all.remote())
    tasks_by_stage = {}
    for key in counts:
        stage, task = key.split(":", 1)
        tasks_by_stage.setdefault(stage, set()).add(task)
    # Every stage ran in the same 4 tasks: one task per block for the whole chain.
    assert len(tasks_by_stage["map1"]) == 4
    assert tasks_by_stage["map1"] == tasks_by_stage["filter"] == tasks_by_stage["map2"]
    stats = ds.stats()
    assert "Operator 1 ReadRange->Map(fn)->Filter(keep)->Map(fn): 4 tasks executed" in stats


def test_different_resources_are_not_fused(ray_data):
    ds = rd.range(4).map_batches(lambda b: b).map_batches(lambda b: b, num_cpus=0.5)
    ds.take_all()
    assert "Operator 2" in ds.stats()


def test_udf_errors_keep_their_type_and_name_the_operator(ray_data):
    def bad(batch):
        raise ValueError("bad value in batch")

    with pytest.raises(ValueError, match="bad value in batch") as info:
        rd.range(4).map_batches(bad).take_all()
    assert "MapBatches(bad)" in str(info.value) or "MapBatches(bad)" in "".join(
        getattr(info.value, "__notes__", []))


def test_bad_udf_outputs_are_clear(ray_data):
    with pytest.raises(TypeError, match="map_batches functions must return"):
        rd.range(3).map_batches(lambda b: 5).take_all()
    with pytest.raises(ValueError, match="different lengths"):
        rd.range(3).map_batches(lambda b: {"a": [1], "b": [1, 2]}).take_all()
    with pytest.raises(TypeError, match="must return a dict"):
        rd.range(3).map(lambda r: [r]).take_all()
    with pytest.raises(TypeError, match="must return a bool"):
        rd.range(3).filter(lambda r: "yes").take_all()


def test_bad_arguments_fail_at_call_time(ray_data):
    ds = rd.range(3)
    with pytest.raises(ValueError, match="batch_format"):
        ds.map_batches(lambda b: b, batch_format="arrow")
    with pytest.raises(ValueError, match="batch_size"):
        ds.map_batches(lambda b: b, batch_size=0)
    with pytest.raises(TypeError, match="fn must be"):
        ds.map(42)
    with pytest.raises(ValueError, match="autoscaling range"):
        ds.map_batches(lambda b: b, concurrency=(1, 2))
    with pytest.raises(ValueError, match="limit"):
        ds.limit(-1)
    with pytest.raises(ValueError, match="exactly one"):
        ds.repartition()
    with pytest.raises(ValueError, match="test_size"):
        ds.train_test_split(test_size=1.5)
    with pytest.raises(TypeError, match="cols"):
        ds.select_columns(3)


class _AddOne:
    def __call__(self, batch):
        return {"id": batch["id"] + 1}


class _Double:
    def __call__(self, batch):
        return {"id": batch["id"] * 2}


def test_two_actor_pools_larger_than_the_cluster_still_finish(ray_data):
    # Each pool wants both CPUs: the second starts once the first is done, even when the
    # memory budget holds the first one back.
    DataContext.get_current().execution_options.resource_limits.object_store_memory = 2000
    ds = rd.range(100, override_num_blocks=10).map_batches(_AddOne, concurrency=2).map_batches(
        _Double, concurrency=2)
    assert sorted(r["id"] for r in ds.take_all()) == [2 * (i + 1) for i in range(100)]


def test_impossible_resource_requests_fail_fast(ray_data):
    with pytest.raises(ValueError, match="num_gpus=1.*0 GPUs"):
        rd.range(3).map_batches(lambda b: b, num_gpus=1).take_all()
    with pytest.raises(ValueError, match="num_cpus=8"):
        rd.range(3).map(lambda r: r, num_cpus=8).take_all()


def test_context_block_size_and_resource_limits(ray_data):
    ctx = DataContext.get_current()
    ctx.target_max_block_size = 1024
    ds = rd.range(1000, override_num_blocks=1).map_batches(lambda b: b)
    assert ds.materialize().num_blocks() == 8  # 8000 bytes cut into 1 KiB blocks
    ctx.target_max_block_size = 128 * 1024 * 1024
    ctx.execution_options.resource_limits.cpu = 1
    assert rd.range(100).map_batches(lambda b: b).count() == 100
    ctx.execution_options.resource_limits = rd.ExecutionResources(object_store_memory=10_000)
    assert rd.range(5000, override_num_blocks=20).map_batches(lambda b: b).count() == 5000


def test_progress_reporting_when_not_a_tty(ray_data, caplog, monkeypatch):
    from solray.data._internal import progress

    monkeypatch.setattr(progress, "_LOG_AFTER_S", 0.0)
    with caplog.at_level(logging.INFO, logger="solray.data"):
        rd.range(10).map_batches(lambda b: b).take_all()
    assert any("finished: 10 rows" in r.getMessage() for r in caplog.records)
    caplog.clear()
    DataContext.get_current().enable_progress_bars = False
    with caplog.at_level(logging.INFO, logger="solray.data"):
        rd.range(10).map_batches(lambda b: b).take_all()
    assert not any("finished" in r.getMessage() for r in caplog.records)


def test_progress_bars_in_a_terminal(ray_data, monkeypatch):
    from solray.data._internal import progress

    bars = []

    class FakeTqdm:
        def __init__(self, **kw):
            self.kw = kw
            self.n = 0
            bars.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    import tqdm

    monkeypatch.setattr(tqdm, "tqdm", FakeTqdm)
    rd.range(30, override_num_blocks=3).map_batches(lambda b: b).take_all()
    assert len(bars) == 1 and bars[0].n == 30 and "MapBatches" in bars[0].kw["desc"]
    assert getattr(bars[0], "closed", False)


def test_dataset_of_tensors_end_to_end(ray_data):
    ds = rd.range_tensor(16, shape=(4, 4)).map_batches(lambda b: {"data": b["data"] * 2.0})
    total = sum(float(b["data"].sum()) for b in ds.iter_batches(batch_size=5))
    assert total == 2.0 * 16 * sum(range(16))
    assert ds.take(1)[0]["data"].shape == (4, 4)
    assert isinstance(ds.take(1)[0]["data"], np.ndarray)
