"""A dataset 4x larger than the object store streams through with bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

import solray
import solray.data as rd

STORE = 100 * 1024 * 1024


@pytest.fixture(scope="module")
def small_store():
    ctx = solray.init(num_cpus=2, object_store_memory=STORE)
    yield ctx
    solray.shutdown()


def _make_rows(batch):
    # 128 KiB per row: blocks of 80 rows are 10 MiB each.
    return {"x": np.full((len(batch["id"]), 128 * 1024), 7, dtype=np.uint8)}


def test_400mb_stream_through_100mb_object_store(small_store):
    ds = rd.range(3200, override_num_blocks=40).map_batches(_make_rows)
    total = 0
    for batch in ds.iter_batches(batch_size=None):
        total += batch["x"].nbytes
    assert total == 3200 * 128 * 1024  # 400 MiB
    stats = ds._last_stats
    # The executor's working set stayed within its budget (a quarter of the store), give or
    # take the one block it may always run for progress.
    assert stats.peak_bytes <= STORE * 0.25 + 11 * 1024 * 1024
    assert "ReadRange->MapBatches(_make_rows)" in ds.stats()


def test_streaming_batches_across_operators(small_store):
    # Two operators (different resources): queued blocks between them are bounded too.
    ds = (rd.range(1600, override_num_blocks=20)
          .map_batches(_make_rows)
          .map_batches(lambda b: {"s": b["x"][:, :8].astype(np.int64).sum(axis=1)}, num_cpus=0.5))
    assert sum(int(b["s"].sum()) for b in ds.iter_batches(batch_size=100)) == 1600 * 8 * 7
    assert ds._last_stats.peak_bytes <= STORE * 0.25 + 21 * 1024 * 1024
