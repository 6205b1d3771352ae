"""``Cluster``: a real multi-node cluster on one machine, each node on its own loopback IP.

As Ray's ``ray.cluster_utils.Cluster``: the tool multi-node tests use. Every node is a
real node process (head: control service + daemon; others: daemon) bound to 127.0.0.N.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from typing import Any

from solray._private import cluster_files
from solray._private.node import launcher


class Node:
    """One node process of a ``Cluster``."""

    def __init__(self, proc: subprocess.Popen, info: dict, head: bool):
        self.process = proc
        self.info = info
        self.head = head
        self.node_id: str = info["node_id"]
        self.node_ip_address: str = info["node_ip"]
        self.address: str = info["daemon_address"]

    @property
    def unique_id(self) -> str:
        return self.node_id

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the node process; its workers exit when they lose their daemon."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
        self.release_memory()

    def release_memory(self) -> None:
        """Drop the shared memory of a dead node: a machine that dies takes its memory with it,
        but a SIGKILLed node process on this machine leaves its files in /dev/shm behind."""
        shm_dir = self.info.get("shm_dir")
        if shm_dir and self.process.poll() is not None:
            shutil.rmtree(shm_dir, ignore_errors=True)

    def alive(self) -> bool:
        return self.process.poll() is None

    def __repr__(self) -> str:
        return f"Node({self.node_ip_address}, {self.node_id[:12]}{', head' if self.head else ''})"


class Cluster:
    def __init__(
        self,
        initialize_head: bool = False,
        connect: bool = False,
        head_node_args: dict | None = None,
        shutdown_at_exit: bool = True,
    ):
        self.token = secrets.token_hex(16)
        self.session_root = launcher.new_session_dir(cluster_files.root())
        self.head_node: Node | None = None
        self.control_process: subprocess.Popen | None = None
        self._control_address: str | None = None
        self.worker_nodes: set[Node] = set()
        self._next_ip = 2
        self._storage = os.path.join(self.session_root, "control.sqlite")
        self.connected = False
        self._all_nodes: list[Node] = []
        if shutdown_at_exit:
            import atexit

            atexit.register(self.shutdown)
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                self.connect()

    @property
    def address(self) -> str:
        if self._control_address is None:
            raise RuntimeError("The cluster has no head node yet.")
        return self._control_address

    def _start_control(self, port: int = 0) -> None:
        """The control service runs in its own process so a test can kill and restart it
        (head failure) while the head node's daemon and workers keep running."""
        proc, info = launcher.start_node(
            head=True,
            control_only=True,
            token=self.token,
            session_dir=self.session_root,
            resources={},
            object_store_memory=0,
            port=port,
            storage=self._storage,
        )
        self.control_process = proc
        self._control_address = info["control_address"]

    @property
    def gcs_address(self) -> str:
        return self.address

    def _env_for_drivers(self) -> None:
        os.environ["SOLRAY_TOKEN"] = self.token

    def add_node(
        self,
        wait: bool = True,
        *,
        num_cpus: float | None = 1,
        num_gpus: float | None = 0,
        resources: dict | None = None,
        object_store_memory: int | None = 256 * 1024 * 1024,
        node_ip_address: str | None = None,
        port: int = 0,
        labels: dict | None = None,
        **kwargs: Any,
    ) -> Node:
        """Start a node (the first one is the head) and return it."""
        head = self.head_node is None
        if head and self.control_process is None:
            self._start_control(port)
            port = 0
        if node_ip_address is None:
            if head:
                node_ip_address = "127.0.0.1"
            else:
                node_ip_address = f"127.0.0.{self._next_ip}"
                self._next_ip += 1
        total, store = launcher.default_resources(num_cpus, num_gpus, resources, object_store_memory)
        session_dir = os.path.join(self.session_root, f"node-{node_ip_address}-{len(self.worker_nodes)}")
        os.makedirs(os.path.join(session_dir, "logs"), exist_ok=True)
        proc, info = launcher.start_node(
            head=False,
            token=self.token,
            session_dir=session_dir,
            resources=total,
            object_store_memory=store,
            node_ip=node_ip_address,
            port=port,
            control_address=self.address,
            head_node=head,
            labels=labels,
        )
        node = Node(proc, info, head)
        self._all_nodes.append(node)
        if head:
            self.head_node = node
            self._env_for_drivers()
        else:
            self.worker_nodes.add(node)
        if wait:
            self._wait_node(node.node_id, alive=True)
        return node

    def remove_node(self, node: Node, allow_graceful: bool = True) -> None:
        node.kill(signal.SIGTERM if allow_graceful else signal.SIGKILL)
        if node is self.head_node:
            self.head_node = None
        else:
            self.worker_nodes.discard(node)
            self._wait_node(node.node_id, alive=False)

    def kill_head(self) -> None:
        """Kill the control service (head failure); nodes and workers keep running."""
        if self.control_process is not None and self.control_process.poll() is None:
            self.control_process.kill()
            self.control_process.wait(10)

    def restart_head(self) -> None:
        """Kill the control service and start a new one on the same address and storage."""
        port = int(self.address.rsplit(":", 1)[1])
        self.kill_head()
        self._start_control(port)

    def _nodes(self) -> list[dict]:
        from solray._private.api import query_control

        return query_control(self.address, self.token, "get_nodes")

    def _wait_node(self, node_id: str, alive: bool, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes = {n["node_id"]: n for n in self._nodes()}
            n = nodes.get(node_id)
            if (n is not None and bool(n.get("alive")) == alive) or (n is None and not alive):
                return
            time.sleep(0.05)
        raise TimeoutError(f"node {node_id} did not become {'alive' if alive else 'dead'} in {timeout} s")

    def wait_for_nodes(self, timeout: float = 30) -> None:
        """Wait until every node started here is registered and alive."""
        for node in [self.head_node, *self.worker_nodes]:
            if node is not None:
                self._wait_node(node.node_id, alive=True, timeout=timeout)

    def list_all_nodes(self) -> list[Node]:
        return [n for n in [self.head_node, *self.worker_nodes] if n is not None]

    def connect(self, namespace: str | None = None) -> Any:
        import solray

        self.connected = True
        return solray.init(address=self.address, namespace=namespace)

    def shutdown(self) -> None:
        import solray

        if self.connected and solray.is_initialized():
            solray.shutdown()
        for node in list(self.worker_nodes):
            node.kill()
        self.worker_nodes.clear()
        if self.head_node is not None:
            self.head_node.kill()
            self.head_node = None
        for node in self._all_nodes:  # nodes killed by PID from outside (chaos tests)
            node.release_memory()
        self.kill_head()
        if os.environ.get("SOLRAY_TOKEN") == self.token:
            # Drivers started after this cluster must not present its token to another one.
            del os.environ["SOLRAY_TOKEN"]
