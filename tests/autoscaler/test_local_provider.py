"""The autoscaler on the ``local`` provider: real node daemons join and leave a real cluster."""

from __future__ import annotations

import os

import numpy as np
import pytest
from cluster_helpers import start_cluster
from helpers import Gate, Mailbox, arrive_and_wait, post, wait_for

import solray as ray
from solray.autoscaler import AutoscalerConfig, LocalNodeProvider, Monitor, NodeType

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def autoscaled():
    """A 1-CPU head and a running autoscaler that may add two 1-CPU workers."""
    with start_cluster(head_cpus=1) as cluster:
        provider = LocalNodeProvider(cluster.address, cluster.token, cluster.session_root,
                                     object_store_memory=64 * 1024 * 1024)
        config = AutoscalerConfig({"cpu1": NodeType("cpu1", {"CPU": 1, "worker_slot": 1}, max_workers=2)},
                                  idle_timeout_s=1.5)
        lines: list[str] = []
        monitor = Monitor(config, provider, cluster.address, cluster.token, interval_s=0.2, log=lines.append).start()
        try:
            yield cluster, provider, monitor, lines
        finally:
            monitor.stop()
            for node in provider.non_terminated_nodes():
                provider.terminate_node(node.provider_id)


@ray.remote(num_cpus=1)
def hold(address):
    arrive_and_wait(address)  # all three run at once, or the gate never opens
    return ray.get_runtime_context().get_node_id()


def test_workload_needing_three_nodes_scales_up_then_down(autoscaled):
    cluster, provider, monitor, lines = autoscaled
    head_id = cluster.head_node.node_id
    with Gate() as gate:
        refs = [hold.remote(gate.address) for _ in range(3)]
        gate.wait_arrivals(3, timeout=60)
        assert len(provider.non_terminated_nodes()) == 2
    assert len(set(ray.get(refs, timeout=60))) == 3
    assert head_id in ray.get(refs)
    assert any("adding" in line and "cpu1" in line for line in lines)
    # Idle for 1.5 s: both workers go, and the node table says so.
    wait_for(lambda: not provider.non_terminated_nodes(), 30, "idle workers to be removed")
    assert monitor.terminated == 2
    wait_for(lambda: [n["NodeID"] for n in ray.nodes() if n["Alive"]] == [head_id], 15, "only the head alive")


@ray.remote(resources={"worker_slot": 1}, max_retries=0)
def produce(mailbox, seed):
    post(mailbox, ray.get_runtime_context().get_node_id())
    return np.random.default_rng(seed).integers(0, 1000, size=300_000)  # 2.4 MB: shared memory


@ray.remote(num_cpus=0)
def total(array):
    return int(array.sum())


def test_scale_down_while_objects_live_loses_none(autoscaled):
    cluster, provider, monitor, lines = autoscaled
    mailbox = Mailbox()
    refs = [produce.remote(mailbox.address, seed) for seed in range(3)]
    made_on = {mailbox.get(60) for _ in refs}
    assert cluster.head_node.node_id not in made_on  # only worker nodes have worker_slot
    ray.wait(refs, num_returns=3, timeout=60, fetch_local=False)
    # The workers go idle and are drained and removed while the driver still holds the refs.
    wait_for(lambda: not provider.non_terminated_nodes(), 60, "idle workers to be removed")
    assert any("moved" in line for line in lines), lines
    expected = [np.random.default_rng(seed).integers(0, 1000, size=300_000) for seed in range(3)]
    for ref, want in zip(refs, expected, strict=True):
        np.testing.assert_array_equal(ray.get(ref, timeout=30), want)
        assert ray.get(total.remote(ref), timeout=30) == int(want.sum())
    mailbox.close()


def test_request_resources_adds_nodes_and_bad_input(autoscaled):
    from solray.autoscaler.sdk import request_resources

    cluster, provider, monitor, lines = autoscaled
    with pytest.raises(TypeError, match="num_cpus"):
        request_resources(num_cpus=-1)
    request_resources(bundles=[{"worker_slot": 1}])
    wait_for(lambda: len(provider.non_terminated_nodes()) == 1, 30, "a node for the request")
    request_resources()  # cleared: the node is idle and goes
    wait_for(lambda: not provider.non_terminated_nodes(), 30, "the requested node to go")


def test_head_publishes_pending_demand():
    """Queued tasks, unplaceable actors, pending placement groups and request_resources, as the
    control service reports them to the autoscaler (no autoscaler runs here)."""
    from solray._private.api import query_control
    from solray.autoscaler.sdk import request_resources
    from solray.util.placement_group import placement_group

    with start_cluster(head_cpus=1) as cluster:
        @ray.remote(resources={"gadget": 1})
        def needs_gadget():
            return 1

        @ray.remote(resources={"gizmo": 2}, num_cpus=0)
        class NeedsGizmo:
            pass

        task = needs_gadget.remote()
        actor = NeedsGizmo.remote()
        pg = placement_group([{"CPU": 1, "widget": 1}] * 2, strategy="STRICT_PACK")
        request_resources(num_cpus=2, bundles=[{"GPU": 1}])

        def demand():
            d = query_control(cluster.address, cluster.token, "get_resource_demand")
            return d if d["leases"] and d["actors"] and d["placement_groups"] else None

        d = wait_for(demand, 30, "the demand to be published")
        assert {"gadget": 1.0, "CPU": 1.0} in d["leases"]
        assert any(a.get("gizmo") == 2.0 for a in d["actors"])
        assert d["placement_groups"] == [{"bundles": [{"CPU": 1.0, "widget": 1.0}] * 2, "strategy": "STRICT_PACK"}]
        assert d["requested"] == [{"CPU": 1.0}, {"CPU": 1.0}, {"GPU": 1.0}]
        request_resources()
        assert query_control(cluster.address, cluster.token, "get_resource_demand")["requested"] == []
        del task, actor, pg
