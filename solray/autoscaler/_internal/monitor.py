"""The autoscaler's IO: read the node table and the pending demand from the head, ask the
state machine what to do, and have the node provider do it (draining nodes before removal).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from solray._private.api import query_control
from solray.autoscaler._internal.provider import NodeProvider
from solray.autoscaler._internal.scheduler import (
    Autoscaler,
    AutoscalerConfig,
    Decision,
    Demand,
    NodeState,
)

logger = logging.getLogger(__name__)


# Seconds between passes; SOLRAY_AUTOSCALER_INTERVAL_S sets it for the autoscaler processes.
DEFAULT_INTERVAL_S = float(os.environ.get("SOLRAY_AUTOSCALER_INTERVAL_S", "1.0"))


class Monitor:
    def __init__(self, config: AutoscalerConfig, provider: NodeProvider, control_address: str, token: str,
                 *, interval_s: float = DEFAULT_INTERVAL_S, log: Callable[[str], None] | None = None):
        self.autoscaler = Autoscaler(config)
        self.config = config
        self.provider = provider
        self.control_address = control_address
        self.token = token
        self.interval_s = interval_s
        self.log = log or logger.info
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_infeasible: set[str] = set()
        self.launched = 0
        self._alive_node_ids: list[str] = []
        self.terminated = 0

    def set_config(self, config: AutoscalerConfig) -> None:
        """New node types or bounds (a RayCluster's groups were edited); idle clocks carry over."""
        self.config = config
        self.autoscaler.config = config

    def _query(self, method: str, payload=None):
        return query_control(self.control_address, self.token, method, payload)

    def cluster_state(self) -> tuple[list[NodeState], Demand, dict[str, tuple[str, str]]]:
        """The nodes as the state machine sees them, the demand, and provider id -> (node id,
        daemon address) of the provider's nodes that joined."""
        table = {n["node_id"]: n for n in self._query("get_nodes") if n.get("alive")}
        self._alive_node_ids = list(table)
        by_ip = {n["node_ip"]: n for n in table.values()}
        states, managed, addresses = [], set(), {}
        for pn in self.provider.non_terminated_nodes():
            info = table.get(pn.node_id) if pn.node_id else by_ip.get(pn.node_ip or "")
            if info is None:
                t = self.config.node_types.get(pn.node_type)
                res = dict(t.resources) if t else {}
                states.append(NodeState(pn.provider_id, pn.node_type, res, res, launching=True))
                continue
            managed.add(info["node_id"])
            addresses[pn.provider_id] = (info["node_id"], info["address"])
            states.append(NodeState(pn.provider_id, pn.node_type, info["resources_total"], info["resources_available"]))
        for nid, info in table.items():
            if nid not in managed:  # the head, and nodes started by hand: never removed
                states.append(NodeState(f"node-{nid[:12]}", None, info["resources_total"], info["resources_available"]))
        raw = self._query("get_resource_demand")
        demand = Demand(raw["leases"] + raw["actors"], raw["placement_groups"], raw["requested"])
        return states, demand, addresses

    def tick(self) -> Decision:
        states, demand, addresses = self.cluster_state()
        decision = self.autoscaler.update(states, demand, time.monotonic())
        leaving = {addresses[p][0] for p in decision.terminate if p in addresses}
        staying = [nid for nid in self._alive_node_ids if nid not in leaving]
        for shape in decision.infeasible:
            key = repr(sorted(shape.items()))
            if key not in self._warned_infeasible:
                self._warned_infeasible.add(key)
                self.log(f"autoscaler: no node type can hold {shape}; it stays pending "
                         f"(node types: {[t.resources for t in self.config.node_types.values()]})")
        launches = []
        for name, count in decision.launch.items():
            self.log(f"autoscaler: adding {count} {name} node(s): {'; '.join(r for r in decision.reasons if r.startswith(name))}")
            launches += [self.config.node_types[name]] * count
        if launches:
            # Nodes start in parallel: a node's start is mostly waiting for its process.
            with ThreadPoolExecutor(min(len(launches), 16)) as pool:
                for _ in pool.map(self.provider.create_node, launches):
                    self.launched += 1
        for provider_id in decision.terminate:
            if provider_id in addresses:
                # Objects go to nodes that stay, never to one removed in this same pass.
                report = query_control(addresses[provider_id][1], self.token, "drain", staying, timeout=120)
                if not report.get("ok"):
                    self.log(f"autoscaler: keeping {provider_id}: {report.get('reason') or report}")
                    self.autoscaler.idle_since.pop(provider_id, None)
                    continue
                if report.get("moved"):
                    self.log(f"autoscaler: moved {report['moved']} object(s) off {provider_id}")
            self.log(f"autoscaler: removing idle node {provider_id}")
            self.provider.terminate_node(provider_id)
            self.terminated += 1
        return decision

    # ---- background loop --------------------------------------------------------------
    def start(self) -> Monitor:
        self._thread = threading.Thread(target=self.run, name="solray-autoscaler", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as e:  # a head restart or a slow node must not end autoscaling
                logger.warning("autoscaler pass failed: %s", e)
            self._stop.wait(self.interval_s)

    def stop_soon(self) -> None:
        """End the loop after the current pass (safe from a signal handler)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
