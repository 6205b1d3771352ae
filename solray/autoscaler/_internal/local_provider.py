"""The ``local`` node provider: worker nodes are real node daemons started on this machine.

Each node gets a loopback address of its own (127.0.N.M) and joins the head's control
service, as ``solray start --address=...`` does. The provider remembers its nodes in a JSON
file, so ``solray down`` (another process) can stop them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading

import psutil

from solray._private.node import launcher
from solray.autoscaler._internal.provider import NodeProvider, ProviderNode
from solray.autoscaler._internal.scheduler import NodeType


class LocalNodeProvider(NodeProvider):
    def __init__(self, control_address: str, token: str, session_root: str, *, state_file: str | None = None,
                 object_store_memory: int = 128 * 1024 * 1024, subnet: int = 7):
        self.control_address = control_address
        self.token = token
        self.session_root = session_root
        self.state_file = state_file or os.path.join(session_root, "autoscaler-nodes.json")
        self.object_store_memory = object_store_memory
        self.subnet = subnet
        self._lock = threading.Lock()
        self._procs: dict[str, psutil.Popen | object] = {}
        self._nodes: dict[str, dict] = self._load()
        self._starting: set[str] = set()  # addresses of nodes being started

    def _load(self) -> dict[str, dict]:
        try:
            with open(self.state_file) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return {}

    def _save(self) -> None:
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self._nodes, f)
        os.replace(tmp, self.state_file)

    def _next_ip(self) -> str:
        used = {n["node_ip"] for n in self._nodes.values()} | self._starting
        for i in range(1, 255):
            ip = f"127.0.{self.subnet}.{i}"
            if ip not in used:
                return ip
        raise RuntimeError("the local provider ran out of loopback addresses (254 nodes)")

    def non_terminated_nodes(self) -> list[ProviderNode]:
        with self._lock:
            gone = [pid for pid, n in self._nodes.items() if not psutil.pid_exists(n["pid"]) or _zombie(n["pid"])]
            for pid in gone:
                self._reap(pid)
            if gone:
                self._save()
            return [ProviderNode(pid, n["node_type"], n.get("node_id")) for pid, n in self._nodes.items()]

    def create_node(self, node_type: NodeType) -> str:
        """Start a node and return once it serves (several may start at once, from threads)."""
        with self._lock:
            ip = self._next_ip()
            self._starting.add(ip)
        try:
            session_dir = launcher.new_session_dir(self.session_root)
            total, store = launcher.default_resources(
                node_type.resources.get("CPU", 0), node_type.resources.get("GPU", 0),
                {k: v for k, v in node_type.resources.items() if k not in ("CPU", "GPU", "memory", "object_store_memory")},
                int(node_type.resources.get("object_store_memory", self.object_store_memory)),
            )
            proc, info = launcher.start_node(
                head=False, token=self.token, session_dir=session_dir, resources=total, object_store_memory=store,
                node_ip=ip, control_address=self.control_address, labels={"solray.io/node-type": node_type.name},
            )
        finally:
            with self._lock:
                self._starting.discard(ip)
        provider_id = f"local-{node_type.name}-{ip}"
        with self._lock:
            self._procs[provider_id] = proc
            self._nodes[provider_id] = {
                "pid": proc.pid, "node_ip": ip, "node_type": node_type.name, "node_id": info["node_id"],
                "shm_dir": info.get("shm_dir"), "session_dir": session_dir,
            }
            self._save()
        return provider_id

    def terminate_node(self, provider_id: str) -> None:
        with self._lock:
            node = self._nodes.get(provider_id)
            if node is None:
                return
            try:
                proc = psutil.Process(node["pid"])
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except psutil.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            except psutil.NoSuchProcess:
                pass
            self._reap(provider_id)
            self._save()

    def _reap(self, provider_id: str) -> None:
        node = self._nodes.pop(provider_id)
        popen = self._procs.pop(provider_id, None)
        if popen is not None:
            popen.poll()  # our own child: collect its exit status
        # A node stopped by a signal may leave its shared memory behind.
        if node.get("shm_dir"):
            shutil.rmtree(node["shm_dir"], ignore_errors=True)


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
