"""Object spilling: a full shared-memory store moves objects to disk and restores them on
access. Nothing is lost and ``get`` returns exactly the bytes that were stored."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from cluster_helpers import node_table, start_cluster
from helpers import wait_for

import solray as ray
from solray._private.worker import state
from solray.exceptions import ObjectStoreFullError

MB = 1 << 20
STORE = 64 * MB
CHUNK = 8 * MB // 8  # int64 elements of an 8 MB array
COUNT = 16  # 128 MB of objects in a 64 MB store


def pattern(i: int) -> np.ndarray:
    """Distinct content per object, so a mix-up between objects cannot pass unnoticed."""
    return np.arange(CHUNK, dtype=np.int64) * (i + 1) + i


@ray.remote
def produce(i):
    return pattern(i)


@ray.remote
def check(arr, i):
    return bool(np.array_equal(arr, pattern(i)))


def _local_node() -> dict:
    worker = state.get_core_worker()
    return next(n for n in worker.control_call("get_nodes") if n["node_id"] == worker.node_id)


@pytest.fixture
def small_store(tmp_path):
    spill = tmp_path / "spill"
    config = {"object_spilling_config": json.dumps({"type": "filesystem", "params": {"directory_path": str(spill)}})}
    ray.init(num_cpus=2, object_store_memory=STORE, _system_config=config)
    yield spill
    ray.shutdown()


def test_puts_beyond_the_store_spill_and_restore_exactly(small_store):
    refs = [ray.put(pattern(i)) for i in range(COUNT)]
    node = _local_node()
    assert node["spilled_bytes_total"] >= (COUNT * 8 * MB - STORE)
    assert node["object_store_used"] <= STORE
    # Spilled objects live in the configured folder (a subfolder per node).
    spilled_files = [f for _, _, files in os.walk(small_store) for f in files]
    assert spilled_files
    for i in reversed(range(COUNT)):  # newest first: the oldest come back from disk
        assert np.array_equal(ray.get(refs[i]), pattern(i))
    assert _local_node()["restored_bytes_total"] > 0


def test_task_returns_spill_and_tasks_read_them_back(small_store):
    refs = [produce.remote(i) for i in range(COUNT)]
    ray.wait(refs, num_returns=COUNT)
    assert _local_node()["spilled_bytes_total"] > 0
    assert all(ray.get([check.remote(r, i) for i, r in enumerate(refs)]))


def test_values_already_read_stay_intact_when_their_object_spills(small_store):
    first = ray.put(pattern(0))
    held = ray.get(first)  # zero-copy view into shared memory
    rest = [ray.put(pattern(i)) for i in range(1, COUNT)]
    assert _local_node()["spilled_bytes_total"] > 0
    assert np.array_equal(held, pattern(0))
    assert np.array_equal(ray.get(first), pattern(0))
    del rest


def test_freed_objects_leave_no_spill_files(small_store):
    refs = [ray.put(pattern(i)) for i in range(COUNT)]
    assert any(files for _, _, files in os.walk(small_store))
    del refs
    wait_for(lambda: not any(files for _, _, files in os.walk(small_store)), 10, "spill files to go")
    wait_for(lambda: _local_node()["object_store_used"] == 0, 10, "the store to empty")


def test_object_larger_than_the_store_fails_clearly(small_store):
    with pytest.raises(ObjectStoreFullError, match="larger than the whole store"):
        ray.put(np.zeros(STORE // 8 + MB))


def test_spilled_objects_are_pulled_by_other_nodes():
    nodes = ({"num_cpus": 1, "resources": {"b": 1}, "object_store_memory": STORE},)
    with start_cluster(nodes=nodes) as c:
        (b,) = c.worker_nodes
        refs = [produce.options(resources={"b": 1}).remote(i) for i in range(COUNT)]
        ray.wait(refs, num_returns=COUNT)
        assert node_table(c)[b.node_id]["spilled_bytes_total"] > 0
        for i, r in enumerate(refs):  # read on the head: b restores, then sends
            assert np.array_equal(ray.get(r), pattern(i))
            del r
        assert node_table(c)[b.node_id]["restored_bytes_total"] > 0
