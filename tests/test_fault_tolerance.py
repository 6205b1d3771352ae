"""Surviving failures on a real loopback cluster: dead nodes, lost objects, dead owners,
head restarts, application errors, memory pressure.

Each test that kills something starts a cluster of its own (nodes on 127.0.0.N; node death
after ``cluster_helpers.DEATH_TIMEOUT_S`` without heartbeats).
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from cluster_helpers import (
    all_gone,
    node_alive,
    node_id_here,
    start_cluster,
    wait_node_dead,
    worker_pids,
)
from helpers import Gate, Mailbox, arrive_and_wait, post, wait_for

import solray as ray
from solray._private.worker import state
from solray.exceptions import (
    ActorDiedError,
    NodeDiedError,
    ObjectLostError,
    OutOfMemoryError,
    OwnerDiedError,
    RayActorError,
)

MB = 1 << 20
N = 2 * MB // 8  # int64 elements of a 2 MB array: lives in shared memory, not inline


@ray.remote
def where():
    return node_id_here()


@ray.remote
def report_then_wait(mailbox, gate):
    """Tell the test where this attempt runs, then hold until the gate opens."""
    post(mailbox, node_id_here())
    arrive_and_wait(gate)
    return node_id_here()


@ray.remote
def make_array(n, marker=None):
    if marker is not None:
        with open(marker, "a") as f:
            f.write(node_id_here() + "\n")
    return np.arange(n, dtype=np.int64)


@ray.remote
def total(arr):
    return node_id_here(), int(arr.sum())


def _by_id(cluster, node_id):
    return next(n for n in cluster.list_all_nodes() if n.node_id == node_id)


def _reconstructions() -> int:
    return state.get_core_worker().reconstructions


# ---------------------------------------------------------------------- node death
def test_node_death_detected_by_missed_heartbeats():
    with start_cluster(nodes=({"num_cpus": 1, "resources": {"b": 1}},)) as c:
        (b,) = c.worker_nodes
        assert ray.get(where.options(resources={"b": 1}).remote()) == b.node_id
        workers = worker_pids(b)
        assert workers
        # A frozen node keeps its connections open: only the missing heartbeats tell.
        os.kill(b.process.pid, signal.SIGSTOP)
        try:
            wait_node_dead(c, b, timeout=15)
            nodes = {n["NodeID"]: n for n in ray.nodes()}
            assert nodes[b.node_id]["Alive"] is False
            assert nodes[c.head_node.node_id]["Alive"] is True
            assert "b" not in ray.cluster_resources()
        finally:
            os.kill(b.process.pid, signal.SIGCONT)
        # Woken up, the node learns it was declared dead and exits with its workers.
        wait_for(lambda: b.process.poll() is not None, 15, "the dead node to exit")
        wait_for(lambda: all_gone(workers), 15, "the dead node's workers to exit")


def test_killed_node_is_marked_dead_and_its_workers_exit():
    with start_cluster(nodes=({"num_cpus": 1, "resources": {"b": 1}},)) as c:
        (b,) = c.worker_nodes
        ray.get(where.options(resources={"b": 1}).remote())
        workers = worker_pids(b)
        c.remove_node(b, allow_graceful=False)
        assert not node_alive(c, b)
        assert not [n for n in ray.nodes() if n["NodeID"] == b.node_id][0]["Alive"]
        wait_for(lambda: all_gone(workers), 15, "the killed node's workers to exit")
        assert ray.get(where.remote()) == c.head_node.node_id  # the rest keeps working


def test_task_retried_on_another_node():
    nodes = ({"num_cpus": 1, "resources": {"w": 1}}, {"num_cpus": 1, "resources": {"w": 1}})
    with start_cluster(nodes=nodes) as c, Gate() as gate:
        box = Mailbox()
        ref = report_then_wait.options(resources={"w": 1}).remote(box.address, gate.address)
        first = box.get()
        gate.wait_arrivals(1)
        c.remove_node(_by_id(c, first), allow_graceful=False)
        gate.release()
        second = ray.get(ref, timeout=30)
        assert second != first and second in {n.node_id for n in c.worker_nodes}
        box.close()


def test_task_out_of_retries_raises_node_died_error():
    with start_cluster(nodes=({"num_cpus": 1, "resources": {"w": 1}},)) as c, Gate() as gate:
        box = Mailbox()
        ref = report_then_wait.options(resources={"w": 1}, max_retries=0).remote(box.address, gate.address)
        box.get()
        gate.wait_arrivals(1)
        (b,) = c.worker_nodes
        c.remove_node(b, allow_graceful=False)
        with pytest.raises(NodeDiedError, match="report_then_wait"):
            ray.get(ref, timeout=30)
        box.close()


@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n

    def node(self):
        return node_id_here()

    def slow_node(self, mailbox, gate):
        post(mailbox, node_id_here())
        arrive_and_wait(gate)
        return node_id_here()


def test_actor_restarted_on_another_node():
    nodes = ({"num_cpus": 1, "resources": {"w": 1}}, {"num_cpus": 1, "resources": {"w": 1}})
    with start_cluster(nodes=nodes) as c, Gate() as gate:
        a = Counter.options(resources={"w": 1}, max_restarts=1, max_task_retries=1).remote()
        assert ray.get([a.incr.remote() for _ in range(3)]) == [1, 2, 3]
        first = ray.get(a.node.remote())
        box = Mailbox()
        inflight = a.slow_node.remote(box.address, gate.address)
        assert box.get() == first
        gate.wait_arrivals(1)
        c.remove_node(_by_id(c, first), allow_graceful=False)
        gate.release()
        # The call in flight is retried on the new incarnation, on the surviving node.
        second = ray.get(inflight, timeout=30)
        assert second != first
        assert ray.get(a.node.remote()) == second
        assert ray.get(a.incr.remote()) == 1  # a restarted actor starts from __init__
        box.close()


def test_actor_without_restarts_dies_with_its_node():
    with start_cluster(nodes=({"num_cpus": 1, "resources": {"w": 1}},)) as c:
        a = Counter.options(resources={"w": 1}).remote()
        assert ray.get(a.incr.remote()) == 1
        (b,) = c.worker_nodes
        c.remove_node(b, allow_graceful=False)
        with pytest.raises(ActorDiedError):
            ray.get(a.incr.remote(), timeout=30)


def test_actor_restarts_exhausted_raises_actor_died_error():
    nodes = ({"num_cpus": 1, "resources": {"w": 1}}, {"num_cpus": 1, "resources": {"w": 1}})
    with start_cluster(nodes=nodes) as c:
        a = Counter.options(resources={"w": 1}, max_restarts=1).remote()
        c.remove_node(_by_id(c, ray.get(a.node.remote())), allow_graceful=False)
        node = wait_for(lambda: _try(lambda: ray.get(a.node.remote(), timeout=30)), 30, "the restart")
        c.remove_node(_by_id(c, node), allow_graceful=False)
        with pytest.raises(RayActorError, match="max_restarts=1"):
            ray.get(a.incr.remote(), timeout=30)


def _try(fn):
    """``fn()``, or None if it raised an actor error (for polling a restarting actor)."""
    try:
        return fn()
    except RayActorError:
        return None


# ---------------------------------------------------------------------- lost objects
def test_lineage_reconstruction_of_a_lost_task_output(tmp_path):
    marker = str(tmp_path / "runs")
    with start_cluster(nodes=({"num_cpus": 1, "resources": {"w": 1}},)) as c:
        (b,) = c.worker_nodes
        ref = make_array.options(resources={"w": 1}).remote(N, marker)
        ray.wait([ref])
        c.add_node(num_cpus=1, resources={"w": 1})
        c.remove_node(b, allow_graceful=False)
        before = _reconstructions()
        arr = ray.get(ref, timeout=30)  # its only copy died with b: the task runs again
        assert np.array_equal(arr, np.arange(N, dtype=np.int64))
        assert _reconstructions() == before + 1
        runs = open(marker).read().split()
        assert len(runs) == 2 and runs[0] == b.node_id and runs[1] != b.node_id


def test_lost_argument_of_a_downstream_task_is_rebuilt(tmp_path):
    marker = str(tmp_path / "runs")
    with start_cluster(nodes=({"num_cpus": 1, "resources": {"w": 1}},)) as c:
        (b,) = c.worker_nodes
        ref = make_array.options(resources={"w": 1}).remote(N, marker)
        ray.wait([ref])
        c.add_node(num_cpus=1, resources={"w": 1})
        c.remove_node(b, allow_graceful=False)
        # The consumer finds its argument's node dead; the owner (this driver) runs the
        # producer again on the new node while the consumer waits with its CPU lent.
        node, s = ray.get(total.remote(ref), timeout=30)
        assert s == N * (N - 1) // 2 and node != b.node_id
        assert len(open(marker).read().split()) == 2


def test_put_object_on_a_dead_node_raises_object_lost_error():
    with start_cluster(nodes=({"num_cpus": 1},), connect=False) as c:
        (b,) = c.worker_nodes
        # A driver on node b: its put objects live in b's shared memory.
        ray.init(address=c.address, _node_ip_address=b.node_ip_address)
        ref = ray.put(np.ones(N))
        small = ray.put(1)  # inline values live in the driver and survive
        c.remove_node(b, allow_graceful=False)
        with pytest.raises(ObjectLostError) as info:
            ray.get(ref, timeout=30)
        assert not isinstance(info.value, OwnerDiedError)
        assert ray.get(small) == 1


@ray.remote
class Maker:
    def make(self, n):
        return [ray.put(np.arange(n, dtype=np.int64)), ray.put("small")]


def test_objects_of_a_killed_owner_raise_owner_died_error():
    with start_cluster(nodes=({"num_cpus": 1, "resources": {"w": 1}},)):
        owner = Maker.options(resources={"w": 1}).remote()
        big, small = ray.get(owner.make.remote(N))
        ray.kill(owner)
        with pytest.raises(OwnerDiedError):
            ray.get(big, timeout=30)
        with pytest.raises(OwnerDiedError):
            ray.get(small, timeout=30)


@ray.remote
def put_and_return(n):
    return [ray.put(np.arange(n, dtype=np.int64))]


def test_objects_owned_by_a_worker_on_a_dead_node_raise_owner_died_error():
    with start_cluster(nodes=({"num_cpus": 1, "resources": {"w": 1}},)) as c:
        (inner,) = ray.get(put_and_return.options(resources={"w": 1}).remote(N))
        (b,) = c.worker_nodes
        c.remove_node(b, allow_graceful=False)
        with pytest.raises(OwnerDiedError):
            ray.get(inner, timeout=30)


# ---------------------------------------------------------------------- head restart
def test_head_restart_keeps_actors_kv_and_nodes():
    with start_cluster(nodes=({"num_cpus": 2, "resources": {"b": 2}},)) as c:
        (b,) = c.worker_nodes
        a = Counter.options(name="keeper", namespace="ft", lifetime="detached", resources={"b": 1}).remote()
        assert ray.get([a.incr.remote(), a.incr.remote()]) == [1, 2]
        worker = state.get_core_worker()
        worker.control_call("kv_put", ["ft", b"key", b"value", True])
        head_pid, b_pid = c.head_node.process.pid, b.process.pid

        c.restart_head()

        # The actor kept its state and keeps answering the handle we hold.
        assert ray.get(a.incr.remote(), timeout=30) == 3
        # Tables came back from storage: names, KV, jobs.
        again = wait_for(lambda: _lookup("keeper", "ft"), 30, "the named actor after the restart")
        assert ray.get(again.incr.remote(), timeout=30) == 4
        assert worker.control_call("kv_get", ["ft", b"key"]) == b"value"
        assert any(j["job_id"] == worker.job_id for j in worker.control_call("list_jobs"))
        # The nodes reconnected without restarting, and new work runs on them.
        wait_for(lambda: all(n["Alive"] for n in ray.nodes()) and len(ray.nodes()) == 2, 30, "nodes")
        assert (c.head_node.process.pid, b.process.pid) == (head_pid, b_pid)
        assert ray.get(where.options(resources={"b": 1}).remote(), timeout=30) == b.node_id
        assert ray.get([where.remote() for _ in range(4)], timeout=30)
        ray.kill(a)


def _lookup(name, namespace):
    try:
        return ray.get_actor(name, namespace=namespace)
    except (ValueError, ConnectionError):
        return None


def test_detached_actor_outlives_its_driver_and_a_head_restart():
    with start_cluster(nodes=({"num_cpus": 1, "resources": {"b": 1}},)) as c:
        a = Counter.options(name="survivor", namespace="ft", lifetime="detached", resources={"b": 1}).remote()
        assert ray.get(a.incr.remote()) == 1
        ray.shutdown()
        c.restart_head()
        ray.init(address=c.address, namespace="ft")
        again = wait_for(lambda: _lookup("survivor", "ft"), 30, "the detached actor")
        assert ray.get(again.incr.remote(), timeout=30) == 2
        ray.kill(again)


# ---------------------------------------------------------------------- application errors
@ray.remote
def flaky(path, failures, exc_name):
    """Raise ``exc_name`` on the first ``failures`` attempts (counted in a file)."""
    with open(path, "a+") as f:
        f.write("x")
        f.seek(0)
        attempt = len(f.read())
    if attempt <= failures:
        raise {"ValueError": ValueError, "KeyError": KeyError}[exc_name](f"attempt {attempt}")
    return attempt


def test_retry_exceptions(ray_start, tmp_path):
    def attempts(name):
        return len((tmp_path / name).read_text())

    ok = flaky.options(max_retries=3, retry_exceptions=True).remote(str(tmp_path / "a"), 2, "ValueError")
    assert ray.get(ok) == 3
    listed = flaky.options(max_retries=3, retry_exceptions=[ValueError])
    assert ray.get(listed.remote(str(tmp_path / "b"), 1, "ValueError")) == 2
    with pytest.raises(KeyError, match="attempt 1"):  # not in the list: not retried
        ray.get(listed.remote(str(tmp_path / "c"), 1, "KeyError"))
    assert attempts("c") == 1
    with pytest.raises(ValueError, match="attempt 1"):  # application errors: no retry by default
        ray.get(flaky.options(max_retries=3).remote(str(tmp_path / "d"), 1, "ValueError"))
    assert attempts("d") == 1
    with pytest.raises(ValueError, match="attempt 3"):  # out of retries: the last error
        ray.get(flaky.options(max_retries=2, retry_exceptions=True).remote(str(tmp_path / "e"), 5, "ValueError"))
    assert attempts("e") == 3


# ---------------------------------------------------------------------- memory monitor
@ray.remote
def hold(gate):
    arrive_and_wait(gate)
    return "finished"


def test_memory_monitor_kills_tasks_not_the_node():
    with start_cluster(nodes=({"num_cpus": 2, "resources": {"calm": 2}},)) as c:
        (calm,) = c.worker_nodes
        # This node believes it is always out of memory (threshold 1%).
        os.environ["SOLRAY_MEMORY_USAGE_THRESHOLD"] = "0.01"
        tight = c.add_node(num_cpus=2, resources={"tight": 2})
        del os.environ["SOLRAY_MEMORY_USAGE_THRESHOLD"]

        @ray.remote(resources={"tight": 1})
        class Survivor:
            def ping(self):
                return node_id_here()

        survivor = Survivor.remote()
        assert ray.get(survivor.ping.remote()) == tight.node_id
        with Gate() as gate:
            once = hold.options(resources={"tight": 1}, max_retries=0).remote(gate.address)
            with pytest.raises(OutOfMemoryError) as info:
                ray.get(once, timeout=30)
            message = str(info.value)
            assert "hold" in message and "GiB" in message and "SOLRAY_MEMORY_USAGE_THRESHOLD" in message
            before = state.get_core_worker().task_retries
            retried = hold.options(resources={"tight": 1}, max_retries=2).remote(gate.address)
            with pytest.raises(OutOfMemoryError):  # killed on every attempt
                ray.get(retried, timeout=30)
            assert state.get_core_worker().task_retries - before == 2
        # The node itself lives on, and so do its actors; the other node was never touched.
        assert node_alive(c, tight)
        assert ray.get(survivor.ping.remote()) == tight.node_id
        assert ray.get(where.options(resources={"calm": 1}).remote()) == calm.node_id
