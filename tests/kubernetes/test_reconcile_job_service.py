"""RayJob and RayService life cycles as pure functions."""

from __future__ import annotations

import copy

from k8s_objects import manifest

from solray.kubernetes import reconcile_job, reconcile_service, serve_service_name

T0, T1, T2 = "2026-01-01T01:00:00Z", "2026-01-01T01:00:05Z", "2026-01-01T01:00:20Z"


def ready(cluster: dict) -> dict:
    return {**copy.deepcopy(cluster), "status": {"state": "ready"}}


def test_rayjob_life_cycle_http_mode_then_cluster_deleted_after_ttl():
    job = manifest("rayjob.yaml")
    job["spec"]["submissionMode"] = "HTTPMode"
    plan = reconcile_job(job, [], [], None, now=T0)
    [cluster] = plan.create
    name = cluster["metadata"]["name"]
    assert name.startswith("rayjob-sample-raycluster-") and cluster["kind"] == "RayCluster"
    assert cluster["metadata"]["ownerReferences"][0]["kind"] == "RayJob"
    assert cluster["spec"] == job["spec"]["rayClusterSpec"]
    assert plan.status["jobDeploymentStatus"] == "Initializing" and plan.status["rayClusterName"] == name
    job["status"] = plan.status
    # The cluster exists but is not ready: wait.
    plan = reconcile_job(job, [cluster], [], None, now=T0)
    assert not plan.calls and plan.status["jobDeploymentStatus"] == "Initializing"
    plan = reconcile_job(job, [ready(cluster)], [], None, now=T0)
    [call] = plan.calls
    assert call == {"call": "submit_job", "cluster": name, "submission_id": plan.status["jobId"],
                    "entrypoint": "python /home/ray/samples/sample_code.py",
                    "runtime_env": {"env_vars": {"counter_name": "test_counter"}}}
    assert plan.status["jobDeploymentStatus"] == "Running" and plan.status["jobStatus"] == "PENDING"
    assert plan.status["dashboardURL"] == f"{name}-head-svc.default.svc.cluster.local:8265"
    job["status"] = plan.status
    plan = reconcile_job(job, [ready(cluster)], [], {"status": "RUNNING"}, now=T0)
    assert plan.status["jobStatus"] == "RUNNING" and not plan.calls
    job["status"] = plan.status
    plan = reconcile_job(job, [ready(cluster)], [], {"status": "SUCCEEDED", "message": "done"}, now=T1)
    assert plan.status["jobDeploymentStatus"] == "Complete" and plan.status["endTime"] == T1
    job["status"] = plan.status
    plan = reconcile_job(job, [ready(cluster)], [], None, now=T1)
    assert plan.delete == [] and 9 < plan.requeue_after <= 10  # ttlSecondsAfterFinished=10
    plan = reconcile_job(job, [ready(cluster)], [], None, now=T2)
    assert plan.delete == [("RayCluster", name)]


def test_rayjob_k8s_job_mode_creates_submitter_and_failed_job():
    job = manifest("rayjob.yaml")
    job["spec"]["shutdownAfterJobFinishes"] = False
    job["status"] = reconcile_job(job, [], [], None, now=T0).status
    cluster = {"metadata": {"name": job["status"]["rayClusterName"]}, "spec": job["spec"]["rayClusterSpec"], "status": {"state": "ready"}}
    plan = reconcile_job(job, [cluster], [], None, now=T0)
    [submitter] = plan.create
    assert submitter["kind"] == "Job" and submitter["metadata"]["name"] == "rayjob-sample"
    container = submitter["spec"]["template"]["spec"]["containers"][0]
    line = container["args"][0]
    assert line.startswith(f"solray job submit --address=http://{cluster['metadata']['name']}-head-svc.default.svc.cluster.local:8265 ")
    assert f"--submission-id={plan.status['jobId']}" in line
    assert line.endswith(" -- python /home/ray/samples/sample_code.py")
    assert container["image"] == "solray/solray:latest"
    # Submitted already: no second submitter.
    assert reconcile_job(job, [cluster], [submitter], None, now=T0).create == []
    job["status"] = plan.status
    plan = reconcile_job(job, [cluster], [submitter], {"status": "FAILED", "message": "boom"}, now=T1)
    assert plan.status["jobDeploymentStatus"] == "Failed" and plan.status["message"] == "boom"
    job["status"] = plan.status
    assert reconcile_job(job, [cluster], [submitter], None, now=T2).delete == []


def test_rayjob_cluster_selector_uses_existing_cluster_and_never_deletes_it():
    job = manifest("rayjob.yaml")
    del job["spec"]["rayClusterSpec"]
    job["spec"]["clusterSelector"] = {"ray.io/cluster": "shared"}
    job["spec"]["submissionMode"] = "HTTPMode"
    plan = reconcile_job(job, [], [], None, now=T0)
    assert not plan.create and plan.events[0].reason == "RayClusterNotFound"
    shared = {"metadata": {"name": "shared"}, "status": {"state": "ready"}}
    plan = reconcile_job(job, [shared], [], None, now=T0)
    assert plan.calls[0]["cluster"] == "shared"
    job["status"] = plan.status
    job["status"] = reconcile_job(job, [shared], [], {"status": "SUCCEEDED"}, now=T0).status
    assert reconcile_job(job, [shared], [], None, now=T2).delete == []


def test_rayjob_invalid_specs():
    job = manifest("rayjob.yaml")
    del job["spec"]["entrypoint"]
    plan = reconcile_job(job, [], [], None, now=T0)
    assert plan.status["jobDeploymentStatus"] == "Failed" and "entrypoint" in plan.status["message"]
    job = manifest("rayjob.yaml")
    job["spec"]["runtimeEnvYAML"] = "just a string"
    plan = reconcile_job(job, [], [], None, now=T0)
    assert "runtimeEnvYAML" in plan.status["message"] and plan.events[0].type == "Warning"


def test_rayservice_zero_downtime_upgrade():
    svc = manifest("rayservice.yaml")
    plan = reconcile_service(svc, [], [], {})
    [first] = plan.create
    a = first["metadata"]["name"]
    assert a.startswith("rayservice-sample-raycluster-")
    assert plan.status["serviceStatus"] == "WaitForServeDeploymentReady"
    svc["status"] = plan.status
    plan = reconcile_service(svc, [ready(first)], [], {})
    [call] = plan.calls
    assert call["call"] == "deploy_serve" and call["cluster"] == a and "fruit_app" in call["config"]
    deployed = {a: call["config_hash"]}
    plan = reconcile_service(svc, [ready(first)], [], deployed)
    [serve_svc] = plan.create
    assert serve_svc["metadata"]["name"] == serve_service_name("rayservice-sample") == "rayservice-sample-serve-svc"
    assert serve_svc["spec"]["selector"]["ray.io/cluster"] == a
    assert plan.status["serviceStatus"] == "Running" and plan.status["activeServiceStatus"]["rayClusterName"] == a
    svc["status"] = plan.status
    # A new cluster config: a second cluster comes up while the first keeps serving.
    svc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] = 2
    plan = reconcile_service(svc, [ready(first)], [serve_svc], deployed)
    [second] = plan.create
    b = second["metadata"]["name"]
    assert b != a and not plan.delete and not plan.update
    assert plan.status["activeServiceStatus"]["rayClusterName"] == a and plan.status["pendingServiceStatus"]["rayClusterName"] == b
    svc["status"] = plan.status
    plan = reconcile_service(svc, [ready(first), second], [serve_svc], deployed)
    assert not plan.update and not plan.delete  # b not ready: traffic stays on a
    plan = reconcile_service(svc, [ready(first), ready(second)], [serve_svc], deployed)
    assert [c["cluster"] for c in plan.calls] == [b]
    deployed[b] = plan.calls[0]["config_hash"]
    plan = reconcile_service(svc, [ready(first), ready(second)], [serve_svc], deployed)
    [switched] = plan.update
    assert switched["spec"]["selector"]["ray.io/cluster"] == b
    assert plan.delete == [("RayCluster", a)]
    assert plan.status["activeServiceStatus"]["rayClusterName"] == b and plan.status["pendingServiceStatus"]["rayClusterName"] == ""
    svc["status"] = plan.status
    # A serve config change alone redeploys in place.
    svc["spec"]["serveConfigV2"] += "  # v2\n"
    plan = reconcile_service(svc, [ready(second)], [switched], deployed)
    assert not plan.create and [c["cluster"] for c in plan.calls] == [b]
