"""``solray.autoscaler.sdk.request_resources``: ask the autoscaler for capacity ahead of load.

As Ray's: the request stands until replaced (a new call overrides the previous one; call
with nothing to clear it). The cluster is scaled so that all requested bundles fit at once,
on top of nothing else (it is not added to the current load).
"""

from __future__ import annotations

import json

from solray._private.control.demand import KV_KEY_REQUEST, KV_NAMESPACE


def request_resources(num_cpus: int | None = None, bundles: list[dict] | None = None) -> None:
    """Scale the cluster to hold ``num_cpus`` CPUs (as 1-CPU bundles) plus ``bundles``."""
    import solray

    if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 0):
        raise TypeError(f"num_cpus must be a non-negative integer, got {num_cpus!r}")
    request: list[dict] = [{"CPU": 1.0}] * (num_cpus or 0)
    for b in bundles or []:
        if not isinstance(b, dict) or not all(isinstance(v, (int, float)) and v >= 0 for v in b.values()):
            raise TypeError(f"each bundle must be a dict of resource name -> non-negative amount, got {b!r}")
        request.append({k: float(v) for k, v in b.items()})
    from solray._private.worker import state

    if not solray.is_initialized():
        solray.init(address="auto")
    state.get_core_worker().control_call("kv_put", [KV_NAMESPACE, KV_KEY_REQUEST, json.dumps(request).encode(), True])
