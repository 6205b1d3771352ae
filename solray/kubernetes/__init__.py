"""solray on Kubernetes: a KubeRay-compatible operator for RayCluster, RayJob and RayService.

The decisions are pure functions (spec + observed objects in, a ``Plan`` out) so they are
tested without a cluster; ``solray.kubernetes.operator`` is the thin kopf adapter that reads
the API server and carries plans out. Run it with ``python -m solray.kubernetes.operator``
(the Helm chart ``deploy/helm/solray-operator`` does).
"""

from solray.kubernetes._internal.common import (
    API_VERSION,
    LABEL_CLUSTER,
    LABEL_GROUP,
    LABEL_NODE_TYPE,
    head_service_name,
    token_secret_name,
)
from solray.kubernetes._internal.plan import Event, Plan
from solray.kubernetes._internal.pods import start_command
from solray.kubernetes._internal.raycluster import desired_replicas, reconcile_cluster
from solray.kubernetes._internal.rayjob import reconcile_job
from solray.kubernetes._internal.rayservice import reconcile_service, serve_service_name
from solray.kubernetes._internal.validation import InvalidSpec, validate_cluster_spec

__all__ = [
    "API_VERSION", "LABEL_CLUSTER", "LABEL_GROUP", "LABEL_NODE_TYPE", "Event", "InvalidSpec", "Plan",
    "desired_replicas", "head_service_name", "reconcile_cluster", "reconcile_job", "reconcile_service",
    "serve_service_name", "start_command", "token_secret_name", "validate_cluster_spec",
]
