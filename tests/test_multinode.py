"""A real multi-node cluster on loopback: placement by resources, locality, moving objects
between nodes, drivers on any node. One cluster serves the module; tests here kill nothing.

Nodes: head 127.0.0.1 (1 CPU), "b" 127.0.0.2 (2 CPUs), "c" 127.0.0.3 (4 CPUs),
"g" 127.0.0.4 (1 CPU, 2 GPUs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
from cluster_helpers import node_id_here, node_table, start_cluster
from helpers import Gate, arrive_and_wait, wait_for

import solray as ray

MB = 1 << 20
BIG = 100 * MB // 8  # int64 elements of a 100 MB array


@pytest.fixture(scope="module")
def cl():
    nodes = (
        {"num_cpus": 2, "resources": {"b": 4}},
        {"num_cpus": 4, "resources": {"c": 4}},
        {"num_cpus": 1, "num_gpus": 2, "resources": {"accel": 1}},
    )
    with start_cluster(head_cpus=1, nodes=nodes) as cluster:
        by_ip = {n.node_ip_address: n for n in cluster.list_all_nodes()}
        yield SimpleNamespace(
            cluster=cluster,
            head=cluster.head_node,
            b=by_ip["127.0.0.2"],
            c=by_ip["127.0.0.3"],
            g=by_ip["127.0.0.4"],
        )


@ray.remote
def where():
    return node_id_here()


@ray.remote
def make_array(n):
    return np.arange(n, dtype=np.int64)


@ray.remote
def checksum(arr, gate=None):
    if gate is not None:
        arrive_and_wait(gate)
    return node_id_here(), int(arr.sum()), int(arr[-1])


def test_nodes_and_cluster_resources(cl):
    nodes = {n["NodeID"]: n for n in ray.nodes()}
    assert len(nodes) == 4 and all(n["Alive"] for n in nodes.values())
    assert nodes[cl.head.node_id]["IsHead"]
    assert nodes[cl.b.node_id]["NodeManagerAddress"] == "127.0.0.2"
    assert nodes[cl.c.node_id]["Resources"]["c"] == 4
    assert nodes[cl.g.node_id]["Resources"]["GPU"] == 2
    total = ray.cluster_resources()
    assert total["CPU"] == 8 and total["GPU"] == 2 and total["b"] == 4 and total["accel"] == 1
    for ip in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"):
        assert total[f"node:{ip}"] == 1


def test_custom_resources_place_tasks_and_actors(cl):
    assert ray.get(where.options(resources={"b": 1}).remote()) == cl.b.node_id
    assert ray.get(where.options(resources={"node:127.0.0.3": 0.01}).remote()) == cl.c.node_id

    @ray.remote(resources={"c": 1})
    class OnC:
        def node(self):
            return node_id_here()

    a = OnC.remote()
    assert ray.get(a.node.remote()) == cl.c.node_id
    ray.kill(a)


def test_gpu_tasks_go_to_the_gpu_node_and_see_their_gpu(cl):
    @ray.remote(num_gpus=1)
    def gpu_task():
        return node_id_here(), ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    results = ray.get([gpu_task.remote() for _ in range(4)])
    for node_id, gpu_ids, visible in results:
        assert node_id == cl.g.node_id
        assert len(gpu_ids) == 1 and visible == str(gpu_ids[0])


def test_nested_tasks_submitted_from_a_worker_node(cl):
    @ray.remote(resources={"c": 1})
    def fan_out():
        return node_id_here(), ray.get([where.options(resources={"b": 1}).remote() for _ in range(3)])

    here, children = ray.get(fan_out.remote())
    assert here == cl.c.node_id and children == [cl.b.node_id] * 3


def test_large_arguments_pull_the_task_to_their_node(cl):
    ref = make_array.options(resources={"c": 1}).remote(MB)  # 8 MB, in c's shared memory
    ray.wait([ref])
    # A plain task with no placement of its own goes where its large argument lives.
    nodes = ray.get([checksum.remote(ref) for _ in range(3)])
    assert [n[0] for n in nodes] == [cl.c.node_id] * 3


def test_100mb_object_moves_between_nodes_intact(cl):
    ref = make_array.options(resources={"b": 1}).remote(BIG)
    arr = ray.get(ref)  # made on b, read on the head
    assert arr.nbytes == 100 * MB
    assert np.array_equal(arr, np.arange(BIG, dtype=np.int64))
    node, total, last = ray.get(checksum.options(resources={"c": 1}).remote(ref))  # b -> c
    assert node == cl.c.node_id and total == BIG * (BIG - 1) // 2 and last == BIG - 1


def test_concurrent_gets_on_one_node_pull_the_object_once(cl):
    ref = make_array.options(resources={"b": 1}).remote(BIG)
    ray.wait([ref])
    before = node_table(cl.cluster)[cl.c.node_id]
    with Gate() as gate:
        # Four tasks on c wait at the gate, then all read the array (made on b) at once.
        refs = [checksum.options(resources={"c": 1}).remote(ref, gate.address) for _ in range(4)]
        gate.wait_arrivals(4)
        gate.release()
        results = ray.get(refs)
    assert results == [(cl.c.node_id, BIG * (BIG - 1) // 2, BIG - 1)] * 4
    after = node_table(cl.cluster)[cl.c.node_id]
    assert after["pulls_total"] - before["pulls_total"] == 1
    assert 100 * MB <= after["pulled_bytes_total"] - before["pulled_bytes_total"] < 101 * MB


def test_copies_on_other_nodes_are_freed_with_the_object(cl):
    ref = make_array.options(resources={"b": 1}).remote(10 * MB // 8)
    ray.get(checksum.options(resources={"c": 1}).remote(ref))

    def used(node):
        return node_table(cl.cluster)[node.node_id]["object_store_used"]

    assert used(cl.b) >= 10 * MB and used(cl.c) >= 10 * MB
    del ref
    wait_for(lambda: used(cl.b) == 0 and used(cl.c) == 0, 10, "the copies on b and c to be freed")


def test_ref_borrowed_by_an_actor_on_another_node(cl):
    @ray.remote(resources={"b": 1})
    class Holder:
        def keep(self, refs):
            self.ref = refs[0]
            return True

        def total(self):
            return int(ray.get(self.ref).sum())

    ref = make_array.options(resources={"c": 1}).remote(MB)
    h = Holder.remote()
    assert ray.get(h.keep.remote([ref]))
    del ref  # the actor's borrow keeps the object alive
    assert ray.get(h.total.remote()) == MB * (MB - 1) // 2
    ray.kill(h)


def test_driver_attached_to_a_worker_node(cl):
    """A driver on another node (here: attached to c's daemon) runs tasks and puts objects."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        import solray as ray
        ray.init(address={cl.cluster.address!r}, _node_ip_address="127.0.0.3",
                 runtime_env={{"env_vars": {{"JOB_FLAG": "on"}}}})
        assert ray.get_runtime_context().get_node_id() == {cl.c.node_id!r}
        ref = ray.put(np.ones(1 << 20))
        @ray.remote(resources={{"b": 1}})
        def total(a):
            import os
            return float(a.sum()), os.environ.get("JOB_FLAG")
        print("RESULT", ray.get(total.remote(ref)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert "RESULT (1048576.0, 'on')" in out.stdout, out.stderr


def test_prints_on_other_nodes_reach_the_driver(cl, capfd):
    @ray.remote(resources={"b": 1})
    def say():
        print("hello from b")
        return True

    assert ray.get(say.remote())
    seen = []

    def check():
        seen.append(capfd.readouterr().out)
        return "hello from b" in "".join(seen)

    wait_for(check, 10, "the task's print on the driver")


def test_working_dir_and_py_modules_reach_tasks_on_other_nodes(cl, tmp_path):
    """The driver uploads its folders at init; node b unpacks them for its workers (the
    originals are deleted first, so nothing can come from the driver's disk)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "wd_helper.py").write_text("VALUE = 42\n")
    (work / "data.txt").write_text("from the working dir")
    lib = tmp_path / "mylib"
    lib.mkdir()
    (lib / "__init__.py").write_text("NAME = 'mylib'\n")
    script = textwrap.dedent(
        f"""
        import os, shutil
        import solray as ray
        ray.init(address={cl.cluster.address!r},
                 runtime_env={{"working_dir": {str(work)!r}, "py_modules": [{str(lib)!r}]}})
        shutil.rmtree({str(tmp_path)!r})
        @ray.remote(resources={{"b": 1}})
        def use_files():
            import mylib, wd_helper
            with open("data.txt") as f:
                return wd_helper.VALUE, mylib.NAME, f.read(), os.getcwd()
        print("RESULT", ray.get(use_files.remote()))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=dict(os.environ), cwd="/"
    )
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    assert line, out.stderr
    value, name, text, cwd = eval(line[0][len("RESULT "):])
    assert (value, name, text) == (42, "mylib", "from the working dir")
    assert "node-127.0.0.2" in cwd  # unpacked in node b's own session folder


def test_missing_working_dir_is_a_clear_error_at_init(tmp_path):
    missing = str(tmp_path / "nope")
    script = f"import solray as ray; ray.init(num_cpus=1, runtime_env={{'working_dir': {missing!r}}})"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "is not a package URI nor a folder" in out.stderr and "nope" in out.stderr
