"""Every manifest the operator produces validates against Kubernetes' own schemas
(kubernetes-validate, strict: unknown fields fail), and KubeRay-style custom resources
validate against our CRDs' schemas."""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest
from k8s_objects import Objects, manifest, reconcile_until_stable

from solray.kubernetes import crds, reconcile_cluster, reconcile_job, reconcile_service

K8S_VERSION = kubernetes_validate.latest_version()


def k8s_valid(obj: dict) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def crd_valid(obj: dict) -> None:
    jsonschema.validate(obj, crds.schema_of(obj["kind"]))


def test_cluster_objects_are_valid_kubernetes_objects():
    for name, autoscaling in (("raycluster-quickstart.yaml", False), ("raycluster-two-groups.yaml", False),
                              ("raycluster-two-groups.yaml", True)):
        cluster = manifest(name)
        cluster["spec"]["enableInTreeAutoscaling"] = autoscaling
        plan = reconcile_cluster(cluster, [], [], [], new_token="x", now="2026-01-01T00:00:00Z")
        kinds = {o["kind"] for o in plan.create}
        assert kinds == {"Pod", "Service", "Secret"} | ({"ServiceAccount", "Role", "RoleBinding"} if autoscaling else set())
        for obj in plan.create:
            k8s_valid(obj)


def test_job_and_service_objects_are_valid():
    job = manifest("rayjob.yaml")
    plan = reconcile_job(job, [], [], None, now="2026-01-01T00:00:00Z")
    crd_valid(plan.create[0])
    job["status"] = plan.status
    cluster = {**plan.create[0], "status": {"state": "ready"}}
    submitter = reconcile_job(job, [cluster], [], None, now="2026-01-01T00:00:00Z").create[0]
    k8s_valid(submitter)
    svc = manifest("rayservice.yaml")
    plan = reconcile_service(svc, [], [], {})
    crd_valid(plan.create[0])
    svc["status"] = plan.status
    ready = {**plan.create[0], "status": {"state": "ready"}}
    first = reconcile_service(svc, [ready], [], {})
    plan = reconcile_service(svc, [ready], [], {ready["metadata"]["name"]: first.calls[0]["config_hash"]})
    k8s_valid(plan.create[0])


def test_crds_are_valid_custom_resource_definitions():
    for crd in crds.all_crds().values():
        k8s_valid(crd)


def test_status_is_accepted_by_the_crd():
    cluster = manifest("raycluster-quickstart.yaml")
    cluster["status"] = reconcile_until_stable(cluster, Objects()).status
    crd_valid(cluster)


@pytest.mark.parametrize("name", ["raycluster-quickstart.yaml", "raycluster-two-groups.yaml", "rayjob.yaml", "rayservice.yaml"])
def test_kuberay_manifests_validate_against_our_crds(name):
    crd_valid(manifest(name))


@pytest.mark.parametrize("mutate, words", [
    (lambda s: s["workerGroupSpecs"][0].update(replicas=-1), "-1 is less than the minimum of 0"),
    (lambda s: s["workerGroupSpecs"][0]["template"]["spec"].update(containers=[]), "should be non-empty"),
    (lambda s: s["workerGroupSpecs"][0].pop("groupName"), "'groupName' is a required property"),
    (lambda s: s.update(autoscalerOptions={"upscalingMode": "Fast"}), "'Fast' is not one of"),
])
def test_crd_schema_rejects_bad_specs(mutate, words):
    cluster = copy.deepcopy(manifest("raycluster-two-groups.yaml"))
    mutate(cluster["spec"])
    with pytest.raises(jsonschema.ValidationError, match=words):
        crd_valid(cluster)


def test_chart_crds_are_generated_from_the_code():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "solray-operator" / "crds"
    for name, crd in crds.all_crds().items():
        assert (folder / name).read_text() == crds.render(crd), f"regenerate {name}: python -m solray.kubernetes.crds"
