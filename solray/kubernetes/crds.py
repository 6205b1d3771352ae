"""The ``ray.io/v1`` CustomResourceDefinitions: RayCluster, RayJob and RayService.

Field names, types and defaults follow KubeRay's CRDs, so manifests written for KubeRay apply
unchanged. Pod templates are kept open (``x-kubernetes-preserve-unknown-fields``) past what
the operator reads. ``python -m solray.kubernetes.crds DIR`` writes them as YAML (the Helm
chart's ``crds/`` folder is made this way; a test checks they agree).
"""

from __future__ import annotations

import os
import sys

GROUP = "ray.io"
VERSION = "v1"

_OPEN = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_STRING = {"type": "string"}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_COUNT = {"type": "integer", "format": "int32", "minimum": 0}

_POD_TEMPLATE = {
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
    "required": ["spec"],
    "properties": {
        "metadata": _OPEN,
        "spec": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "required": ["containers"],
            "properties": {
                "containers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "required": ["name"]},
                }
            },
        },
    },
}

_HEAD_GROUP = {
    "type": "object",
    "required": ["template"],
    "properties": {
        "rayStartParams": _STRING_MAP,
        "template": _POD_TEMPLATE,
        "serviceType": {"type": "string"},
        "headService": _OPEN,
        "enableIngress": {"type": "boolean"},
    },
}

_WORKER_GROUP = {
    "type": "object",
    "required": ["groupName", "template"],
    "properties": {
        "groupName": {"type": "string", "minLength": 1},
        "replicas": {**_COUNT, "default": 0},
        "minReplicas": {**_COUNT, "default": 0},
        "maxReplicas": {**_COUNT, "default": 2147483647},
        "numOfHosts": {**_COUNT, "default": 1},
        "idleTimeoutSeconds": _COUNT,
        "rayStartParams": _STRING_MAP,
        "template": _POD_TEMPLATE,
        "scaleStrategy": {
            "type": "object",
            "properties": {"workersToDelete": {"type": "array", "items": {"type": "string"}}},
        },
        "suspend": {"type": "boolean"},
    },
    "x-kubernetes-validations": [{
        "rule": "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
        "message": "minReplicas must not be greater than maxReplicas",
    }],
}

CLUSTER_SPEC = {
    "type": "object",
    "required": ["headGroupSpec"],
    "properties": {
        "headGroupSpec": _HEAD_GROUP,
        "workerGroupSpecs": {"type": "array", "items": _WORKER_GROUP},
        "enableInTreeAutoscaling": {"type": "boolean"},
        "autoscalerOptions": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {
                "idleTimeoutSeconds": {"type": "integer", "format": "int32", "minimum": 0},
                "upscalingMode": {"type": "string", "enum": ["Default", "Aggressive", "Conservative"]},
                "image": {"type": "string"},
                "imagePullPolicy": {"type": "string"},
            },
        },
        "rayVersion": {"type": "string"},
        "suspend": {"type": "boolean"},
        "headServiceAnnotations": _STRING_MAP,
        "gcsFaultToleranceOptions": _OPEN,
        "managedBy": {"type": "string"},
    },
}

JOB_SPEC = {
    "type": "object",
    "properties": {
        "entrypoint": _STRING, "runtimeEnvYAML": _STRING, "jobId": _STRING,
        "metadata": _STRING_MAP,
        "rayClusterSpec": CLUSTER_SPEC,
        "clusterSelector": _STRING_MAP,
        "shutdownAfterJobFinishes": {"type": "boolean"},
        "ttlSecondsAfterFinished": {**_COUNT, "default": 0},
        "activeDeadlineSeconds": _COUNT,
        "backoffLimit": {**_COUNT, "default": 0},
        "submissionMode": {"type": "string", "enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"], "default": "K8sJobMode"},
        "submitterPodTemplate": _OPEN,
        "submitterConfig": _OPEN,
        "entrypointNumCpus": {"type": "number"},
        "entrypointNumGpus": {"type": "number"},
        "entrypointResources": {"type": "string"},
        "suspend": {"type": "boolean"},
        "managedBy": {"type": "string"},
    },
}

SERVICE_SPEC = {
    "type": "object",
    "properties": {
        "serveConfigV2": {"type": "string"},
        "rayClusterConfig": CLUSTER_SPEC,
        "serviceUnhealthySecondThreshold": {"type": "integer", "format": "int32"},
        "deploymentUnhealthySecondThreshold": {"type": "integer", "format": "int32"},
        "serveService": _OPEN,
        "upgradeStrategy": {"type": "object", "properties": {"type": {"type": "string", "enum": ["NewCluster", "None"]}}},
        "excludeHeadPodFromServeSvc": {"type": "boolean"},
    },
}

_COLUMNS = {
    "RayCluster": [
        ("desired workers", "integer", ".status.desiredWorkerReplicas"),
        ("available workers", "integer", ".status.availableWorkerReplicas"),
        ("status", "string", ".status.state"),
        ("age", "date", ".metadata.creationTimestamp"),
    ],
    "RayJob": [
        ("job status", "string", ".status.jobStatus"),
        ("deployment status", "string", ".status.jobDeploymentStatus"),
        ("ray cluster name", "string", ".status.rayClusterName"),
        ("age", "date", ".metadata.creationTimestamp"),
    ],
    "RayService": [
        ("service status", "string", ".status.serviceStatus"),
        ("age", "date", ".metadata.creationTimestamp"),
    ],
}


def _crd(kind: str, spec_schema: dict, short: str) -> dict:
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower(), "shortNames": [short], "categories": ["all"]},
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": n, "type": t, "jsonPath": p} for n, t, p in _COLUMNS[kind]],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": _STRING, "kind": _STRING, "metadata": {"type": "object"},
                        "spec": spec_schema,
                        "status": _OPEN,
                    },
                }},
            }],
        },
    }


def all_crds() -> dict[str, dict]:
    """File name -> CRD, for the three kinds."""
    return {
        "ray.io_rayclusters.yaml": _crd("RayCluster", CLUSTER_SPEC, "rc"),
        "ray.io_rayjobs.yaml": _crd("RayJob", JOB_SPEC, "rj"),
        "ray.io_rayservices.yaml": _crd("RayService", SERVICE_SPEC, "rs"),
    }


def schema_of(kind: str) -> dict:
    """The openAPIV3Schema of ``kind`` (to validate a manifest offline)."""
    crd = next(x for x in all_crds().values() if x["spec"]["names"]["kind"] == kind)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def render(crd: dict) -> str:
    import yaml

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data):  # shared sub-schemas are written out in full
            return True

    header = "# Generated by `python -m solray.kubernetes.crds`; edit solray/kubernetes/crds.py instead.\n"
    return header + yaml.dump(crd, Dumper=NoAliases, sort_keys=False)


def main(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, crd in all_crds().items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(render(crd))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "deploy/helm/solray-operator/crds")
