"""RayJob reconciliation: make (or select) a RayCluster, submit the entrypoint through the
Jobs REST API once the cluster is ready, mirror the job's status, clean up when asked.

KubeRay's life cycle: jobDeploymentStatus goes Initializing -> Running -> Complete | Failed
(Suspended while ``suspend``); jobStatus mirrors the Ray job (PENDING, RUNNING, SUCCEEDED,
FAILED, STOPPED). ``submissionMode`` K8sJobMode (default) runs ``solray job submit`` in a
Kubernetes Job; HTTPMode has the operator post to the Jobs API itself.
"""

from __future__ import annotations

import json
import shlex
from datetime import datetime

from solray.kubernetes._internal import common as c
from solray.kubernetes._internal.plan import Plan

KIND = "RayJob"
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
_SUBMIT_KEYS = ("entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "metadata")


def _seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def job_cluster_name(job: dict) -> str:
    selector = (job.get("spec") or {}).get("clusterSelector") or {}
    if selector:
        return selector.get(c.LABEL_CLUSTER, "")
    return (job.get("status") or {}).get("rayClusterName") or f"{c.name_of(job)}-raycluster-{c.short_hash(c.meta(job).get('uid') or c.name_of(job))}"


def job_submission_id(job: dict) -> str:
    spec = job.get("spec") or {}
    return (job.get("status") or {}).get("jobId") or spec.get("jobId") or f"{c.name_of(job)}-{c.short_hash([c.meta(job).get('uid'), 'job'], 8)}"


def dashboard_address(cluster: str, namespace: str) -> str:
    return f"{c.head_service_host(cluster, namespace)}:{c.PORTS['dashboard']}"


def _runtime_env(spec: dict) -> dict | None:
    import yaml

    text = spec.get("runtimeEnvYAML")
    if not text:
        return None
    env = yaml.safe_load(text)
    if not isinstance(env, dict):
        raise ValueError("spec.runtimeEnvYAML must be a YAML mapping")
    return env


def submit_call(job: dict, cluster: str) -> dict:
    """The Jobs REST submission (HTTPMode) for ``job`` on ``cluster``."""
    spec = job["spec"]
    call = {
        "call": "submit_job",
        "cluster": cluster,
        "submission_id": job_submission_id(job),
        "entrypoint": spec["entrypoint"],
        "runtime_env": _runtime_env(spec),
    }
    for key in _SUBMIT_KEYS:
        if spec.get(key) is not None:
            call[key] = spec[key]
    return call


def build_submitter_job(job: dict, cluster: str, image: str) -> dict:
    """K8sJobMode: a Kubernetes Job running ``solray job submit`` against the head (KubeRay
    runs ``ray job submit`` the same way; its logs are the job's logs)."""
    spec = job["spec"]
    ns = c.namespace_of(job)
    words = ["solray", "job", "submit", f"--address=http://{dashboard_address(cluster, ns)}",
             f"--submission-id={job_submission_id(job)}"]
    env = _runtime_env(spec)
    if env:
        words.append(f"--runtime-env-json={shlex.quote(json.dumps(env))}")
    if spec.get("entrypointNumCpus") is not None:
        words.append(f"--entrypoint-num-cpus={spec['entrypointNumCpus']}")
    if spec.get("entrypointNumGpus") is not None:
        words.append(f"--entrypoint-num-gpus={spec['entrypointNumGpus']}")
    template = c.deep(spec.get("submitterPodTemplate") or {}) or {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "ray-job-submitter", "image": image}]}
    }
    container = template["spec"]["containers"][0]
    container.setdefault("command", ["/bin/bash", "-lc", "--"])
    container.setdefault("args", [" ".join(words) + " -- " + spec["entrypoint"]])
    container["env"] = list(container.get("env") or []) + [
        {"name": "SOLRAY_TOKEN", "valueFrom": {"secretKeyRef": {"name": c.token_secret_name(cluster), "key": c.TOKEN_KEY}}},
    ]
    template["spec"].setdefault("restartPolicy", "Never")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": c.name_of(job),
            "namespace": ns,
            "labels": {c.LABEL_CREATED_BY: c.CREATED_BY, "ray.io/originated-from-cr-name": c.name_of(job)},
            "ownerReferences": [c.owner_reference(job, KIND)],
        },
        "spec": {"backoffLimit": (spec.get("submitterConfig") or {}).get("backoffLimit", 2), "template": template},
    }


def build_job_cluster(job: dict, cluster: str) -> dict:
    return c.owned_cluster(job, KIND, cluster, job["spec"]["rayClusterSpec"])


def reconcile_job(job: dict, clusters: list[dict], submitters: list[dict], job_info: dict | None, *, now: str) -> Plan:
    """One pass for ``job``. ``clusters``: RayClusters of its namespace; ``submitters``: batch
    Jobs named after it; ``job_info``: the Jobs API's record of its submission id (None if
    not submitted or the head is unreachable)."""
    plan = Plan()
    spec = job.get("spec") or {}
    status = dict(job.get("status") or {})
    ns = c.namespace_of(job)
    selector = spec.get("clusterSelector") or {}
    if not spec.get("entrypoint"):
        return _fail(plan, status, "spec.entrypoint is required")
    if not selector and not spec.get("rayClusterSpec"):
        return _fail(plan, status, "spec needs rayClusterSpec (a cluster for the job) or clusterSelector (an existing one)")
    if selector and not selector.get(c.LABEL_CLUSTER):
        return _fail(plan, status, f"spec.clusterSelector must name the cluster with the {c.LABEL_CLUSTER!r} key")
    try:
        _runtime_env(spec)
    except Exception as e:  # yaml errors come in several classes; all mean the same to the user
        return _fail(plan, status, f"spec.runtimeEnvYAML is not valid: {e}")
    name = job_cluster_name(job)
    cluster = next((x for x in clusters if c.name_of(x) == name), None)
    status.update(rayClusterName=name, jobId=job_submission_id(job), dashboardURL=dashboard_address(name, ns),
                  observedGeneration=c.meta(job).get("generation", 0))
    status.setdefault("startTime", now)
    deployment = status.get("jobDeploymentStatus") or ""

    if deployment in ("Complete", "Failed"):
        if c.is_true(spec.get("shutdownAfterJobFinishes")) and not selector and cluster is not None:
            due = _seconds(status.get("endTime") or now) + (spec.get("ttlSecondsAfterFinished") or 0)
            if _seconds(now) >= due:
                plan.delete.append(("RayCluster", name))
                plan.note("DeletedRayCluster", f"deleted RayCluster {name}: the job finished and shutdownAfterJobFinishes is set")
            else:
                plan.requeue_after = due - _seconds(now)
        plan.status = status
        return plan
    if c.is_true(spec.get("suspend")):
        if cluster is not None and not selector:
            plan.delete.append(("RayCluster", name))
        status.update(jobDeploymentStatus="Suspended")
        plan.status = status
        return plan
    if cluster is None:
        if selector:
            plan.warn("RayClusterNotFound", f"clusterSelector names RayCluster {name!r}, which does not exist (yet)")
            status.update(jobDeploymentStatus="Initializing", message=f"waiting for RayCluster {name}")
            plan.requeue_after = 5
        else:
            plan.create.append(build_job_cluster(job, name))
            status.update(jobDeploymentStatus="Initializing", jobStatus="")
            plan.note("CreatedRayCluster", f"created RayCluster {name} for the job")
        plan.status = status
        return plan
    status["rayClusterStatus"] = cluster.get("status") or {}
    if (cluster.get("status") or {}).get("state") != "ready" and job_info is None:
        status.update(jobDeploymentStatus="Initializing")
        plan.status = status
        return plan
    if job_info is None:
        if spec.get("submissionMode") == "HTTPMode":
            plan.calls.append(submit_call(job, name))
        elif not submitters:
            image = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
            plan.create.append(build_submitter_job(job, name, image))
        status.update(jobDeploymentStatus="Running", jobStatus=status.get("jobStatus") or "PENDING")
        plan.requeue_after = 2
        plan.status = status
        return plan
    ray_status = str(job_info.get("status") or "PENDING")
    status.update(jobStatus=ray_status, jobDeploymentStatus="Running", message=job_info.get("message") or "")
    if ray_status in TERMINAL:
        status.update(jobDeploymentStatus="Failed" if ray_status == "FAILED" else "Complete", endTime=now)
        plan.note("JobFinished", f"job {status['jobId']} finished: {ray_status}")
        if c.is_true(spec.get("shutdownAfterJobFinishes")) and not selector:
            plan.requeue_after = spec.get("ttlSecondsAfterFinished") or 0.01
    else:
        plan.requeue_after = 2
    plan.status = status
    return plan


def _fail(plan: Plan, status: dict, message: str) -> Plan:
    plan.warn("InvalidRayJobSpec", message)
    plan.status = {**status, "jobDeploymentStatus": "Failed", "message": message}
    return plan
