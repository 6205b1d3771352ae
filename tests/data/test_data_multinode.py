"""Data on a two-node loopback cluster: tasks spread out, blocks move between nodes."""

from __future__ import annotations

import numpy as np
from cluster_helpers import start_cluster

import solray
import solray.data as rd


def test_pipeline_across_two_nodes(tmp_path):
    with start_cluster(head_cpus=1, nodes=({"num_cpus": 1},)):
        def tag(batch):
            node = solray.get_runtime_context().get_node_id()
            return {"id": batch["id"], "node": np.array([node] * len(batch["id"]))}

        ds = rd.range(2000, override_num_blocks=8).map_batches(tag).random_shuffle(seed=0).materialize()
        rows = ds.take_all()
        assert sorted(r["id"] for r in rows) == list(range(2000))
        # Data spreads its tasks: both nodes ran map tasks (and the shuffle moved blocks between them).
        counts = {r["node"]: r["count()"] for r in ds.groupby("node").count().take_all()}
        assert len(counts) == 2 and sum(counts.values()) == 2000
        its = rd.range(100, override_num_blocks=4).streaming_split(2, equal=True)
        assert sum(len(list(it.iter_rows())) for it in its) == 100


def test_streaming_split_locality_hints_deliver_every_row_once():
    with start_cluster(head_cpus=1, nodes=({"num_cpus": 1},)) as cluster:
        nodes = [n.node_id for n in cluster.list_all_nodes()]
        payload = np.zeros(64 * 1024, dtype=np.uint8)  # blocks live in shared memory, on a node

        def tag(batch):
            return {"id": batch["id"], "pad": np.stack([payload] * len(batch["id"]))}

        its = rd.range(64, override_num_blocks=16).map_batches(tag).streaming_split(2, locality_hints=nodes)
        got = [r["id"] for it in its for r in it.iter_rows()]
        assert sorted(got) == list(range(64))
