"""Carrying out reconcile plans against the API server, and the calls to Ray heads' HTTP
APIs (Jobs, Serve) that RayJob and RayService plans ask for. Used by the kopf adapter."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import time

from solray.kubernetes._internal import common as c
from solray.kubernetes._internal.client import ApiError, KubeClient
from solray.kubernetes._internal.plan import Plan
from solray.kubernetes._internal.raycluster import reconcile_cluster
from solray.kubernetes._internal.rayjob import job_cluster_name, job_submission_id, reconcile_job
from solray.kubernetes._internal.rayservice import reconcile_service, serve_service_name

logger = logging.getLogger("solray.operator")
# Set to reach every cluster's dashboard at one address: an operator run outside the
# Kubernetes network (development, tests) cannot resolve <cluster>-head-svc.<ns>.svc.
DASHBOARD_URL_ENV = "SOLRAY_OPERATOR_DASHBOARD_URL"


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class OperatorRuntime:
    """Owns the API client, per-object locks (one reconcile at a time per object), the
    requeue timers and what each cluster serves. One per operator process."""

    def __init__(self, client: KubeClient):
        self.client = client
        self._locks: dict[tuple, asyncio.Lock] = {}
        self._requeued: dict[tuple, asyncio.TimerHandle] = {}
        self.deployed: dict[tuple[str, str], str] = {}  # (namespace, cluster) -> serve config hash

    def _lock(self, key: tuple) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    # ---- entry points ------------------------------------------------------------------
    async def reconcile(self, kind: str, namespace: str, name: str) -> None:
        async with self._lock((kind, namespace, name)):
            obj = await self.client.get(kind, namespace, name)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                return
            plan = await {"RayCluster": self._cluster_plan, "RayJob": self._job_plan, "RayService": self._service_plan}[kind](obj)
            await self.apply(kind, obj, plan)
        if plan.requeue_after is not None:
            self.requeue(kind, namespace, name, plan.requeue_after)

    def requeue(self, kind: str, namespace: str, name: str, delay: float) -> None:
        key = (kind, namespace, name)
        old = self._requeued.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._requeued[key] = loop.call_later(max(0.05, delay), lambda: loop.create_task(self._safe(kind, namespace, name)))

    async def _safe(self, kind: str, namespace: str, name: str) -> None:
        try:
            await self.reconcile(kind, namespace, name)
        except Exception as e:
            if isinstance(e, ApiError) and e.status == 404 and await self.client.get(kind, namespace, name) is None:
                # Deleted while we reconciled it: nothing left to do (the garbage collector
                # takes what it owned, children created just now included).
                logger.info("%s %s/%s was deleted during its reconcile", kind, namespace, name)
                return
            logger.exception("reconciling %s %s/%s failed", kind, namespace, name)
            self.requeue(kind, namespace, name, 5)

    # ---- plans -------------------------------------------------------------------------
    async def _cluster_plan(self, cluster: dict) -> Plan:
        ns, name = c.namespace_of(cluster), c.name_of(cluster)
        selector = {c.LABEL_CLUSTER: name}
        kinds = ("Pod", "Service", "Secret", "ServiceAccount", "Role", "RoleBinding")
        pods, services, secrets_, *rbac = await asyncio.gather(*(self.client.list(k, ns, selector) for k in kinds))
        rbac = [{**o, "kind": k} for k, objs in zip(kinds[3:], rbac, strict=True) for o in objs]
        return reconcile_cluster(cluster, pods, services, secrets_, new_token=secrets.token_hex(16), now=now_rfc3339(),
                                 rbac=rbac)

    async def _job_plan(self, job: dict) -> Plan:
        ns = c.namespace_of(job)
        clusters = await self.client.list("RayCluster", ns)
        submitters = [j for j in await self.client.list("Job", ns) if c.name_of(j) == c.name_of(job)]
        cluster_name = job_cluster_name(job)
        info = None
        cluster = next((x for x in clusters if c.name_of(x) == cluster_name), None)
        if (job.get("status") or {}).get("jobDeploymentStatus") == "Running" and cluster is not None:
            info = await self._job_info(ns, cluster_name, job_submission_id(job))
        return reconcile_job(job, clusters, submitters, info, now=now_rfc3339())

    async def _service_plan(self, service: dict) -> Plan:
        ns = c.namespace_of(service)
        clusters = [x for x in await self.client.list("RayCluster", ns)
                    if (x["metadata"].get("labels") or {}).get(c.LABEL_ORIGIN_NAME) == c.name_of(service)]
        svc = await self.client.get("Service", ns, serve_service_name(c.name_of(service)))
        deployed = {cl: h for (n, cl), h in self.deployed.items() if n == ns}
        return reconcile_service(service, clusters, [svc] if svc else [], deployed)

    # ---- carrying a plan out -----------------------------------------------------------
    async def apply(self, kind: str, obj: dict, plan: Plan) -> None:
        ns, name = c.namespace_of(obj), c.name_of(obj)
        for new in plan.create:
            try:
                await self.client.create(new)
            except ApiError as e:
                if e.status != 409:
                    plan.warn("CreateFailed", f"creating {new['kind']} {new['metadata'].get('name') or new['metadata'].get('generateName')}: {e}")
        for dkind, dname in plan.delete:
            await self.client.delete(dkind, ns, dname)
        for new in plan.update:
            await self.client.replace(new)
        if plan.spec_patch:
            # Conditional on the version we read: the autoscaler may have changed the groups
            # meanwhile, and its change must not be overwritten (the next pass sees it).
            try:
                await self.client.patch(kind, ns, name, {
                    "metadata": {"resourceVersion": obj["metadata"].get("resourceVersion")}, "spec": plan.spec_patch})
            except ApiError as e:
                if e.status != 409:
                    raise
                plan.requeue_after = 0.1
        for call in plan.calls:
            await self._http_call(ns, call, plan)
        if plan.status and plan.status != obj.get("status"):
            await self.client.patch(kind, ns, name, {"status": plan.status}, status=True)
        for event in plan.events:
            await self._post_event(kind, obj, event.type, event.reason, event.message)

    async def _post_event(self, kind: str, obj: dict, type_: str, reason: str, message: str) -> None:
        md = obj["metadata"]
        stamp = now_rfc3339()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{md['name']}.", "namespace": c.namespace_of(obj)},
            "involvedObject": {"apiVersion": obj.get("apiVersion", c.API_VERSION), "kind": kind, "name": md["name"],
                               "namespace": c.namespace_of(obj), "uid": md.get("uid", "")},
            "reason": reason, "message": message[:1024], "type": type_,
            "source": {"component": "solray-operator"}, "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        log = logger.warning if type_ == "Warning" else logger.info
        log("%s %s/%s: %s: %s", kind, c.namespace_of(obj), md["name"], reason, message)
        try:
            await self.client.create(event)
        except ApiError as e:  # events are best effort
            logger.debug("posting an event failed: %s", e)

    # ---- Ray heads' HTTP APIs ----------------------------------------------------------
    async def _dashboard(self, namespace: str, cluster: str) -> tuple[str, dict]:
        url = os.environ.get(DASHBOARD_URL_ENV) or f"http://{c.head_service_host(cluster, namespace)}:{c.PORTS['dashboard']}"
        secret = await self.client.get("Secret", namespace, c.token_secret_name(cluster))
        token = base64.b64decode(secret["data"][c.TOKEN_KEY]).decode() if secret else ""
        return url, {"Authorization": f"Bearer {token}"} if token else {}

    async def _job_client(self, namespace: str, cluster: str):
        from solray.job_submission import JobSubmissionClient

        url, headers = await self._dashboard(namespace, cluster)
        return await asyncio.to_thread(JobSubmissionClient, url, headers=headers)

    async def _job_info(self, namespace: str, cluster: str, submission_id: str) -> dict | None:
        try:
            client = await self._job_client(namespace, cluster)
            info = await asyncio.to_thread(client.get_job_info, submission_id)
        except Exception as e:  # not submitted yet, or the head is not reachable (yet)
            logger.debug("job %s: no info yet (%s)", submission_id, e)
            return None
        return {"status": str(getattr(info.status, "value", info.status)), "message": info.message or ""}

    async def _http_call(self, namespace: str, call: dict, plan: Plan) -> None:
        try:
            if call["call"] == "submit_job":
                client = await self._job_client(namespace, call["cluster"])
                resources = call.get("entrypointResources")
                await asyncio.to_thread(
                    client.submit_job, entrypoint=call["entrypoint"], submission_id=call["submission_id"],
                    runtime_env=call.get("runtime_env"), metadata=call.get("metadata"),
                    entrypoint_num_cpus=call.get("entrypointNumCpus"), entrypoint_num_gpus=call.get("entrypointNumGpus"),
                    entrypoint_resources=json.loads(resources) if resources else None)
                plan.note("Submitted", f"submitted job {call['submission_id']} to RayCluster {call['cluster']}")
            elif call["call"] == "deploy_serve":
                await self._deploy_serve(namespace, call)
                self.deployed[(namespace, call["cluster"])] = call["config_hash"]
                plan.note("ServeDeployed", f"deployed the serve config to RayCluster {call['cluster']}")
        except Exception as e:
            if "already exists" in str(e):
                return  # submitted by an earlier pass
            plan.warn("HeadCallFailed", f"{call['call']} on RayCluster {call['cluster']} failed: {e}")

    async def _deploy_serve(self, namespace: str, call: dict) -> None:
        import urllib.request

        import yaml

        url, headers = await self._dashboard(namespace, call["cluster"])
        body = json.dumps(yaml.safe_load(call["config"]) or {}).encode()
        req = urllib.request.Request(f"{url}/api/serve/applications/", data=body, method="PUT",
                                     headers={**headers, "Content-Type": "application/json"})
        await asyncio.to_thread(lambda: urllib.request.urlopen(req, timeout=30).read())


def owner_cluster(obj: dict) -> str | None:
    return (obj["metadata"].get("labels") or {}).get(c.LABEL_CLUSTER)
