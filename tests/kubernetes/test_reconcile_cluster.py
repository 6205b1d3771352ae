"""RayCluster reconciliation as pure functions: the objects KubeRay would make, healing,
scaling, workersToDelete and invalid specs (no API server, no processes)."""

from __future__ import annotations

import base64
import copy

import pytest
from k8s_objects import Objects, manifest, reconcile_until_stable

from solray.kubernetes import reconcile_cluster, start_command

NOW = "2026-01-01T01:00:00Z"


def plan_for(cluster, objs):
    return reconcile_cluster(cluster, objs.of("Pod"), objs.of("Service"), objs.of("Secret"), new_token="t0ken", now=NOW,
                             rbac=objs.rbac())


def test_quickstart_first_pass_makes_head_worker_service_and_token():
    cluster = manifest("raycluster-quickstart.yaml")
    plan = plan_for(cluster, Objects())
    kinds = sorted((o["kind"], o["metadata"].get("name") or o["metadata"]["generateName"]) for o in plan.create)
    assert kinds == [
        ("Pod", "raycluster-kuberay-head-"),
        ("Pod", "raycluster-kuberay-workergroup-worker-"),
        ("Secret", "raycluster-kuberay-solray-token"),
        ("Service", "raycluster-kuberay-head-svc"),
    ]
    owner = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "name": "raycluster-kuberay",
             "uid": cluster["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    for obj in plan.create:
        assert obj["metadata"]["ownerReferences"] == [owner]
        assert obj["metadata"]["namespace"] == "default"
    head = next(o for o in plan.create if o["metadata"].get("generateName") == "raycluster-kuberay-head-")
    assert head["metadata"]["labels"] == {
        "app.kubernetes.io/instance": "raycluster",  # the template's own labels are kept
        "ray.io/cluster": "raycluster-kuberay", "ray.io/node-type": "head", "ray.io/group": "headgroup",
        "ray.io/is-ray-node": "yes", "app.kubernetes.io/created-by": "kuberay-operator",
        "app.kubernetes.io/name": "kuberay",
    }
    c = head["spec"]["containers"][0]
    assert c["command"] == ["/bin/bash", "-lc", "--"]
    assert c["args"] == ["ulimit -n 65536; solray start --head --dashboard-host=0.0.0.0 "
                         "--node-ip-address=$MY_POD_IP --num-cpus=1 --port=6379 --block"]
    assert {p["containerPort"] for p in c["ports"]} == {6379, 8265, 10001, 8000, 8080}
    env = {e["name"]: e for e in c["env"]}
    assert env["SOLRAY_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "raycluster-kuberay-solray-token", "key": "token"}
    assert env["MY_POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert head["spec"]["volumes"] == [{"name": "log-volume", "emptyDir": {}}]
    worker = next(o for o in plan.create if "worker" in o["metadata"].get("generateName", ""))
    assert worker["metadata"]["labels"]["ray.io/group"] == "workergroup"
    assert worker["metadata"]["labels"]["ray.io/node-type"] == "worker"
    assert worker["spec"]["containers"][0]["args"][0].endswith(
        "solray start --address=raycluster-kuberay-head-svc.default.svc.cluster.local:6379 "
        "--node-ip-address=$MY_POD_IP --num-cpus=1 --block")
    svc = next(o for o in plan.create if o["kind"] == "Service")
    assert svc["spec"]["selector"] == {"ray.io/cluster": "raycluster-kuberay", "ray.io/node-type": "head"}
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {
        "gcs-server": 6379, "dashboard": 8265, "client": 10001, "serve": 8000, "metrics": 8080}
    secret = next(o for o in plan.create if o["kind"] == "Secret")
    assert base64.b64decode(secret["data"]["token"]) == b"t0ken"
    assert plan.status["state"] == ""


def test_status_becomes_ready_when_all_pods_run_and_is_idempotent():
    cluster = manifest("raycluster-quickstart.yaml")
    objs = Objects()
    plan = reconcile_until_stable(cluster, objs)
    st = plan.status
    assert st["state"] == "ready"
    assert st["availableWorkerReplicas"] == 1 and st["desiredWorkerReplicas"] == 1
    assert st["maxWorkerReplicas"] == 3 and st["minWorkerReplicas"] == 1
    assert st["endpoints"] == {"gcs-server": "6379", "dashboard": "8265", "client": "10001", "serve": "8000", "metrics": "8080"}
    head = objs.pods(**{"ray.io/node-type": "head"})[0]
    assert st["head"]["podIP"] == head["status"]["podIP"] and st["head"]["podName"] == head["metadata"]["name"]
    assert st["head"]["serviceIP"].startswith("10.96.0.")
    assert {c["type"]: c["status"] for c in st["conditions"]} == {"HeadPodReady": "True", "RayClusterProvisioned": "True"}
    again = plan_for(cluster, objs)
    assert not (again.create or again.delete or again.update or again.events)


def test_two_groups_params_resources_and_gpu():
    cluster = manifest("raycluster-two-groups.yaml")
    plan = plan_for(cluster, Objects())
    pods = [o for o in plan.create if o["kind"] == "Pod"]
    by_prefix = {}
    for p in pods:
        by_prefix.setdefault(p["metadata"]["generateName"], []).append(p)
    assert {k: len(v) for k, v in by_prefix.items()} == {"two-head-": 1, "two-cpu-worker-": 2, "two-gpu-worker-": 1}
    cpu_args = by_prefix["two-cpu-worker-"][0]["spec"]["containers"][0]["args"][0]
    assert "--address=two-head-svc.ml.svc.cluster.local:6379" in cpu_args
    assert "--num-cpus=2" in cpu_args  # 1500m rounds up to whole CPUs
    assert """--resources='{"Custom1": 1}'""" in cpu_args
    gpu_args = by_prefix["two-gpu-worker-"][0]["spec"]["containers"][0]["args"][0]
    assert "--num-gpus=1" in gpu_args and "--num-cpus=4" in gpu_args
    head_args = by_prefix["two-head-"][0]["spec"]["containers"][0]["args"][0]
    assert "--num-cpus=0" in head_args and "metrics-export-port" not in head_args
    assert [e.reason for e in plan.events] == ["IgnoredRayStartParams"]
    assert "metrics-export-port" in plan.events[0].message


def test_scale_up_and_down_deletes_newest_workers():
    cluster = manifest("raycluster-two-groups.yaml")
    objs = Objects()
    reconcile_until_stable(cluster, objs)
    cluster["spec"]["workerGroupSpecs"][0]["replicas"] = 4
    plan = plan_for(cluster, objs)
    assert [o["metadata"]["generateName"] for o in plan.create] == ["two-cpu-worker-"] * 2
    assert plan.status["desiredWorkerReplicas"] == 5 and plan.status["state"] == "ready"
    objs.apply(plan)
    objs.run_all()
    oldest = sorted(p["metadata"]["name"] for p in objs.pods(**{"ray.io/group": "cpu"}))[:1]
    cluster["spec"]["workerGroupSpecs"][0]["replicas"] = 1
    plan = plan_for(cluster, objs)
    assert not plan.create and len(plan.delete) == 3
    objs.apply(plan)
    assert [p["metadata"]["name"] for p in objs.pods(**{"ray.io/group": "cpu"})] == oldest
    # Replicas beyond maxReplicas are clamped.
    cluster["spec"]["workerGroupSpecs"][0]["replicas"] = 50
    assert len(plan_for(cluster, objs).create) == 4


def test_workers_to_delete_removes_exactly_those_and_is_cleared():
    cluster = manifest("raycluster-two-groups.yaml")
    cluster["spec"]["enableInTreeAutoscaling"] = True
    objs = Objects()
    reconcile_until_stable(cluster, objs)
    cpu = sorted(p["metadata"]["name"] for p in objs.pods(**{"ray.io/group": "cpu"}))
    group = cluster["spec"]["workerGroupSpecs"][0]
    group["replicas"] = 1
    group["scaleStrategy"] = {"workersToDelete": [cpu[0], "two-cpu-worker-nosuch"]}
    plan = plan_for(cluster, objs)
    assert plan.delete == [("Pod", cpu[0])]
    assert not plan.create
    assert [e.reason for e in plan.events] == ["UnknownWorkerToDelete"]
    assert "two-cpu-worker-nosuch" in plan.events[0].message
    assert plan.spec_patch["workerGroupSpecs"][0]["scaleStrategy"]["workersToDelete"] == []
    assert plan.spec_patch["workerGroupSpecs"][0]["replicas"] == 1
    objs.apply(plan)
    assert [p["metadata"]["name"] for p in objs.pods(**{"ray.io/group": "cpu"})] == [cpu[1]]


def test_autoscaling_cluster_keeps_extra_workers_until_named():
    cluster = manifest("raycluster-two-groups.yaml")
    cluster["spec"]["enableInTreeAutoscaling"] = True
    objs = Objects()
    reconcile_until_stable(cluster, objs)
    cluster["spec"]["workerGroupSpecs"][0]["replicas"] = 0
    assert plan_for(cluster, objs).delete == []


@pytest.mark.parametrize("phase", ["Failed", "Succeeded"])
def test_failed_or_deleted_pods_are_replaced(phase):
    cluster = manifest("raycluster-quickstart.yaml")
    objs = Objects()
    reconcile_until_stable(cluster, objs)
    worker = objs.pods(**{"ray.io/node-type": "worker"})[0]["metadata"]["name"]
    objs.set_phase(worker, phase)
    plan = plan_for(cluster, objs)
    assert plan.delete == [("Pod", worker)]
    assert [o["metadata"]["generateName"] for o in plan.create] == ["raycluster-kuberay-workergroup-worker-"]
    assert plan.events[0].reason == "WorkerPodFailed"
    reconcile_until_stable(cluster, objs)
    head = objs.pods(**{"ray.io/node-type": "head"})[0]["metadata"]["name"]
    del objs.items[("Pod", head)]  # deleted by someone
    plan = plan_for(cluster, objs)
    assert [o["metadata"]["generateName"] for o in plan.create] == ["raycluster-kuberay-head-"]
    assert plan.status["state"] == "unhealthy"
    assert reconcile_until_stable(cluster, objs).status["state"] == "ready"


def test_terminating_pods_are_not_counted_or_deleted_twice():
    cluster = manifest("raycluster-quickstart.yaml")
    objs = Objects()
    reconcile_until_stable(cluster, objs)
    worker = objs.pods(**{"ray.io/node-type": "worker"})[0]["metadata"]["name"]
    objs.items[("Pod", worker)]["metadata"]["deletionTimestamp"] = NOW
    plan = plan_for(cluster, objs)
    assert plan.delete == [] and len(plan.create) == 1


def test_suspend_deletes_all_pods_and_resume_recreates():
    cluster = manifest("raycluster-two-groups.yaml")
    objs = Objects()
    reconcile_until_stable(cluster, objs)
    cluster["spec"]["suspend"] = True
    plan = plan_for(cluster, objs)
    assert len(plan.delete) == 4 and not plan.create
    assert plan.status["state"] == "suspended"
    objs.apply(plan)
    cluster["spec"]["suspend"] = False
    assert reconcile_until_stable(cluster, objs).status["state"] == "ready"
    assert len(objs.of("Pod")) == 4
    cluster["spec"]["workerGroupSpecs"][1]["suspend"] = True
    assert plan_for(cluster, objs).delete == [("Pod", objs.pods(**{"ray.io/group": "gpu"})[0]["metadata"]["name"])]


@pytest.mark.parametrize("mutate, words", [
    (lambda s: s["workerGroupSpecs"][0].update(replicas=-1), "replicas must not be negative"),
    (lambda s: s["workerGroupSpecs"][0].update(minReplicas=4, maxReplicas=2), "minReplicas (4) is greater than maxReplicas (2)"),
    (lambda s: s["workerGroupSpecs"][0]["template"]["spec"].update(containers=[]), "at least one container"),
    (lambda s: s["workerGroupSpecs"].append(copy.deepcopy(s["workerGroupSpecs"][0])), "used by two worker groups"),
    (lambda s: s.pop("headGroupSpec"), "spec.headGroupSpec is required"),
    (lambda s: s["workerGroupSpecs"][0].update(replicas="3"), "must be an integer"),
])
def test_invalid_specs_become_status_and_event(mutate, words):
    cluster = manifest("raycluster-two-groups.yaml")
    mutate(cluster["spec"])
    plan = plan_for(cluster, Objects())
    assert not plan.create and not plan.delete
    assert plan.status["state"] == "failed" and words in plan.status["reason"]
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "InvalidRayClusterSpec")]


def test_user_command_kept_with_overwrite_annotation():
    cluster = manifest("raycluster-quickstart.yaml")
    tmpl = cluster["spec"]["headGroupSpec"]["template"]
    tmpl["metadata"]["annotations"] = {"ray.io/overwrite-container-cmd": "true"}
    tmpl["spec"]["containers"][0]["command"] = ["/bin/sh", "-c", "ray start --head --block"]
    head = next(o for o in plan_for(cluster, Objects()).create if o["metadata"].get("generateName") == "raycluster-kuberay-head-")
    c = head["spec"]["containers"][0]
    assert c["command"] == ["/bin/sh", "-c", "ray start --head --block"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["KUBERAY_GEN_RAY_START_CMD"].startswith("solray start --head")


def test_start_command_is_a_valid_solray_start_invocation():
    """The generated line parses with the real `solray start` options."""
    import shlex

    from solray.cli.main import start

    cluster = manifest("raycluster-two-groups.yaml")
    for group, head in ((cluster["spec"]["headGroupSpec"], True), (cluster["spec"]["workerGroupSpecs"][0], False)):
        words = shlex.split(start_command("two", "ml", group, head).replace("$MY_POD_IP", "10.0.0.9"))
        assert words[:2] == ["solray", "start"]
        ctx = start.make_context("start", words[2:])
        assert ctx.params["block"] is True
        assert ctx.params["node_ip_address"] == "10.0.0.9"
        assert (ctx.params["address"] is None) == head


def test_in_tree_autoscaling_adds_the_autoscaler_sidecar_and_its_rbac():
    cluster = manifest("raycluster-two-groups.yaml")
    cluster["spec"]["enableInTreeAutoscaling"] = True
    cluster["spec"]["autoscalerOptions"] = {"idleTimeoutSeconds": 30, "upscalingMode": "Conservative"}
    plan = plan_for(cluster, Objects())
    made = {(o["kind"], o["metadata"].get("name") or o["metadata"]["generateName"]): o for o in plan.create}
    assert {("ServiceAccount", "two"), ("Role", "two"), ("RoleBinding", "two")} <= set(made)
    rules = made[("Role", "two")]["rules"]
    assert {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "list", "watch", "patch"]} in rules
    head = made[("Pod", "two-head-")]["spec"]
    assert [c["name"] for c in head["containers"]] == ["ray-head", "autoscaler"]
    assert head["serviceAccountName"] == "two"
    sidecar = head["containers"][1]
    assert sidecar["command"] == ["python", "-m", "solray.autoscaler._internal.kubernetes_main"]
    assert {"name": "RAY_CLUSTER_NAME", "value": "two"} in sidecar["env"]
    worker = made[("Pod", "two-cpu-worker-")]["spec"]
    assert [c["name"] for c in worker["containers"]] == ["w"]
