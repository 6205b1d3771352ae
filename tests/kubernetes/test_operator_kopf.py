"""The kopf operator run for real (kopf's KopfRunner) against an in-process Kubernetes API
emulator: RayClusters made, scaled, healed and reported; a RayJob submitted to a real
solray head through the Jobs REST API; invalid specs reported, never crashing the operator."""

from __future__ import annotations

import base64
import copy
import json
import os
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import pytest
from helm_tools import kubeconfig
from helpers import wait_for
from k8s_objects import manifest
from kopf.testing import KopfRunner
from kube_emulator import KubeEmulator

from solray.job_submission import JobSubmissionClient

OPERATOR = ["run", "--standalone", "--all-namespaces", "-m", "solray.kubernetes.operator"]


def fresh(name: str) -> dict:
    obj = manifest(name)
    for key in ("uid", "generation"):
        obj["metadata"].pop(key, None)
    return obj


@pytest.fixture
def kube(tmp_path, monkeypatch):
    with KubeEmulator() as k:
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kubeconfig", k.url)))
        monkeypatch.setenv("SOLRAY_OPERATOR_RESYNC_S", "5")
        yield k


def pods(kube, cluster, **labels):
    sel = ",".join([f"ray.io/cluster={cluster}"] + [f"{k}={v}" for k, v in labels.items()])
    return kube.list("pods", selector=sel)


def state(kube, plural, name, key="state"):
    obj = kube.get(plural, name)
    return ((obj or {}).get("status") or {}).get(key)


def events(kube, name):
    return [(e["type"], e["reason"], e["message"]) for e in kube.list("events") if e["involvedObject"]["name"] == name]


def test_raycluster_lifecycle_and_invalid_spec(kube):
    with KopfRunner(OPERATOR, timeout=60) as runner:
        kube.create("rayclusters", fresh("raycluster-quickstart.yaml"))
        wait_for(lambda: state(kube, "rayclusters", "raycluster-kuberay") == "ready", 30, "cluster ready")
        cluster = kube.get("rayclusters", "raycluster-kuberay")
        [head] = pods(kube, "raycluster-kuberay", **{"ray.io/node-type": "head"})
        [worker] = pods(kube, "raycluster-kuberay", **{"ray.io/node-type": "worker"})
        assert head["metadata"]["name"].startswith("raycluster-kuberay-head-")
        assert worker["metadata"]["name"].startswith("raycluster-kuberay-workergroup-worker-")
        assert head["metadata"]["ownerReferences"][0]["uid"] == cluster["metadata"]["uid"]
        svc = kube.get("services", "raycluster-kuberay-head-svc")
        st = cluster["status"]
        assert st["head"] == {"serviceName": "raycluster-kuberay-head-svc", "podName": head["metadata"]["name"],
                              "podIP": head["status"]["podIP"], "serviceIP": svc["spec"]["clusterIP"]}
        assert st["availableWorkerReplicas"] == 1 and st["endpoints"]["dashboard"] == "8265"

        # Scale up.
        group = copy.deepcopy(cluster["spec"]["workerGroupSpecs"])
        group[0]["replicas"] = 3
        kube.patch("rayclusters", "raycluster-kuberay", {"spec": {"workerGroupSpecs": group}})
        wait_for(lambda: state(kube, "rayclusters", "raycluster-kuberay", "availableWorkerReplicas") == 3, 30, "3 workers")
        # A failed worker and a deleted worker are replaced.
        names = sorted(p["metadata"]["name"] for p in pods(kube, "raycluster-kuberay", **{"ray.io/node-type": "worker"}))
        kube.patch("pods", names[0], {"status": {"phase": "Failed"}}, status=True)
        kube.delete("pods", names[1])

        def replaced():
            now = {p["metadata"]["name"] for p in pods(kube, "raycluster-kuberay", **{"ray.io/node-type": "worker"})
                   if p["status"]["phase"] == "Running"}
            return len(now) == 3 and names[0] not in now and names[1] not in now and names[2] in now
        wait_for(replaced, 30, "failed and deleted workers replaced")
        wait_for(lambda: any(r == "WorkerPodFailed" for _, r, _ in events(kube, "raycluster-kuberay")), 30, "the event")

        # workersToDelete removes exactly that worker and is cleared.
        victim = sorted(p["metadata"]["name"] for p in pods(kube, "raycluster-kuberay", **{"ray.io/node-type": "worker"}))[0]
        group[0].update(replicas=2, scaleStrategy={"workersToDelete": [victim]})
        kube.patch("rayclusters", "raycluster-kuberay", {"spec": {"workerGroupSpecs": group, "enableInTreeAutoscaling": True}})
        wait_for(lambda: victim not in {p["metadata"]["name"] for p in pods(kube, "raycluster-kuberay")}, 30, "victim gone")
        wait_for(lambda: kube.get("rayclusters", "raycluster-kuberay")["spec"]["workerGroupSpecs"][0]["scaleStrategy"]["workersToDelete"] == [],
                 30, "workersToDelete cleared")
        assert len(pods(kube, "raycluster-kuberay", **{"ray.io/node-type": "worker"})) == 2

        # An invalid spec next to it: status + Event, and the operator keeps serving both.
        bad = fresh("raycluster-two-groups.yaml")
        bad["metadata"].update(name="minmax", namespace="default")
        bad["spec"]["workerGroupSpecs"][0].update(minReplicas=4, maxReplicas=2)
        kube.create("rayclusters", bad)
        wait_for(lambda: state(kube, "rayclusters", "minmax") == "failed", 30, "status failed")
        assert "minReplicas (4) is greater than maxReplicas (2)" in kube.get("rayclusters", "minmax")["status"]["reason"]
        wait_for(lambda: any(r == "InvalidRayClusterSpec" for _, r, _ in events(kube, "minmax")), 30, "event")
        assert pods(kube, "minmax") == []
        group = kube.get("rayclusters", "minmax")["spec"]["workerGroupSpecs"]
        group[0]["maxReplicas"] = 5
        kube.patch("rayclusters", "minmax", {"spec": {"workerGroupSpecs": group}})
        wait_for(lambda: state(kube, "rayclusters", "minmax") == "ready", 30, "fixed cluster ready")

        # Deleting the cluster deletes its Pods (ownerReferences).
        kube.delete("rayclusters", "raycluster-kuberay")
        wait_for(lambda: pods(kube, "raycluster-kuberay") == [], 30, "the cluster's Pods to go")
        assert kube.get("services", "raycluster-kuberay-head-svc") is None
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None


def test_crd_schema_rejects_negative_replicas_at_the_api(kube):
    bad = fresh("raycluster-two-groups.yaml")
    bad["metadata"].update(name="negative", namespace="default")
    bad["spec"]["workerGroupSpecs"][0]["replicas"] = -1
    req = urllib.request.Request(f"{kube.url}/apis/ray.io/v1/namespaces/default/rayclusters", method="POST",
                                 data=json.dumps(bad).encode(), headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 422
    assert "workerGroupSpecs.0.replicas: -1 is less than the minimum of 0" in json.loads(info.value.read())["message"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def solray_head():
    """A real head (`solray start --head`) with its Jobs API, as a cluster's head Pod runs it."""
    tmp = tempfile.mkdtemp(prefix="solray-k8s-head-")
    token = "k8s-test-token-" + base64.b16encode(os.urandom(4)).decode().lower()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOLRAY_", "RAY_"))}
    env.update(SOLRAY_TMPDIR=tmp, SOLRAY_TOKEN=token)
    cli = [sys.executable, "-m", "solray.cli.main"]
    with tempfile.TemporaryFile() as out:
        subprocess.run(cli + ["start", "--head", "--port", "0", "--dashboard-port", str(port), "--num-cpus", "1"],
                       env=env, stdout=out, stderr=out, timeout=60, check=True)
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        with tempfile.TemporaryFile() as out:
            subprocess.run(cli + ["stop"], env=env, stdout=out, stderr=out, timeout=60)


def test_a_cluster_deleted_during_its_reconcile_leaves_nothing_behind(kube, caplog):
    name = "raycluster-kuberay"

    def delete_cluster_on_first_pod(plural, obj):
        # Runs inside the API server while the operator creates the cluster's first Pod.
        if plural == "pods" and kube.objects.get(("rayclusters", "default", name)) is not None:
            kube._delete("rayclusters", "default", name)
    kube.create_hook = delete_cluster_on_first_pod
    with KopfRunner(OPERATOR, timeout=60), caplog.at_level("INFO", logger="solray.operator"):
        kube.create("rayclusters", fresh("raycluster-quickstart.yaml"))
        wait_for(lambda: any("deleted during its reconcile" in r.getMessage() for r in caplog.records), 30,
                 "the operator notices the deletion")
        assert kube.get("rayclusters", name) is None
        assert pods(kube, name) == []  # created for a deleted owner: garbage-collected
        assert not [r for r in caplog.records if r.name == "solray.operator" and r.levelname == "ERROR"]


def test_rayjob_submits_through_jobs_api_and_cleans_up(kube, solray_head, monkeypatch):
    url, token = solray_head
    monkeypatch.setenv("SOLRAY_OPERATOR_DASHBOARD_URL", url)

    def give_real_token(plural, obj):
        # The cluster's head Pod would start with the Secret's token; here the head is real
        # and already running, so the Secret carries its token.
        if plural == "secrets" and obj["metadata"]["name"].endswith("-solray-token"):
            obj["data"]["token"] = base64.b64encode(token.encode()).decode()
    kube.create_hook = give_real_token
    job = fresh("rayjob.yaml")
    job["spec"].update(
        submissionMode="HTTPMode", ttlSecondsAfterFinished=0,
        entrypoint="python -c \"import solray as ray, os; ray.init(); "
                   "print(ray.get(ray.remote(lambda: 'hello from ' + os.environ['counter_name']).remote()))\"")
    with KopfRunner(OPERATOR, timeout=90) as runner:
        kube.create("rayjobs", job)
        wait_for(lambda: state(kube, "rayjobs", "rayjob-sample", "jobDeploymentStatus") == "Complete", 60, "job complete")
        st = kube.get("rayjobs", "rayjob-sample")["status"]
        assert st["jobStatus"] == "SUCCEEDED"
        client = JobSubmissionClient(url, headers={"Authorization": f"Bearer {token}"})
        assert "hello from test_counter" in client.get_job_logs(st["jobId"])  # runtimeEnvYAML's env var
        # shutdownAfterJobFinishes with ttlSecondsAfterFinished=0: the cluster and its Pods go.
        wait_for(lambda: kube.get("rayclusters", st["rayClusterName"]) is None, 30, "job cluster deleted")
        assert pods(kube, st["rayClusterName"]) == []
        wait_for(lambda: {"Submitted", "JobFinished", "DeletedRayCluster"} <= {r for _, r, _ in events(kube, "rayjob-sample")},
                 30, "the job's events")
    assert runner.exit_code == 0 and runner.exception is None
