"""The solray autoscaler: adds worker nodes for pending demand and removes idle ones.

The head publishes the demand it cannot place (queued tasks and actors, pending placement
groups, ``sdk.request_resources``); ``Autoscaler`` (a pure state machine) bin-packs it onto
node types within ``min_workers``/``max_workers`` and ``upscaling_speed`` and times out idle
nodes; a ``Monitor`` runs it against a node provider: ``LocalNodeProvider`` (node daemons on
this machine, ``solray up cluster.yaml``) or ``KubernetesNodeProvider`` (a RayCluster's
``workerGroupSpecs`` replicas and ``workersToDelete``). Nodes are drained before removal:
the objects they hold move to other nodes first.
"""

from solray.autoscaler._internal.cluster_config import ClusterConfigError
from solray.autoscaler._internal.cluster_config import load as load_cluster_config
from solray.autoscaler._internal.local_provider import LocalNodeProvider
from solray.autoscaler._internal.monitor import Monitor
from solray.autoscaler._internal.provider import NodeProvider, ProviderNode
from solray.autoscaler._internal.scheduler import (
    Autoscaler,
    AutoscalerConfig,
    Decision,
    Demand,
    NodeState,
    NodeType,
)

__all__ = [
    "Autoscaler", "AutoscalerConfig", "ClusterConfigError", "Decision", "Demand", "LocalNodeProvider", "Monitor",
    "NodeProvider", "NodeState", "NodeType", "ProviderNode", "load_cluster_config",
]
