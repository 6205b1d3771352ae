"""``enableInTreeAutoscaling``: the autoscaler runs as a sidecar of the head Pod (as KubeRay
runs Ray's) and scales the RayCluster's worker groups through the API, with a ServiceAccount,
Role and RoleBinding named after the cluster that allow exactly that."""

from __future__ import annotations

from solray.kubernetes._internal import common as c

CONTAINER = "autoscaler"


def autoscaler_container(cluster: str, spec: dict) -> dict:
    options = spec.get("autoscalerOptions") or {}
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    container = {
        "name": CONTAINER,
        "image": options.get("image") or head["image"],
        "imagePullPolicy": options.get("imagePullPolicy") or head.get("imagePullPolicy") or "IfNotPresent",
        "command": ["python", "-m", "solray.autoscaler._internal.kubernetes_main"],
        "env": [
            {"name": "RAY_CLUSTER_NAME", "value": cluster},
            {"name": "RAY_CLUSTER_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "SOLRAY_TOKEN", "valueFrom": {"secretKeyRef": {"name": c.token_secret_name(cluster), "key": c.TOKEN_KEY}}},
            *(options.get("env") or []),
        ],
        "resources": options.get("resources") or {"limits": {"cpu": "500m", "memory": "512Mi"},
                                                  "requests": {"cpu": "100m", "memory": "256Mi"}},
    }
    for key in ("envFrom", "securityContext", "volumeMounts"):
        if options.get(key):
            container[key] = options[key]
    return container


def autoscaler_rbac(owner: dict, kind: str) -> list[dict]:
    name, ns = c.name_of(owner), c.namespace_of(owner)
    md = {"name": name, "namespace": ns, "labels": {c.LABEL_CLUSTER: name, c.LABEL_CREATED_BY: c.CREATED_BY},
          "ownerReferences": [c.owner_reference(owner, kind)]}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(md)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": dict(md), "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "list", "watch", "patch"]},
        ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": dict(md),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]},
    ]
