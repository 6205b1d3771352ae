"""The autoscaler's decisions as a sans-IO state machine: cluster state in, a ``Decision`` out.

Each ``update`` bin-packs the pending demand (queued tasks and actors, pending placement
groups) onto the free resources of the nodes that exist or are starting, then onto new
nodes of the configured types; adds nodes for ``min_workers`` and for the standing
``request_resources`` request (packed onto whole nodes, as Ray does); and removes worker
nodes that stayed idle for ``idle_timeout_s`` (never below ``min_workers``). Launches per
pass are bounded by ``upscaling_speed`` times the number of nodes, as Ray bounds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Resources that every node reports but that do not make a node busy or a type fit.
_IGNORED = ("memory", "object_store_memory")
# Ray lets at least this many launches be in flight, whatever upscaling_speed says.
MIN_CONCURRENT_LAUNCHES = 5


@dataclass(frozen=True)
class NodeType:
    name: str
    resources: dict[str, float]
    min_workers: int = 0
    max_workers: int = 2**31 - 1


@dataclass(frozen=True)
class AutoscalerConfig:
    node_types: dict[str, NodeType]
    max_workers: int = 2**31 - 1
    idle_timeout_s: float = 60.0
    upscaling_speed: float = 1.0

    def __post_init__(self) -> None:
        if self.idle_timeout_s < 0:
            raise ValueError(f"idle timeout must not be negative, got {self.idle_timeout_s}")
        if self.upscaling_speed <= 0:
            raise ValueError(f"upscaling_speed must be positive, got {self.upscaling_speed}")
        for t in self.node_types.values():
            if t.min_workers < 0 or t.max_workers < t.min_workers:
                raise ValueError(
                    f"node type {t.name!r}: need 0 <= min_workers <= max_workers, got {t.min_workers} and {t.max_workers}"
                )


@dataclass
class NodeState:
    """One node: ``node_type`` None for the head (never removed by the autoscaler)."""

    provider_id: str
    node_type: str | None
    total: dict[str, float]
    available: dict[str, float]
    launching: bool = False  # started by the provider, not yet in the node table


@dataclass
class Demand:
    resources: list[dict[str, float]] = field(default_factory=list)  # queued tasks and actors
    placement_groups: list[dict] = field(default_factory=list)  # {"bundles": [...], "strategy": ...}
    requested: list[dict[str, float]] = field(default_factory=list)  # request_resources


@dataclass
class Decision:
    launch: dict[str, int] = field(default_factory=dict)
    terminate: list[str] = field(default_factory=list)
    infeasible: list[dict[str, float]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.launch or self.terminate)


def _relevant(resources: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in resources.items() if v and k not in _IGNORED and not k.startswith("node:")}


def _fits(demand: dict[str, float], free: dict[str, float]) -> bool:
    return all(free.get(k, 0.0) + 1e-9 >= v for k, v in _relevant(demand).items())


def _take(demand: dict[str, float], free: dict[str, float]) -> None:
    for k, v in _relevant(demand).items():
        free[k] = free.get(k, 0.0) - v


def _size(demand: dict[str, float]) -> tuple:
    r = _relevant(demand)
    return (r.get("GPU", 0.0), r.get("CPU", 0.0), sum(r.values()))


def demand_bundles(demand: Demand) -> list[dict[str, float]]:
    """Everything that must fit on free resources, largest first (first-fit decreasing)."""
    out = [dict(d) for d in demand.resources]
    for pg in demand.placement_groups:
        bundles = [dict(b) for b in pg.get("bundles") or []]
        if pg.get("strategy") == "STRICT_PACK" and bundles:
            merged: dict[str, float] = {}
            for b in bundles:
                for k, v in b.items():
                    merged[k] = merged.get(k, 0.0) + v
            bundles = [merged]
        out += bundles
    return sorted((d for d in out if _relevant(d)), key=_size, reverse=True)


class Autoscaler:
    """Decides launches and removals; remembers how long each node has been idle."""

    def __init__(self, config: AutoscalerConfig):
        self.config = config
        self.idle_since: dict[str, float] = {}

    def update(self, nodes: list[NodeState], demand: Demand, now: float) -> Decision:
        decision = Decision()
        counts = {name: 0 for name in self.config.node_types}
        for n in nodes:
            if n.node_type in counts:
                counts[n.node_type] += 1
        workers = sum(counts.values())
        budget = max(MIN_CONCURRENT_LAUNCHES, math.ceil(self.config.upscaling_speed * max(1, len(nodes))))
        budget -= sum(1 for n in nodes if n.launching)
        new_nodes: list[tuple[str, dict[str, float]]] = []

        def can_add(name: str) -> bool:
            t = self.config.node_types[name]
            return (budget - len(new_nodes) > 0 and counts[name] < t.max_workers
                    and workers + len(new_nodes) < self.config.max_workers)

        def add(name: str, why: str) -> dict[str, float]:
            free = dict(_relevant(self.config.node_types[name].resources))
            new_nodes.append((name, free))
            counts[name] += 1
            decision.launch[name] = decision.launch.get(name, 0) + 1
            decision.reasons.append(why)
            return free

        for name, t in self.config.node_types.items():
            while counts[name] < t.min_workers and can_add(name):
                add(name, f"{name}: min_workers={t.min_workers}")

        # Pending demand onto free resources (launching nodes count as wholly free).
        free_pool = [dict(n.total if n.launching else n.available) for n in nodes] + [f for _, f in new_nodes]
        unmet, _ = self._pack(demand_bundles(demand), free_pool)
        used_by_demand = self._place_on_new_nodes(unmet, decision, can_add, add, new_nodes)

        # request_resources: the cluster as a whole must be able to hold these at once.
        totals = [dict(n.total) for n in nodes] + [dict(_relevant(self.config.node_types[name].resources)) for name, _ in new_nodes]
        asked = sorted((d for d in demand.requested if _relevant(d)), key=_size, reverse=True)
        unmet, used = self._pack(asked, totals)
        self._place_on_new_nodes(unmet, decision, can_add, add, new_nodes, request=True)
        # Nodes that hold part of the request stay, idle or not.
        keep = {nodes[i].provider_id for i in used if i < len(nodes)}
        self._scale_down(nodes, counts, decision, bool(used_by_demand), keep, now)
        return decision

    @staticmethod
    def _pack(bundles: list[dict], free_pool: list[dict]) -> tuple[list[dict], set[int]]:
        """First fit: the bundles that found no room, and the indices of the slots used."""
        unmet, used = [], set()
        for b in bundles:
            i = next((i for i, f in enumerate(free_pool) if _fits(b, f)), None)
            if i is None:
                unmet.append(b)
            else:
                _take(b, free_pool[i])
                used.add(i)
        return unmet, used

    def _place_on_new_nodes(self, unmet, decision, can_add, add, new_nodes, request: bool = False) -> list[dict]:
        placed = []
        for b in unmet:
            slot = next((f for _, f in new_nodes if _fits(b, f)), None)
            if slot is None:
                fitting = [t for t in self.config.node_types.values() if _fits(b, t.resources)]
                if not fitting:
                    decision.infeasible.append(b)
                    continue
                addable = [t for t in fitting if can_add(t.name)]
                if not addable:
                    continue  # at max_workers or the launch budget: wait
                # The smallest type that fits wastes the least.
                best = min(addable, key=lambda t: sum(_relevant(t.resources).values()))
                slot = add(best.name, f"{best.name}: {'requested' if request else 'pending'} {_relevant(b)}")
            _take(b, slot)
            placed.append(b)
        return placed

    def _scale_down(self, nodes: list[NodeState], counts: dict, decision: Decision, launching_for_demand: bool,
                    keep: set[str], now: float) -> None:
        alive = {n.provider_id for n in nodes}
        for pid in list(self.idle_since):
            if pid not in alive:
                del self.idle_since[pid]
        for n in sorted(nodes, key=lambda n: n.provider_id):
            if n.node_type is None or n.launching or n.provider_id in keep:
                continue
            busy = any(n.available.get(k, 0.0) + 1e-9 < v for k, v in _relevant(n.total).items())
            if busy:
                self.idle_since.pop(n.provider_id, None)
                continue
            since = self.idle_since.setdefault(n.provider_id, now)
            t = self.config.node_types.get(n.node_type)
            over_max = t is not None and counts[n.node_type] > t.max_workers
            if t is not None and counts[n.node_type] <= t.min_workers:
                continue
            if over_max or (now - since >= self.config.idle_timeout_s and not launching_for_demand):
                decision.terminate.append(n.provider_id)
                decision.reasons.append(f"{n.provider_id}: idle for {now - since:.0f}s" if not over_max else f"{n.provider_id}: above max_workers")
                counts[n.node_type] -= 1
                self.idle_since.pop(n.provider_id, None)
