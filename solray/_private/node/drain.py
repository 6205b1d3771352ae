"""Draining a node before the autoscaler removes it: the objects it holds move elsewhere.

Each object still stored here (in shared memory or spilled) is pulled by another live node,
then its owner learns the new location (``object_moved``), so removing this node loses no
object that is still referenced. A node with leased workers is busy and is not drained.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from solray._private.rpc.connection import connect

logger = logging.getLogger(__name__)


async def _request(address: str, token: str, method: str, payload: Any, name: str) -> Any:
    host, port = address.rsplit(":", 1)
    conn = await connect(host, int(port), token, name=name)
    try:
        return await conn.request(method, payload)
    finally:
        conn.close()


def _file_size(path: str, default: int) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return default


def _free_store(node: dict) -> float:
    return (node.get("available") or {}).get("object_store_memory", 0.0)


async def drain_node(daemon: Any, targets: list[str] | None = None) -> dict:
    """Move this node's objects to other nodes (to ``targets``, the node ids that stay, when
    given); ``{"ok", "moved", "lost", "reason"}``."""
    if daemon.leases:
        return {"ok": False, "moved": 0, "lost": 0, "reason": f"busy: {len(daemon.leases)} leased worker(s)"}
    others = [(nid, n) for nid, n in daemon._others() if not targets or nid in targets]
    # The file's size, not the store's account of it: writers pad their files, and readers
    # map the whole file.
    held = [(oid, _file_size(daemon._path(oid), size), owner)
            for oid, (size, owner) in daemon.objects.items() if oid not in daemon._pulls]
    held += [(oid, _file_size(path, size), owner) for oid, (size, owner, path) in daemon.spilled.items()]
    if held and not others:
        return {"ok": False, "moved": 0, "lost": 0, "reason": "no other node can take this node's objects"}
    moved = lost = 0
    for oid, size, owner in held:
        target_id, target = max(others, key=lambda item: _free_store(item[1]))
        try:
            path = await _request(target["address"], daemon.token, "pull_object", [oid, daemon.node_id, size, owner], "drain")
            target.setdefault("available", {})["object_store_memory"] = _free_store(target) - size
        except Exception as e:  # the target could not take it: the object stays (and is lost)
            logger.warning("draining: moving object %s to node %s failed: %s", oid.hex(), target_id, e)
            lost += 1
            continue
        try:
            await _request(owner, daemon.token, "object_moved", [oid, [target_id, path, size], daemon.node_id], "drain")
        except Exception as e:  # its owner is gone, and with it every reference
            logger.info("draining: owner %s of %s is unreachable (%s)", owner, oid.hex(), e)
        moved += 1
    return {"ok": lost == 0, "moved": moved, "lost": lost, "reason": ""}
