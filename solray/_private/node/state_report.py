"""What a node daemon tells the state API: its workers, the objects its processes own,
and its host's CPU and memory (``list_workers``, ``list_objects``, node metrics)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from solray._private.node.daemon import NodeDaemon

OBJECTS_TIMEOUT_S = 5.0


def host_stats() -> dict:
    mem = psutil.virtual_memory()
    return {
        "mem_total": mem.total,
        "mem_used": mem.total - mem.available,
        "cpu_percent": psutil.cpu_percent(None),  # since the previous call: no waiting
        "stats_time": time.time(),
    }


def list_workers(daemon: NodeDaemon) -> list[dict]:
    """Ray's WorkerState fields for every worker and driver attached to this node."""
    out = []
    seen = set()
    for p in daemon.clients.values():
        if p.get("kind") == "driver":
            seen.add(p.get("worker_id"))
            out.append(
                {
                    "worker_id": p.get("worker_id"),
                    "is_alive": True,
                    "worker_type": "DRIVER",
                    "exit_type": None,
                    "node_id": daemon.node_id,
                    "ip": daemon.node_ip,
                    "pid": p.get("pid"),
                    "job_id": p.get("job_id"),
                    "exit_detail": None,
                }
            )
    for w in daemon.workers.values():
        if w.worker_id in seen:
            continue
        alive = w.state != "dead"
        out.append(
            {
                "worker_id": w.worker_id,
                "is_alive": alive,
                "worker_type": "WORKER",
                "exit_type": None if alive else "SYSTEM_ERROR",
                "node_id": daemon.node_id,
                "ip": daemon.node_ip,
                "pid": w.pid,
                "job_id": w.job_id,
                "exit_detail": None,
                "state": w.state,
                "is_actor": w.is_actor,
            }
        )
    return out


async def list_objects(daemon: NodeDaemon, payload: Any = None) -> dict:
    """The owned objects of every process on this node, plus the node's spilled objects."""
    timeout = float((payload or {}).get("timeout") or OBJECTS_TIMEOUT_S)
    conns = [c for c in daemon.clients if not c.closed]

    async def ask(conn):
        try:
            return await asyncio.wait_for(conn.request("state_objects"), timeout)
        except ConnectionError:
            return None  # the process exited meanwhile: its objects went with it
        except Exception as e:  # a stuck process: report it, keep the rest
            return {"error": f"{type(e).__name__}: {e}"}

    replies = [r for r in await asyncio.gather(*(ask(c) for c in conns)) if r is not None]
    return {
        "node_id": daemon.node_id,
        "processes": [r for r in replies if "error" not in r],
        "errors": [r["error"] for r in replies if "error" in r],
        "spilled": [oid for oid in daemon.spilled],
    }
