"""Head and worker Pods, the head Service and the token Secret of a RayCluster, as KubeRay
builds them: its names, labels and ports, a container command built from ``rayStartParams``."""

from __future__ import annotations

import base64
import shlex

from solray.kubernetes._internal import common as c

# rayStartParams that `solray start` understands; the rest are Ray-internal ports and tuning
# that solray does not need (reported once as an Event, then ignored).
SUPPORTED_START_PARAMS = {
    "port", "dashboard-port", "dashboard-host", "include-dashboard", "num-cpus", "num-gpus",
    "resources", "node-ip-address", "object-store-memory", "storage", "temp-dir", "block",
}
_FLAG_PARAMS = {"block"}
# KubeRay's annotation: keep the user's container command, hand them the start command in an env var.
OVERWRITE_CMD_ANNOTATION = "ray.io/overwrite-container-cmd"
START_CMD_ENV = "KUBERAY_GEN_RAY_START_CMD"


def ignored_start_params(params: dict | None) -> list[str]:
    return sorted(k for k in (params or {}) if k not in SUPPORTED_START_PARAMS)


def _unquote(value: str) -> str:
    # KubeRay manifests quote JSON values twice ('"{\"Custom\": 1}"'); the shell took one layer.
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace('\\"', '"')
    return value


def start_params(group: dict) -> dict[str, str]:
    """``rayStartParams`` completed as KubeRay does: CPUs and GPUs from the Ray container's
    resource limits (or requests) unless given."""
    params = {str(k): str(v) for k, v in (group.get("rayStartParams") or {}).items()}
    container = group["template"]["spec"]["containers"][0]
    limits = (container.get("resources") or {}).get("limits") or {}
    requests = (container.get("resources") or {}).get("requests") or {}
    if "num-cpus" not in params:
        cpus = c.cpus_for_ray(limits.get("cpu", requests.get("cpu")))
        if cpus is not None:
            params["num-cpus"] = cpus
    if "num-gpus" not in params and limits.get("nvidia.com/gpu") is not None:
        params["num-gpus"] = str(limits["nvidia.com/gpu"])
    return params


def node_resources(group: dict) -> dict[str, float]:
    """The Ray resources a node of ``group`` offers (what the autoscaler packs demand onto)."""
    import json

    params = start_params(group)
    out: dict[str, float] = {}
    for key, name in (("num-cpus", "CPU"), ("num-gpus", "GPU")):
        if key in params:
            out[name] = float(_unquote(params[key]))
    if "resources" in params:
        out.update({k: float(v) for k, v in json.loads(_unquote(params["resources"])).items()})
    return out


def start_command(cluster: str, namespace: str, group: dict, head: bool) -> str:
    """The `solray start ... --block` line for a group's Ray container."""
    params = start_params(group)
    params.setdefault("node-ip-address", "$MY_POD_IP")
    if head:
        params.setdefault("port", str(c.PORTS["gcs-server"]))
        params.setdefault("dashboard-host", "0.0.0.0")
        words = ["solray", "start", "--head"]
    else:
        params.pop("port", None)
        words = ["solray", "start", f"--address={c.head_service_host(cluster, namespace)}:{c.PORTS['gcs-server']}"]
    for key in sorted(params):
        if key not in SUPPORTED_START_PARAMS or key in _FLAG_PARAMS:
            continue
        value = _unquote(params[key])
        # $MY_POD_IP must stay unquoted for the shell to expand it.
        words.append(f"--{key}={value if value.startswith('$MY_') else shlex.quote(value)}")
    words.append("--block")
    return " ".join(words)


def _env(cluster: str, namespace: str, head: bool, autoscaling: bool = False) -> list[dict]:
    env = [
        {"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "RAY_CLUSTER_NAME", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{c.LABEL_CLUSTER}']"}}},
        {"name": "SOLRAY_TOKEN", "valueFrom": {"secretKeyRef": {"name": c.token_secret_name(cluster), "key": c.TOKEN_KEY}}},
        {"name": "RAY_ADDRESS", "value": "127.0.0.1:6379" if head else f"{c.head_service_host(cluster, namespace)}:6379"},
    ]
    if not head:
        env.append({"name": "FQ_RAY_IP", "value": c.head_service_host(cluster, namespace)})
    if autoscaling:
        env.append({"name": "SOLRAY_AUTOSCALER_ENABLED", "value": "1"})
    return env


def node_labels(cluster: str, group: str, head: bool) -> dict:
    return {
        c.LABEL_CLUSTER: cluster,
        c.LABEL_NODE_TYPE: "head" if head else "worker",
        c.LABEL_GROUP: group,
        c.LABEL_IS_RAY_NODE: "yes",
        c.LABEL_CREATED_BY: c.CREATED_BY,
        c.LABEL_NAME: "kuberay",
    }


def build_pod(owner: dict, kind: str, cluster: str, group: dict, head: bool, sidecar: dict | None = None) -> dict:
    """A Pod for one node of ``group`` (the head group when ``head``), with ``sidecar`` (the
    autoscaler) as a second container and the cluster's ServiceAccount when given."""
    namespace = c.namespace_of(owner)
    template = c.deep(group["template"])
    tmeta = template.get("metadata") or {}
    spec = template["spec"]
    group_name = c.HEAD_GROUP if head else group["groupName"]
    prefix = f"{cluster}-head-" if head else f"{cluster}-{group_name}-worker-"
    annotations = dict(tmeta.get("annotations") or {})
    container = spec["containers"][0]
    command = start_command(cluster, namespace, group, head)
    if c.is_true(annotations.get(OVERWRITE_CMD_ANNOTATION)) and container.get("command"):
        extra_env = [{"name": START_CMD_ENV, "value": command}]
    else:
        # The user's own command (setup steps) runs first, then the node, as with KubeRay.
        user = " ".join((container.get("command") or []) + (container.get("args") or []))
        container["command"] = ["/bin/bash", "-lc", "--"]
        container["args"] = [f"ulimit -n 65536; {user + '; ' if user else ''}{command}"]
        extra_env = []
    names = {e.get("name") for e in container.get("env") or []}
    container["env"] = list(container.get("env") or []) + [
        e for e in _env(cluster, namespace, head, c.is_true((owner.get("spec") or {}).get("enableInTreeAutoscaling")))
        + extra_env if e["name"] not in names
    ]
    if head:
        declared = {p.get("containerPort") for p in container.get("ports") or []}
        container["ports"] = list(container.get("ports") or []) + [
            {"name": name, "containerPort": port} for name, port in c.PORTS.items() if port not in declared
        ]
    if sidecar is not None:
        spec["containers"].append(sidecar)
        spec.setdefault("serviceAccountName", cluster)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": prefix,
            "namespace": namespace,
            "labels": {**(tmeta.get("labels") or {}), **node_labels(cluster, group_name, head)},
            "annotations": annotations,
            "ownerReferences": [c.owner_reference(owner, kind)],
        },
        "spec": spec,
    }


def build_head_service(owner: dict, kind: str, cluster: str, service_type: str | None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": c.head_service_name(cluster),
            "namespace": c.namespace_of(owner),
            "labels": {c.LABEL_CLUSTER: cluster, c.LABEL_NODE_TYPE: "head", c.LABEL_CREATED_BY: c.CREATED_BY},
            "ownerReferences": [c.owner_reference(owner, kind)],
        },
        "spec": {
            "type": service_type or "ClusterIP",
            "selector": {c.LABEL_CLUSTER: cluster, c.LABEL_NODE_TYPE: "head"},
            "ports": [
                {"name": name, "port": port, "targetPort": port, "protocol": "TCP"} for name, port in c.PORTS.items()
            ],
        },
    }


def build_token_secret(owner: dict, kind: str, cluster: str, token: str) -> dict:
    """solray authenticates every connection with the cluster token; its nodes read it from here."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": c.token_secret_name(cluster),
            "namespace": c.namespace_of(owner),
            "labels": {c.LABEL_CLUSTER: cluster, c.LABEL_CREATED_BY: c.CREATED_BY},
            "ownerReferences": [c.owner_reference(owner, kind)],
        },
        "data": {c.TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }
