"""The cluster's unmet resource demand, for the autoscaler (Ray's "load metrics").

Three sources: lease requests queued on node daemons (tasks and actors waiting for a worker;
daemons report them in heartbeats), actors the control service could not place on any node,
placement groups still pending, plus the standing request of
``solray.autoscaler.sdk.request_resources`` kept in the internal KV.
"""

from __future__ import annotations

import json
from typing import Any

# Where ``request_resources`` keeps its request (a JSON list of bundles).
KV_NAMESPACE = "autoscaler"
KV_KEY_REQUEST = b"resource_request"


def resource_demand(svc: Any) -> dict:
    """``{"leases": [...], "actors": [...], "placement_groups": [...], "requested": [...]}``:
    lists of resource dicts (placement groups as ``{"bundles", "strategy"}``)."""
    leases: list[dict] = []
    for node in svc.nodes.values():
        if node.get("alive"):
            leases += node.get("pending_resources") or []
    actors = [
        svc._placement_demand(rec.spec.get("resources") or {})
        for rec in svc.actors.values()
        if rec.state in ("PENDING_CREATION", "RESTARTING") and rec.conn is None and not rec.scheduling
        and not _in_placement_group(rec.spec)
    ]
    groups = [
        {"bundles": [dict(b) for b in rec.bundles], "strategy": rec.strategy}
        for rec in svc.pgs.groups.values()
        if rec.state in ("PENDING", "RESCHEDULING")
    ]
    raw = svc.kv.get((KV_NAMESPACE, KV_KEY_REQUEST))
    requested = json.loads(raw) if raw else []
    return {"leases": leases, "actors": actors, "placement_groups": groups, "requested": requested}


def _in_placement_group(spec: dict) -> bool:
    strategy = spec.get("strategy")
    return isinstance(strategy, dict) and strategy.get("type") == "placement_group"
