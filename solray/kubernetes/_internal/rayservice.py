"""RayService reconciliation: a RayCluster that serves ``serveConfigV2``, upgraded without
downtime. A changed ``rayClusterConfig`` stands up a new (pending) cluster; once it is ready
and serving, the ``<name>-serve-svc`` selector switches to it and the old cluster goes.
A changed ``serveConfigV2`` alone is redeployed onto the active cluster in place.
"""

from __future__ import annotations

from solray.kubernetes._internal import common as c
from solray.kubernetes._internal.plan import Plan

KIND = "RayService"


def cluster_name_for(service: dict) -> str:
    """Named after the config, so a changed config means a new cluster."""
    return f"{c.name_of(service)}-raycluster-{c.short_hash(service['spec'].get('rayClusterConfig'))}"


def serve_service_name(service: str) -> str:
    return f"{service}-serve-svc"


def _serve_service(service: dict, cluster: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": serve_service_name(c.name_of(service)),
            "namespace": c.namespace_of(service),
            "labels": {c.LABEL_CREATED_BY: c.CREATED_BY, c.LABEL_ORIGIN_NAME: c.name_of(service)},
            "ownerReferences": [c.owner_reference(service, KIND)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {c.LABEL_CLUSTER: cluster, c.LABEL_NODE_TYPE: "head"},
            "ports": [{"name": "serve", "port": c.PORTS["serve"], "targetPort": c.PORTS["serve"], "protocol": "TCP"}],
        },
    }


def reconcile_service(service: dict, clusters: list[dict], services: list[dict], deployed: dict[str, str]) -> Plan:
    """One pass. ``deployed``: cluster name -> hash of the serve config it runs (from the
    adapter's successful deployments)."""
    plan = Plan()
    spec = service.get("spec") or {}
    status = dict(service.get("status") or {})
    if not spec.get("rayClusterConfig"):
        plan.warn("InvalidRayServiceSpec", "spec.rayClusterConfig is required")
        plan.status = {**status, "serviceStatus": "FailedToGetOrCreateRayCluster", "message": "spec.rayClusterConfig is required"}
        return plan
    config_hash = c.short_hash(spec.get("serveConfigV2") or "")
    wanted = cluster_name_for(service)
    by_name = {c.name_of(x): x for x in clusters}
    active = (status.get("activeServiceStatus") or {}).get("rayClusterName") or None
    pending = (status.get("pendingServiceStatus") or {}).get("rayClusterName") or None
    if active and active not in by_name:
        active = None  # deleted under us: serve from whatever comes up next
    if pending and pending != wanted:
        plan.delete.append(("RayCluster", pending))  # the config changed again mid-upgrade
        pending = None
    if active != wanted and pending is None:
        pending = wanted
    if pending and pending not in by_name:
        plan.create.append(c.owned_cluster(service, KIND, pending, spec["rayClusterConfig"]))
        plan.note("CreatedRayCluster", f"created RayCluster {pending}" + (f" to replace {active}" if active else ""))
    for name in (active, pending):
        cluster = by_name.get(name) if name else None
        if cluster is not None and (cluster.get("status") or {}).get("state") == "ready" and deployed.get(name) != config_hash:
            plan.calls.append({"call": "deploy_serve", "cluster": name, "config": spec.get("serveConfigV2") or "", "config_hash": config_hash})
    ready_pending = pending and (by_name.get(pending, {}).get("status") or {}).get("state") == "ready" and deployed.get(pending) == config_hash
    if ready_pending:
        if active:
            plan.delete.append(("RayCluster", active))
            plan.note("SwitchedCluster", f"serving from {pending}; deleting {active}")
        active, pending = pending, None
    svc = next((s for s in services if c.name_of(s) == serve_service_name(c.name_of(service))), None)
    if active:
        desired = _serve_service(service, active)
        if svc is None:
            plan.create.append(desired)
        elif (svc.get("spec") or {}).get("selector") != desired["spec"]["selector"]:
            plan.update.append({**svc, "spec": {**svc["spec"], "selector": desired["spec"]["selector"]}})
    running = bool(active) and deployed.get(active) == config_hash
    status.update(
        serviceStatus="Running" if running else "WaitForServeDeploymentReady",
        activeServiceStatus={"rayClusterName": active or ""},
        pendingServiceStatus={"rayClusterName": pending or ""},
        observedGeneration=c.meta(service).get("generation", 0),
    )
    plan.status = status
    if not running or pending:
        plan.requeue_after = 2
    return plan
