"""Helpers for multi-node tests: loopback clusters, node tables, process lookups.

Every node of a ``Cluster`` is a real process on its own loopback IP (127.0.0.N). Tests
start one with ``start_cluster`` (environment first: nodes read their timeouts from it at
start) and look at the control service's node table with ``node_table``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import psutil
from helpers import wait_for

import solray as ray
from solray.cluster_utils import Cluster, Node

# Nodes in these tests are declared dead after this long without heartbeats.
DEATH_TIMEOUT_S = 1.0
ENV = {"SOLRAY_NODE_DEATH_TIMEOUT_S": str(DEATH_TIMEOUT_S)}


@contextlib.contextmanager
def start_cluster(
    head_cpus: float = 1, nodes: tuple[dict, ...] = (), env: dict | None = None, connect: bool = True
) -> Iterator[Cluster]:
    """A cluster with a head (``head_cpus``) and one node per dict of ``add_node`` arguments."""
    saved = dict(os.environ)
    # Sessions (logs, spill files, the control service's SQLite) go to a folder of their own.
    tmp = tempfile.mkdtemp(prefix="solray-test-cluster-")
    os.environ.update({**ENV, "SOLRAY_TMPDIR": tmp, "SOLRAY_CONFIG_DIR": os.path.join(tmp, "config"), **(env or {})})
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus})
        for args in nodes:
            cluster.add_node(**args)
        cluster.wait_for_nodes()
        if connect:
            ray.init(address=cluster.address)
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        os.environ.clear()
        os.environ.update(saved)
        if not os.environ.get("SOLRAY_KEEP_TEST_SESSIONS"):  # set it to keep the logs
            shutil.rmtree(tmp, ignore_errors=True)


def node_table(cluster: Cluster) -> dict[str, dict]:
    """The control service's view of every node: node_id -> info (alive, resources, stats)."""
    return {n["node_id"]: n for n in cluster._nodes()}


def node_alive(cluster: Cluster, node: Node) -> bool:
    return bool(node_table(cluster)[node.node_id].get("alive"))


def wait_node_dead(cluster: Cluster, node: Node, timeout: float = 15.0) -> None:
    wait_for(lambda: not node_alive(cluster, node), timeout, f"{node} to be marked dead")


def worker_pids(node: Node) -> list[int]:
    """PIDs of the worker processes of a node (children of its fork server)."""
    try:
        proc = psutil.Process(node.process.pid)
        zygotes = proc.children()
    except psutil.NoSuchProcess:
        return []
    pids = []
    for z in zygotes:
        try:
            pids += [c.pid for c in z.children()]
        except psutil.NoSuchProcess:
            pass
    return pids


def node_id_here() -> str:
    return ray.get_runtime_context().get_node_id()


def all_gone(pids: list[int]) -> bool:
    """True once none of ``pids`` runs any more (zombies count as gone)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True
