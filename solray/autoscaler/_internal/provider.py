"""What a node provider does for the autoscaler: list, start and stop worker nodes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from solray.autoscaler._internal.scheduler import NodeType


@dataclass(frozen=True)
class ProviderNode:
    provider_id: str
    node_type: str
    # The solray node id once known (the local provider knows it at start; on Kubernetes the
    # monitor matches nodes by IP instead).
    node_id: str | None = None
    node_ip: str | None = None


class NodeProvider(ABC):
    @abstractmethod
    def non_terminated_nodes(self) -> list[ProviderNode]:
        """The worker nodes this provider started that are still there (or starting)."""

    @abstractmethod
    def create_node(self, node_type: NodeType) -> str:
        """Start one node of ``node_type``; return its provider id."""

    @abstractmethod
    def terminate_node(self, provider_id: str) -> None:
        """Stop the node (the monitor drained it first)."""
