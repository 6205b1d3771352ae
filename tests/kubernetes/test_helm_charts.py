"""The Helm charts: lint, rendered manifests (compared with expected ones, valid for Kubernetes
and our CRDs), and `helm repo add` + `helm install` from a chart repository on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading

import kubernetes_validate
import pytest
import yaml
from helm_tools import CHARTS, Helm, kubeconfig
from helpers import wait_for
from k8s_objects import HERE
from kube_emulator import KubeEmulator

from solray.kubernetes import crds, reconcile_cluster

K8S = kubernetes_validate.latest_version()


@pytest.fixture
def helm(tmp_path):
    return Helm(tmp_path / "helm")


def test_charts_lint(helm):
    for chart in ("solray-operator", "solray-cluster"):
        out = helm("lint", "--strict", str(CHARTS / chart))
        assert "0 chart(s) failed" in out.stdout


def test_cluster_chart_renders_the_expected_raycluster(helm):
    [rendered] = helm.documents("template", "raycluster", str(CHARTS / "solray-cluster"), "--set", "nameOverride=kuberay")
    expected = [d for d in yaml.safe_load_all((HERE / "expected" / "raycluster-kuberay.yaml").read_text()) if d]
    assert [rendered] == expected
    jsonschema_valid(rendered)
    # The objects the operator makes for it carry the names seed 004 uses.
    rendered["metadata"].update(namespace="default", uid="u1")
    plan = reconcile_cluster(rendered, [], [], [], new_token="t", now="2026-01-01T00:00:00Z")
    names = {o["metadata"].get("name") or o["metadata"]["generateName"] for o in plan.create}
    assert {"raycluster-kuberay-head-svc", "raycluster-kuberay-head-", "raycluster-kuberay-workergroup-worker-"} <= names


def jsonschema_valid(obj: dict) -> None:
    import jsonschema

    jsonschema.validate(obj, crds.schema_of(obj["kind"]))


def test_cluster_chart_kuberay_values(helm, tmp_path):
    """A values file written for KubeRay's ray-cluster chart."""
    values = {
        "image": {"repository": "solray/solray", "tag": "test"},
        "head": {"rayStartParams": {"num-cpus": "0"}, "enableInTreeAutoscaling": True,
                 "autoscalerOptions": {"idleTimeoutSeconds": 30, "upscalingMode": "Conservative"},
                 "containerEnv": [{"name": "A", "value": "1"}], "resources": {"limits": {"cpu": "2"}}},
        "worker": {"groupName": "cpu", "replicas": 2, "minReplicas": 1, "maxReplicas": 4},
        "additionalWorkerGroups": {"gpu": {"disabled": False, "replicas": 1, "minReplicas": 0, "maxReplicas": 2,
                                           "resources": {"limits": {"nvidia.com/gpu": 1}}}},
        "service": {"type": "NodePort"},
        "common": {"containerEnv": [{"name": "COMMON", "value": "x"}]},
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    [rc] = helm.documents("template", "mine", str(CHARTS / "solray-cluster"), "-f", str(tmp_path / "values.yaml"))
    jsonschema_valid(rc)
    spec = rc["spec"]
    assert rc["metadata"]["name"] == "mine-solray"
    assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["upscalingMode"] == "Conservative"
    assert spec["headGroupSpec"]["serviceType"] == "NodePort"
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"] == "solray/solray:test"
    assert head["env"] == [{"name": "COMMON", "value": "x"}, {"name": "A", "value": "1"}]
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert sorted(groups) == ["cpu", "gpu"]
    assert (groups["cpu"]["replicas"], groups["cpu"]["minReplicas"], groups["cpu"]["maxReplicas"]) == (2, 1, 4)
    assert groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_operator_chart_objects_are_valid(helm):
    docs = helm.documents("template", "solray-operator", str(CHARTS / "solray-operator"), "--include-crds")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "CustomResourceDefinition",
                     "CustomResourceDefinition", "Deployment", "ServiceAccount"]
    for d in docs:
        kubernetes_validate.validate(d, K8S, strict=True)
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "solray.kubernetes"]
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == "solray-operator"
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert {("ray.io", "rayclusters"), ("ray.io", "rayclusters/status"), ("", "pods"), ("", "events")} <= granted


@pytest.fixture
def chart_repo(tmp_path, helm):
    """The charts packaged (deploy/helm/build-repo.sh) and served over HTTP on 127.0.0.1."""
    folder = tmp_path / "repo"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    subprocess.run(["sh", str(CHARTS / "build-repo.sh"), str(folder), url], check=True, capture_output=True,
                   env={**helm.env, "HELM": helm.binary}, timeout=120)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()


def test_repo_add_and_install_like_seed_004(tmp_path, chart_repo, monkeypatch):
    """`helm repo add` + `helm install` of both charts into a cluster (the API emulator), with
    the operator running: the installed RayCluster gets its head and worker Pods."""
    from kopf.testing import KopfRunner

    with KubeEmulator() as kube:
        helm = Helm(tmp_path / "helm", kubeconfig(tmp_path / "kubeconfig", kube.url))
        assert '"solray" has been added' in helm("repo", "add", "solray", chart_repo).stdout
        out = helm("install", "solray-operator", "solray/solray-operator", "--dry-run=client", "--disable-openapi-validation")
        assert "kind: Deployment" in out.stdout and "python" in out.stdout
        helm("install", "solray-operator", "solray/solray-operator", "--disable-openapi-validation")
        assert kube.get("customresourcedefinitions", "rayclusters.ray.io", namespace=None)["spec"]["group"] == "ray.io"
        assert kube.get("deployments", "solray-operator") is not None
        monkeypatch.setenv("KUBECONFIG", helm.env["KUBECONFIG"])
        monkeypatch.setenv("SOLRAY_OPERATOR_RESYNC_S", "5")
        with KopfRunner(["run", "--standalone", "-A", "-m", "solray.kubernetes.operator"], timeout=60) as runner:
            helm("install", "raycluster", "solray/solray-cluster", "--set", "nameOverride=kuberay", "--disable-openapi-validation")
            wait_for(lambda: ((kube.get("rayclusters", "raycluster-kuberay") or {}).get("status") or {}).get("state") == "ready",
                     30, "the installed cluster to be ready")
            names = sorted(p["metadata"]["name"].rsplit("-", 1)[0] for p in kube.list("pods"))
            assert names == ["raycluster-kuberay-head", "raycluster-kuberay-workergroup-worker"]
            assert kube.get("services", "raycluster-kuberay-head-svc") is not None  # port-forward target
        assert runner.exception is None

