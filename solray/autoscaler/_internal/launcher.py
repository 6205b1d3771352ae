"""``solray up`` / ``solray down`` with the ``local`` provider: a head node, an autoscaler
process next to it, and worker nodes it starts and stops on this machine."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable

import psutil

from solray._private import cluster_files
from solray._private.node import launcher
from solray.autoscaler._internal.cluster_config import load


def read_config(path: str) -> tuple[dict, object]:
    import yaml

    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except OSError as e:
        raise FileNotFoundError(f"cannot read the cluster config {path}: {e}") from e
    return load(raw)


def _state_path(name: str) -> str:
    return os.path.join(cluster_files.root(), f"autoscaler-{name}.json")


def cluster_up(path: str, echo: Callable[[str], None]) -> dict:
    raw, _config = read_config(path)
    name = raw.get("cluster_name") or "default"
    state_path = _state_path(name)
    if os.path.exists(state_path):
        with open(state_path) as f:
            state = json.load(f)
        if psutil.pid_exists(state["head_pid"]):
            echo(f"Cluster {name!r} is already up at {state['control_address']}.")
            return state
    head = raw["available_node_types"][raw["head_node_type"]]["resources"]
    provider = raw.get("provider") or {}
    token = os.environ.get("SOLRAY_TOKEN") or secrets.token_hex(16)
    # Nodes of an autoscaled cluster wait for new nodes instead of warning "no node can satisfy".
    os.environ["SOLRAY_AUTOSCALER_ENABLED"] = "1"
    session_dir = launcher.new_session_dir(cluster_files.root())
    total, store = launcher.default_resources(
        head.get("CPU", 0), head.get("GPU", 0),
        {k: v for k, v in head.items() if k not in ("CPU", "GPU", "object_store_memory")}, head.get("object_store_memory"),
    )
    storage = os.path.join(session_dir, "control.sqlite")
    proc, info = launcher.start_node(
        head=True, token=token, session_dir=session_dir, resources=total, object_store_memory=store,
        node_ip=provider.get("head_ip", "127.0.0.1"), port=int(provider.get("head_port", 0)), storage=storage,
        dashboard_port=provider.get("dashboard_port"),
    )
    cluster_files.write_cluster({**info, "storage": storage})
    cluster_files.record_node(proc.pid, {**info, "pid": proc.pid, "head": True})
    log = open(os.path.join(session_dir, "logs", "monitor.log"), "ab")
    monitor = subprocess.Popen(
        [sys.executable, "-m", "solray.autoscaler._internal.monitor_main", os.path.abspath(path),
         info["control_address"], session_dir],
        env=dict(os.environ, SOLRAY_TOKEN=token), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        start_new_session=True,
    )
    log.close()
    state = {"name": name, "head_pid": proc.pid, "monitor_pid": monitor.pid, "control_address": info["control_address"],
             "session_dir": session_dir, "token": token}
    cluster_files._write_private(state_path, state)
    echo(f"Cluster {name!r} is up: head at {info['control_address']}, autoscaler pid {monitor.pid} "
         f"(log {session_dir}/logs/monitor.log).")
    echo(f"  connect: solray.init(address='{info['control_address']}') or address='auto'")
    return state


def _stop(pid: int, grace: float = 10) -> None:
    try:
        p = psutil.Process(pid)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(grace)
        except psutil.TimeoutExpired:
            p.kill()
    except psutil.NoSuchProcess:
        pass


def cluster_down(path: str, echo: Callable[[str], None]) -> None:
    from solray.autoscaler._internal.local_provider import LocalNodeProvider

    raw, _config = read_config(path)
    name = raw.get("cluster_name") or "default"
    try:
        with open(_state_path(name)) as f:
            state = json.load(f)
    except FileNotFoundError:
        echo(f"Cluster {name!r} is not up (no {_state_path(name)}).")
        return
    _stop(state["monitor_pid"])  # first, so it starts nothing new
    provider = LocalNodeProvider(state["control_address"], state["token"], state["session_dir"])
    workers = provider.non_terminated_nodes()
    for node in workers:
        provider.terminate_node(node.provider_id)
    _stop(state["head_pid"])
    cluster_files.forget_node(state["head_pid"])
    cluster_files.forget_token(state["control_address"])
    port = state["control_address"].rsplit(":", 1)[1]
    for file in (f"cluster-{port}.json", "current_cluster.json", os.path.basename(_state_path(name))):
        try:
            os.unlink(os.path.join(cluster_files.root(), file))
        except FileNotFoundError:
            pass
    echo(f"Cluster {name!r} is down (stopped the head, the autoscaler and {len(workers)} worker node(s)).")
