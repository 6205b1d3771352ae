"""Scheduling strategies across real nodes: node affinity (hard and soft, tasks and actors),
SPREAD, custom-resource and GPU placement of actors, and locality (a task goes where its
large argument lives). One loopback cluster serves the module; tests here kill nothing.

Nodes: head 127.0.0.1 (1 CPU), "b" 127.0.0.2 (2 CPUs, custom "b": 2, labels zone=b,
tier=cpu), "g" 127.0.0.3 (2 CPUs, 1 fake GPU, labels zone=g, accel=fake).
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
from cluster_helpers import node_id_here, start_cluster
from helpers import Gate, arrive_and_wait, wait_for

import solray as ray
from solray._private.scheduling.labels import matches
from solray.exceptions import ActorUnschedulableError, TaskUnschedulableError
from solray.util.scheduling_strategies import (
    DoesNotExist,
    Exists,
    In,
    NodeAffinitySchedulingStrategy,
    NodeLabelSchedulingStrategy,
    NotIn,
)

MISSING_NODE = "ab" * 16


@pytest.fixture(scope="module")
def cl():
    nodes = (
        {"num_cpus": 2, "resources": {"b": 2}, "labels": {"zone": "b", "tier": "cpu"}},
        {"num_cpus": 2, "num_gpus": 1, "labels": {"zone": "g", "accel": "fake"}},
    )
    with start_cluster(head_cpus=1, nodes=nodes) as cluster:
        by_ip = {n.node_ip_address: n for n in cluster.list_all_nodes()}
        yield SimpleNamespace(cluster=cluster, head=cluster.head_node, b=by_ip["127.0.0.2"], g=by_ip["127.0.0.3"])


@ray.remote
def where():
    return node_id_here()


@ray.remote
def where_held(address):
    arrive_and_wait(address)
    return node_id_here()


@ray.remote
class Where:
    def node(self):
        return node_id_here()

    def gpus(self):
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")


def _affinity(node, soft=False):
    return NodeAffinitySchedulingStrategy(node.node_id if hasattr(node, "node_id") else node, soft=soft)


def test_hard_affinity_runs_every_task_on_its_node(cl):
    for node in (cl.b, cl.g, cl.head):
        refs = [where.options(scheduling_strategy=_affinity(node)).remote() for _ in range(4)]
        assert ray.get(refs) == [node.node_id] * 4


def test_hard_affinity_waits_for_its_busy_node(cl):
    # b has 2 CPUs: the third task waits for one instead of running elsewhere.
    with Gate() as gate:
        refs = [where_held.options(scheduling_strategy=_affinity(cl.b)).remote(gate.address) for _ in range(3)]
        gate.wait_arrivals(2)
        ready, _ = ray.wait(refs, timeout=0.3)
        assert ready == []
    assert ray.get(refs) == [cl.b.node_id] * 3


def test_hard_affinity_to_a_missing_or_unfit_node_fails(cl):
    with pytest.raises(TaskUnschedulableError):
        ray.get(where.options(scheduling_strategy=_affinity(MISSING_NODE)).remote(), timeout=30)
    with pytest.raises(TaskUnschedulableError):
        ray.get(where.options(num_gpus=1, scheduling_strategy=_affinity(cl.b)).remote(), timeout=30)
    actor = Where.options(scheduling_strategy=_affinity(MISSING_NODE)).remote()
    with pytest.raises(ActorUnschedulableError):
        ray.get(actor.node.remote(), timeout=30)


def test_soft_affinity_prefers_its_node_and_falls_back(cl):
    assert ray.get(where.options(scheduling_strategy=_affinity(cl.g, soft=True)).remote()) == cl.g.node_id
    # A missing node, or one that can never fit the task: run where the task fits.
    anywhere = ray.get(where.options(scheduling_strategy=_affinity(MISSING_NODE, soft=True)).remote(), timeout=30)
    assert anywhere in {n.node_id for n in cl.cluster.list_all_nodes()}
    on_gpu = where.options(num_gpus=1, scheduling_strategy=_affinity(cl.b, soft=True)).remote()
    assert ray.get(on_gpu, timeout=30) == cl.g.node_id


def test_actor_affinity(cl):
    hard = Where.options(scheduling_strategy=_affinity(cl.b)).remote()
    soft = Where.options(scheduling_strategy=_affinity(MISSING_NODE, soft=True)).remote()
    assert ray.get(hard.node.remote()) == cl.b.node_id
    assert ray.get(soft.node.remote()) in {n.node_id for n in cl.cluster.list_all_nodes()}
    ray.kill(hard)
    ray.kill(soft)


def all_cpus_free():
    """SPREAD places by free resources: start from an idle cluster (earlier leases returned)."""
    wait_for(lambda: ray.available_resources().get("CPU") == 5, what="every CPU to be free")


def test_spread_places_concurrent_tasks_on_distinct_nodes(cl):
    all_cpus_free()
    with Gate() as gate:
        refs = [where_held.options(scheduling_strategy="SPREAD").remote(gate.address) for _ in range(3)]
        gate.wait_arrivals(3)
    assert set(ray.get(refs)) == {cl.head.node_id, cl.b.node_id, cl.g.node_id}


def test_spread_places_actors_on_distinct_nodes(cl):
    all_cpus_free()
    actors = [Where.options(num_cpus=1, scheduling_strategy="SPREAD").remote() for _ in range(3)]
    assert set(ray.get([a.node.remote() for a in actors])) == {cl.head.node_id, cl.b.node_id, cl.g.node_id}
    for a in actors:
        ray.kill(a)


def test_custom_resource_and_gpu_actors_go_to_their_nodes(cl):
    custom = [Where.options(resources={"b": 1}).remote() for _ in range(2)]
    gpu = Where.options(num_gpus=1).remote()
    assert ray.get([a.node.remote() for a in custom]) == [cl.b.node_id] * 2
    assert ray.get(gpu.node.remote()) == cl.g.node_id
    assert ray.get(gpu.gpus.remote()) == ([0], "0")
    for a in [*custom, gpu]:
        ray.kill(a)


@ray.remote
def make_array(n):
    return np.ones(n, dtype=np.uint8)


@ray.remote
def size_and_node(arr):
    return arr.nbytes, node_id_here()


def test_locality_a_task_runs_where_its_large_argument_lives(cl):
    for node in (cl.b, cl.g):
        big = make_array.options(scheduling_strategy=_affinity(node)).remote(4 << 20)
        ray.wait([big])
        assert ray.get(size_and_node.remote(big)) == (4 << 20, node.node_id)
    # A small argument travels inline and pulls nothing: the task may run anywhere.
    small = make_array.options(scheduling_strategy=_affinity(cl.b)).remote(16)
    assert ray.get(size_and_node.remote(small))[0] == 16


# ---------------------------------------------------------------------------- node labels


def test_label_selectors_match_as_documented():
    labels = {"zone": "b", "tier": "cpu"}
    wire = NodeLabelSchedulingStrategy({"zone": In("a", "b"), "tier": Exists()}).to_wire()
    assert wire["type"] == "node_label" and matches(labels, wire["hard"])
    assert not matches(labels, NodeLabelSchedulingStrategy({"zone": NotIn("b")}).to_wire()["hard"])
    assert matches(labels, NodeLabelSchedulingStrategy({"gpu": DoesNotExist()}).to_wire()["hard"])
    assert matches(labels, NodeLabelSchedulingStrategy({"gpu": NotIn("x")}).to_wire()["hard"])
    with pytest.raises(ValueError):
        NodeLabelSchedulingStrategy({})
    with pytest.raises(ValueError):
        NodeLabelSchedulingStrategy({"zone": "b"})


def _labels(hard, soft=None):
    return NodeLabelSchedulingStrategy(hard, soft=soft)


def test_label_strategy_places_tasks_and_actors(cl):
    assert ray.get(where.options(scheduling_strategy=_labels({"zone": In("b")})).remote(), timeout=30) == cl.b.node_id
    assert ray.get(where.options(scheduling_strategy=_labels({"accel": Exists()})).remote(), timeout=30) == cl.g.node_id
    # Only the head has no zone label; every node has its node id as a label.
    no_zone = _labels({"zone": DoesNotExist()})
    assert ray.get(where.options(scheduling_strategy=no_zone).remote(), timeout=30) == cl.head.node_id
    by_id = _labels({"ray.io/node-id": In(cl.g.node_id)})
    assert ray.get(where.options(scheduling_strategy=by_id).remote(), timeout=30) == cl.g.node_id
    # soft only: a preference among all nodes (that have room: start from an idle cluster).
    all_cpus_free()
    prefer_g = _labels({}, soft={"zone": In("g")})
    assert ray.get([where.options(scheduling_strategy=prefer_g).remote() for _ in range(2)], timeout=30) == [cl.g.node_id] * 2
    actor = Where.options(scheduling_strategy=_labels({"tier": In("cpu")})).remote()
    assert ray.get(actor.node.remote(), timeout=30) == cl.b.node_id
    ray.kill(actor)
    assert {n["NodeID"]: n["Labels"] for n in ray.nodes()}[cl.b.node_id]["zone"] == "b"


def test_label_strategy_with_no_matching_node_waits(cl):
    ref = where.options(scheduling_strategy=_labels({"zone": In("nowhere")})).remote()
    ready, _ = ray.wait([ref], timeout=0.3)
    assert ready == []
    ray.cancel(ref)
