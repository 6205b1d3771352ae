"""The ``kubernetes`` node provider: the autoscaler of a RayCluster with
``enableInTreeAutoscaling: true`` changes ``workerGroupSpecs[].replicas`` and names the Pods to
remove in ``scaleStrategy.workersToDelete``; the operator makes and deletes the Pods.

Node types are the worker groups (resources from ``rayStartParams`` or the container limits,
bounds from ``minReplicas``/``maxReplicas``); ``autoscalerOptions`` sets the idle timeout
and the upscaling mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from solray.autoscaler._internal.provider import NodeProvider, ProviderNode
from solray.autoscaler._internal.scheduler import AutoscalerConfig, NodeType
from solray.kubernetes._internal.client import ApiError, KubeClient
from solray.kubernetes._internal.common import LABEL_CLUSTER, LABEL_GROUP, LABEL_NODE_TYPE
from solray.kubernetes._internal.pods import node_resources

# KubeRay's upscalingMode: Conservative grows at most by the cluster's size per pass; Default
# and Aggressive do not limit it.
UPSCALING_SPEED = {"Conservative": 1.0, "Default": 1000.0, "Aggressive": 1000.0}
DEFAULT_IDLE_TIMEOUT_S = 60.0


def config_from_raycluster(cluster: dict) -> AutoscalerConfig:
    spec = cluster["spec"]
    options = spec.get("autoscalerOptions") or {}
    types = {}
    for group in spec.get("workerGroupSpecs") or []:
        high = group.get("maxReplicas")
        types[group["groupName"]] = NodeType(
            group["groupName"], node_resources(group), int(group.get("minReplicas") or 0),
            int(high) if high is not None else 2**31 - 1,
        )
    return AutoscalerConfig(
        types,
        idle_timeout_s=float(options.get("idleTimeoutSeconds", DEFAULT_IDLE_TIMEOUT_S)),
        upscaling_speed=UPSCALING_SPEED.get(options.get("upscalingMode") or "Default", 1000.0),
    )


class KubernetesNodeProvider(NodeProvider):
    def __init__(self, cluster_name: str, namespace: str, client_factory: Callable[[], KubeClient]):
        self.cluster_name = cluster_name
        self.namespace = namespace
        self._client_factory = client_factory

    def _run(self, fn: Callable[[KubeClient], Any]) -> Any:
        async def go():
            client = self._client_factory()
            try:
                return await fn(client)
            finally:
                await client.close()

        return asyncio.run(go())

    def cluster(self) -> dict:
        obj = self._run(lambda cl: cl.get("RayCluster", self.namespace, self.cluster_name))
        if obj is None:
            raise LookupError(f"RayCluster {self.namespace}/{self.cluster_name} does not exist")
        return obj

    def non_terminated_nodes(self) -> list[ProviderNode]:
        selector = {LABEL_CLUSTER: self.cluster_name, LABEL_NODE_TYPE: "worker"}

        async def read(cl: KubeClient):
            return await asyncio.gather(cl.list("Pod", self.namespace, selector),
                                        cl.get("RayCluster", self.namespace, self.cluster_name))

        pods, cluster = self._run(read)
        nodes = []
        by_group: dict[str, int] = {}
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                continue
            group = pod["metadata"]["labels"].get(LABEL_GROUP, "")
            by_group[group] = by_group.get(group, 0) + 1
            nodes.append(ProviderNode(pod["metadata"]["name"], group, None, (pod.get("status") or {}).get("podIP")))
        # Replicas asked for whose Pods do not exist yet are nodes being launched.
        for group in (cluster or {}).get("spec", {}).get("workerGroupSpecs") or []:
            name = group["groupName"]
            for i in range(max(0, (group.get("replicas") or 0) - by_group.get(name, 0))):
                nodes.append(ProviderNode(f"pending-{name}-{i}", name, None, None))
        return nodes

    def _change_group(self, group_name: str, delta: int, remove: str | None = None) -> None:
        async def change(cl: KubeClient):
            for _attempt in range(10):
                try:
                    return await change_once(cl)
                except ApiError as e:
                    if e.status != 409:
                        raise
                    await asyncio.sleep(0.05)  # the operator wrote meanwhile: read again
            raise RuntimeError(f"could not update RayCluster {self.cluster_name}: it keeps changing")

        async def change_once(cl: KubeClient):
            cluster = await cl.get("RayCluster", self.namespace, self.cluster_name)
            groups = cluster["spec"]["workerGroupSpecs"]
            for g in groups:
                if g["groupName"] == group_name:
                    g["replicas"] = max(0, (g.get("replicas") or 0) + delta)
                    if remove is not None:
                        strategy = g.setdefault("scaleStrategy", {})
                        strategy["workersToDelete"] = [*(strategy.get("workersToDelete") or []), remove]
            # The resourceVersion makes a concurrent change (the operator clearing
            # workersToDelete) fail this write instead of being overwritten.
            await cl.patch("RayCluster", self.namespace, self.cluster_name, {
                "metadata": {"resourceVersion": cluster["metadata"]["resourceVersion"]},
                "spec": {"workerGroupSpecs": groups},
            })

        self._run(change)

    def create_node(self, node_type: NodeType) -> str:
        self._change_group(node_type.name, +1)
        return f"pending-{node_type.name}"

    def terminate_node(self, provider_id: str) -> None:
        if provider_id.startswith("pending-"):
            self._change_group(provider_id.removeprefix("pending-").rsplit("-", 1)[0], -1)
            return
        pods = self._run(lambda cl: cl.get("Pod", self.namespace, provider_id))
        if pods is None:
            return
        self._change_group(pods["metadata"]["labels"][LABEL_GROUP], -1, remove=provider_id)
