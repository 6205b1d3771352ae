"""Starting node processes (head or worker node) and waiting until they serve."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time

import psutil

from solray._private import config


def default_resources(num_cpus: float | None, num_gpus: float | None, resources: dict | None, object_store_memory: int | None) -> tuple[dict, int]:
    from solray._private.api import _detect_gpus

    mem = psutil.virtual_memory()
    if object_store_memory is None:
        object_store_memory = int(mem.total * config.OBJECT_STORE_MEMORY_FRACTION)
        try:
            shm = os.statvfs("/dev/shm")
            object_store_memory = min(object_store_memory, int(shm.f_bavail * shm.f_frsize * 0.9))
        except OSError:
            pass
    total = {
        "CPU": float(num_cpus if num_cpus is not None else (os.cpu_count() or 1)),
        "GPU": float(num_gpus if num_gpus is not None else _detect_gpus()),
        "memory": float(int(mem.available * 0.7)),
        "object_store_memory": float(object_store_memory),
        **{k: float(v) for k, v in (resources or {}).items()},
    }
    return {k: v for k, v in total.items() if v}, int(object_store_memory)


def new_session_dir(root: str) -> str:
    path = os.path.join(root, f"session_{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}_{secrets.token_hex(3)}")
    os.makedirs(os.path.join(path, "logs"), exist_ok=True)
    return path


def start_node(
    *,
    head: bool,
    token: str,
    session_dir: str,
    resources: dict,
    object_store_memory: int,
    node_ip: str = "127.0.0.1",
    port: int = 0,
    control_address: str = "",
    embedded: bool = False,
    storage: str | None = None,
    dashboard_port: int | None = None,
    dashboard_host: str = "127.0.0.1",
    spill_dir: str | None = None,
    control_only: bool = False,
    head_node: bool = False,
    labels: dict | None = None,
) -> tuple[subprocess.Popen, dict]:
    """Start a node process; return it and the JSON line it prints once serving."""
    cmd = [
        sys.executable, "-m", "solray._private.node.head_main",
        "--session-dir", session_dir,
        "--resources", json.dumps(resources),
        "--object-store-memory", str(object_store_memory),
        "--node-ip", node_ip,
        "--port", str(port),
    ]
    if head:
        cmd.append("--head")
        if control_only:
            cmd.append("--control-only")
    else:
        cmd += ["--control-address", control_address]
        if head_node:
            cmd.append("--head-node")
    if embedded:
        cmd.append("--embedded")
    if storage:
        cmd += ["--storage", storage]
    if dashboard_port is not None:
        cmd += ["--dashboard-port", str(dashboard_port), "--dashboard-host", dashboard_host]
    if spill_dir:
        cmd += ["--spill-dir", spill_dir]
    if labels:
        cmd += ["--labels", json.dumps(labels)]
    kind = "control" if control_only else "head" if head else "node"
    # A long-lived node must not hold its starter's stderr: ``solray start`` would never
    # finish for a caller that reads its output to the end (a pipe stays open while any
    # process of the node holds it). It writes to a log file instead.
    os.makedirs(os.path.join(session_dir, "logs"), exist_ok=True)
    err_path = os.path.join(session_dir, "logs", f"{kind}.err")
    err = None if embedded else open(err_path, "ab")
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if embedded else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=dict(os.environ, SOLRAY_TOKEN=token),
            start_new_session=True,
        )
    finally:
        if err is not None:
            err.close()
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        tail = ""
        for log in (os.path.join(session_dir, "logs", f"{kind}.log"), err_path):
            if os.path.exists(log):
                tail += open(log).read()[-3000:]
        raise RuntimeError(f"The solray node failed to start (exit code {proc.returncode}).\n{tail}")
    info = json.loads(line)
    info.update(token=token, session_dir=session_dir, node_ip=node_ip)
    return proc, info
