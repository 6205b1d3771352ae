"""RayCluster reconciliation: desired Pods/Services from the spec and the observed objects.

Level-based and idempotent, as KubeRay: every pass compares the spec with what exists and
plans the difference, so a missed event, a deleted Pod or an operator restart all heal the
same way. ``reconcile_cluster`` does no IO; ``solray.kubernetes.operator`` carries it out.
"""

from __future__ import annotations

from solray.kubernetes._internal import common as c
from solray.kubernetes._internal.autoscaling import autoscaler_container, autoscaler_rbac
from solray.kubernetes._internal.plan import Plan
from solray.kubernetes._internal.pods import (
    build_head_service,
    build_pod,
    build_token_secret,
    ignored_start_params,
)
from solray.kubernetes._internal.validation import InvalidSpec, validate_cluster_spec

KIND = "RayCluster"
_DEAD_PHASES = ("Failed", "Succeeded")


def _terminating(pod: dict) -> bool:
    return bool(c.meta(pod).get("deletionTimestamp"))


def _dead(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in _DEAD_PHASES


def _running(pod: dict) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    ready = [cs.get("ready") for cs in status.get("containerStatuses") or []]
    return all(ready) if ready else True


def _pod_order(pod: dict) -> tuple:
    return (c.meta(pod).get("creationTimestamp") or "", c.name_of(pod))


def desired_replicas(group: dict) -> int:
    """``replicas`` clamped into [minReplicas, maxReplicas] (KubeRay's rule)."""
    low = group.get("minReplicas") or 0
    high = group.get("maxReplicas")
    replicas = group.get("replicas")
    replicas = low if replicas is None else replicas
    if high is not None:
        replicas = min(replicas, high)
    return max(replicas, low)


def _condition(kind: str, ok: bool, reason: str, message: str, now: str, old: list[dict]) -> dict:
    status = "True" if ok else "False"
    previous = next((x for x in old if x.get("type") == kind), None)
    since = previous["lastTransitionTime"] if previous and previous.get("status") == status else now
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since}


def reconcile_cluster(
    cluster: dict,
    pods: list[dict],
    services: list[dict],
    secrets: list[dict],
    *,
    new_token: str,
    now: str,
    rbac: list[dict] = (),
) -> Plan:
    """Plan one pass for ``cluster`` given the Pods, Services and Secrets labelled with its name
    (and its ServiceAccount, Role and RoleBinding in ``rbac``, for the autoscaler).

    ``new_token`` is used only when the cluster has no token Secret yet; ``now`` is an RFC 3339
    time for condition transitions.
    """
    plan = Plan()
    name = c.name_of(cluster)
    spec = cluster.get("spec") or {}
    old_status = cluster.get("status") or {}
    try:
        validate_cluster_spec(spec)
    except InvalidSpec as e:
        plan.warn("InvalidRayClusterSpec", str(e))
        plan.status = {**old_status, "state": "failed", "reason": str(e)}
        return plan
    live = [p for p in pods if not _terminating(p)]
    if not any(c.name_of(s) == c.token_secret_name(name) for s in secrets):
        plan.create.append(build_token_secret(cluster, KIND, name, new_token))
    head_spec = spec["headGroupSpec"]
    if not any(c.name_of(s) == c.head_service_name(name) for s in services):
        plan.create.append(build_head_service(cluster, KIND, name, head_spec.get("serviceType")))
    _warn_ignored_params(plan, spec, old_status)
    suspended = c.is_true(spec.get("suspend"))

    heads = [p for p in live if (c.meta(p).get("labels") or {}).get(c.LABEL_NODE_TYPE) == "head"]
    for pod in heads:
        if _dead(pod) or suspended:
            plan.delete.append(("Pod", c.name_of(pod)))
            if not suspended:
                plan.warn("HeadPodFailed", f"head Pod {c.name_of(pod)} ended ({pod['status']['phase']}); replacing it")
    alive_heads = [p for p in heads if not _dead(p)]
    autoscaling = c.is_true(spec.get("enableInTreeAutoscaling"))
    if autoscaling:
        have = {(o.get("kind"), c.name_of(o)) for o in rbac}
        plan.create += [o for o in autoscaler_rbac(cluster, KIND) if (o["kind"], name) not in have]
    if not suspended and not alive_heads:
        sidecar = autoscaler_container(name, spec) if autoscaling else None
        plan.create.append(build_pod(cluster, KIND, name, head_spec, head=True, sidecar=sidecar))
    for extra in sorted(alive_heads, key=_pod_order)[1:]:
        if not suspended:
            plan.delete.append(("Pod", c.name_of(extra)))

    groups = spec.get("workerGroupSpecs") or []
    cleared = False
    counts = {"available": 0, "ready": 0, "desired": 0, "min": 0, "max": 0}
    for group in groups:
        gname = group["groupName"]
        mine = [p for p in live if (c.meta(p).get("labels") or {}).get(c.LABEL_GROUP) == gname
                and (c.meta(p).get("labels") or {}).get(c.LABEL_NODE_TYPE) == "worker"]
        group_suspended = suspended or c.is_true(group.get("suspend"))
        replicas = 0 if group_suspended else desired_replicas(group)
        counts["desired"] += replicas
        counts["min"] += group.get("minReplicas") or 0
        counts["max"] += group.get("maxReplicas") if group.get("maxReplicas") is not None else replicas
        doomed: list[str] = []
        for pod in mine:
            if _dead(pod):
                doomed.append(c.name_of(pod))
                plan.warn("WorkerPodFailed", f"worker Pod {c.name_of(pod)} ended ({pod['status']['phase']}); replacing it")
        to_delete = (group.get("scaleStrategy") or {}).get("workersToDelete") or []
        names = {c.name_of(p) for p in mine}
        for pod_name in to_delete:
            if pod_name in names:
                if pod_name not in doomed:
                    doomed.append(pod_name)
            elif not any(c.name_of(p) == pod_name for p in pods):
                plan.warn("UnknownWorkerToDelete",
                          f"workerGroupSpecs {gname!r} scaleStrategy.workersToDelete names {pod_name!r}, "
                          "which is not a worker Pod of this group; ignoring it")
        cleared = cleared or bool(to_delete)
        remaining = sorted((p for p in mine if c.name_of(p) not in doomed), key=_pod_order)
        if group_suspended:
            doomed += [c.name_of(p) for p in remaining]
            remaining = []
        elif len(remaining) > replicas and not autoscaling:
            # Without the autoscaler, scale down the newest Pods; with it, only the Pods it
            # named in workersToDelete go (it drained those first).
            extra = remaining[replicas:]
            doomed += [c.name_of(p) for p in extra]
            remaining = remaining[:replicas]
        for pod_name in doomed:
            plan.delete.append(("Pod", pod_name))
        for _ in range(replicas - len(remaining)):
            plan.create.append(build_pod(cluster, KIND, name, group, head=False))
        counts["available"] += sum(1 for p in remaining if _running(p))
        counts["ready"] += sum(1 for p in remaining if _running(p))
    if cleared:
        plan.spec_patch = {"workerGroupSpecs": [
            {**g, "scaleStrategy": {**(g.get("scaleStrategy") or {}), "workersToDelete": []}} for g in groups
        ]}
    plan.status = _status(cluster, alive_heads, services, counts, suspended, plan, now)
    return plan


def _warn_ignored_params(plan: Plan, spec: dict, old_status: dict) -> None:
    if old_status.get("observedGeneration"):
        return  # reported on the first pass only
    groups = [("headGroupSpec", spec["headGroupSpec"])] + [
        (f"workerGroupSpecs[{g['groupName']}]", g) for g in spec.get("workerGroupSpecs") or []
    ]
    for where, group in groups:
        ignored = ignored_start_params(group.get("rayStartParams"))
        if ignored:
            plan.note("IgnoredRayStartParams", f"{where}.rayStartParams {ignored} have no meaning for solray; ignored")


def _status(cluster: dict, heads: list[dict], services: list[dict], counts: dict, suspended: bool, plan: Plan, now: str) -> dict:
    name = c.name_of(cluster)
    old = cluster.get("status") or {}
    head = heads[0] if heads else None
    head_ready = head is not None and _running(head) and not any(d == ("Pod", c.name_of(head)) for d in plan.delete)
    svc = next((s for s in services if c.name_of(s) == c.head_service_name(name)), None)
    all_ready = head_ready and counts["available"] >= counts["desired"] and not plan.create
    was_ready = old.get("state") in ("ready", "unhealthy")
    if suspended:
        state = "suspended"
    elif all_ready or (was_ready and head_ready):
        state = "ready"  # sticky once provisioned while the head lives (scaling is not an outage)
    else:
        state = "unhealthy" if was_ready else ""
    head_info = {"serviceName": c.head_service_name(name)}
    if head is not None:
        head_info["podName"] = c.name_of(head)
        if (head.get("status") or {}).get("podIP"):
            head_info["podIP"] = head["status"]["podIP"]
    if svc is not None and (svc.get("spec") or {}).get("clusterIP"):
        head_info["serviceIP"] = svc["spec"]["clusterIP"]
    conditions = old.get("conditions") or []
    status = {
        "state": state,
        "availableWorkerReplicas": counts["available"],
        "readyWorkerReplicas": counts["ready"],
        "desiredWorkerReplicas": counts["desired"],
        "minWorkerReplicas": counts["min"],
        "maxWorkerReplicas": counts["max"],
        "endpoints": {k: str(v) for k, v in c.PORTS.items()},
        "head": head_info,
        "observedGeneration": c.meta(cluster).get("generation", 0),
        "conditions": [
            _condition("HeadPodReady", head_ready, "HeadPodRunningAndReady" if head_ready else "HeadPodNotFound" if head is None else "HeadPodNotReady",
                       "", now, conditions),
            _condition("RayClusterProvisioned", all_ready, "AllPodRunningAndReadyFirstTime" if all_ready else "RayClusterPodsProvisioning",
                       "", now, conditions),
        ],
    }
    if state == "ready" and old.get("state") != "ready":
        status["stateTransitionTimes"] = {**(old.get("stateTransitionTimes") or {}), "ready": now}
    status["reason"] = ""
    return status
