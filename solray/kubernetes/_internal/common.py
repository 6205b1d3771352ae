"""Names, labels and small helpers shared by the RayCluster, RayJob and RayService logic.

Names and labels are KubeRay's, so selectors, dashboards and scripts written for KubeRay
(``kubectl get pods -l ray.io/cluster=...``, ``svc/<cluster>-head-svc``) keep working.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

API_VERSION = "ray.io/v1"
GROUP = "ray.io"

LABEL_CLUSTER = "ray.io/cluster"
LABEL_NODE_TYPE = "ray.io/node-type"
LABEL_GROUP = "ray.io/group"
LABEL_IS_RAY_NODE = "ray.io/is-ray-node"
LABEL_CREATED_BY = "app.kubernetes.io/created-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_SERVE = "ray.io/serve"
# KubeRay's values: selectors written for KubeRay select our objects too.
CREATED_BY = "kuberay-operator"
HEAD_GROUP = "headgroup"

PORTS = {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "serve": 8000, "metrics": 8080}
TOKEN_KEY = "token"


def head_service_name(cluster: str) -> str:
    return f"{cluster}-head-svc"


def token_secret_name(cluster: str) -> str:
    return f"{cluster}-solray-token"


def head_service_host(cluster: str, namespace: str) -> str:
    return f"{head_service_name(cluster)}.{namespace}.svc.cluster.local"


def short_hash(value: Any, n: int = 5) -> str:
    """A stable lower-case suffix (names must be DNS labels)."""
    digest = hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:n]


def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def name_of(obj: dict) -> str:
    return meta(obj).get("name", "")


def namespace_of(obj: dict) -> str:
    return meta(obj).get("namespace") or "default"


def owner_reference(owner: dict, kind: str) -> dict:
    """Deleting ``owner`` deletes what carries this (Kubernetes' garbage collector)."""
    return {
        "apiVersion": owner.get("apiVersion", API_VERSION),
        "kind": kind,
        "name": name_of(owner),
        "uid": meta(owner).get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def deep(value: Any) -> Any:
    return copy.deepcopy(value) if value is not None else None


def cpu_quantity(value: Any) -> float | None:
    """Kubernetes CPU quantity ("500m", "2", 1.5) -> cores."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return None


def cpus_for_ray(value: Any) -> str | None:
    """Ray counts whole CPUs: a fractional limit rounds up, as KubeRay does."""
    cores = cpu_quantity(value)
    return None if cores is None else str(max(1, math.ceil(cores)))


def is_true(value: Any) -> bool:
    return str(value).lower() in ("true", "1", "yes")


LABEL_ORIGIN_NAME = "ray.io/originated-from-cr-name"
LABEL_ORIGIN_KIND = "ray.io/originated-from-crd"


def owned_cluster(owner: dict, kind: str, name: str, spec: dict) -> dict:
    """A RayCluster made for a RayJob or RayService (labelled and owned as KubeRay does)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "RayCluster",
        "metadata": {
            "name": name,
            "namespace": namespace_of(owner),
            "labels": {LABEL_ORIGIN_NAME: name_of(owner), LABEL_ORIGIN_KIND: kind},
            "ownerReferences": [owner_reference(owner, kind)],
        },
        "spec": deep(spec),
    }
