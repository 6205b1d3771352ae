"""Placement groups in the control service: choose nodes for bundles, reserve, remove.

``assign_bundles`` is the decision, a pure function of the bundles, the strategy and the
nodes' free resources (tested without processes). ``PlacementGroupManager`` is the thin
adapter around it: it keeps the group table, asks node daemons to reserve bundles (all
of a group or none: a failed reservation gives back what the others took), retries pending
groups when resources change or nodes join, re-places bundles lost with a dead node, and
on removal tells every daemon, which fails the group's queued leases and kills the
workers running in it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from solray._private.rpc.connection import RpcError
from solray._private.scheduling.labels import matches
from solray._private.scheduling.resources import EPS, describe, fits, normalize

if TYPE_CHECKING:
    from solray._private.control.service import ControlService

logger = logging.getLogger(__name__)

PENDING = "PENDING"
CREATED = "CREATED"
REMOVED = "REMOVED"
RESCHEDULING = "RESCHEDULING"
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


# ---------------------------------------------------------------------- the decision
def _add(total: dict[str, float], bundle: dict[str, float], sign: float = 1.0) -> None:
    for k, v in bundle.items():
        total[k] = total.get(k, 0.0) + sign * v


def _sum(bundles: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for b in bundles:
        _add(out, b)
    return out


def _leftover(need: dict[str, float], free: dict[str, float]) -> float:
    """How much of the demanded resources a node keeps after taking ``need`` (best fit: low)."""
    keys = [k for k in need if free.get(k, 0.0) > EPS] or ["CPU"]
    return sum((free.get(k, 0.0) - need.get(k, 0.0)) / free[k] if free.get(k, 0.0) > EPS else 1.0 for k in keys)


def _strict_pack(todo: list[int], bundles: list[dict], free: dict[str, dict], only: str | None,
                 allowed: list[set[str]]) -> dict[int, str] | None:
    need = _sum([bundles[i] for i in todo])
    candidates = [
        n for n in free
        if (only is None or n == only) and fits(need, free[n]) and all(n in allowed[i] for i in todo)
    ]
    if not candidates:
        return None
    best = min(candidates, key=lambda n: (_leftover(need, free[n]), n))
    return {i: best for i in todo}


def _greedy(todo: list[int], bundles: list[dict], free: dict[str, dict], counts: dict[str, int], pack: bool,
            allowed: list[set[str]]) -> dict[int, str] | None:
    out: dict[int, str] = {}
    # Big bundles first: they are the hard ones to fit.
    for i in sorted(todo, key=lambda i: (-sum(bundles[i].values()), i)):
        b = bundles[i]
        fitting = [n for n in free if n in allowed[i] and fits(b, free[n])]
        if not fitting:
            return None
        if pack:  # nodes the group already uses first, then the best fit
            node = min(fitting, key=lambda n: (counts[n] == 0, _leftover(b, free[n]), n))
        else:  # the node with the fewest of the group's bundles, then the emptiest
            node = min(fitting, key=lambda n: (counts[n], -_leftover(b, free[n]), n))
        out[i] = node
        counts[node] += 1
        _add(free[node], b, -1.0)
    return out


def _strict_spread(todo: list[int], bundles: list[dict], free: dict[str, dict], taken: set[str],
                   allowed: list[set[str]]) -> dict[int, str] | None:
    """Each bundle on its own node: a bipartite matching (augmenting paths)."""
    nodes = [n for n in sorted(free) if n not in taken]
    options = {i: [n for n in nodes if n in allowed[i] and fits(bundles[i], free[n])] for i in todo}
    match: dict[str, int] = {}

    def augment(i: int, seen: set[str]) -> bool:
        for n in options[i]:
            if n in seen:
                continue
            seen.add(n)
            if n not in match or augment(match[n], seen):
                match[n] = i
                return True
        return False

    for i in sorted(todo, key=lambda i: len(options[i])):
        if not augment(i, set()):
            return None
    return {i: n for n, i in match.items()}


def assign_bundles(
    bundles: list[dict[str, float]],
    strategy: str,
    nodes: dict[str, dict[str, float]],
    fixed: dict[int, str] | None = None,
    selectors: list[list] | None = None,
    labels: dict[str, dict] | None = None,
    soft_target: str | None = None,
) -> dict[int, str] | None:
    """Pick a node for every bundle, or None if the nodes cannot hold the group now.

    ``nodes`` maps node id to its free resources; ``fixed`` holds bundles already placed
    (a group being re-placed after a node died), whose resources are already taken.
    ``selectors`` (one wire label selector per bundle, against ``labels``: node id ->
    labels) restrict where each bundle may go; ``soft_target`` is a node to pack the whole
    group onto when it fits there. Returns ``{bundle index: node id}`` for all bundles,
    ``fixed`` ones included.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown placement strategy {strategy!r}")
    fixed = dict(fixed or {})
    bundles = [normalize(b) for b in bundles]
    free = {n: dict(av) for n, av in sorted(nodes.items())}
    todo = [i for i in range(len(bundles)) if i not in fixed]
    if not todo:
        return fixed
    counts = {n: 0 for n in free}
    for n in fixed.values():
        counts[n] = counts.get(n, 0) + 1
    labels = labels or {}
    allowed = [
        {n for n in free if matches(labels.get(n) or {}, selectors[i] if selectors and i < len(selectors) else None)}
        for i in range(len(bundles))
    ]
    placed = None
    if soft_target in free and not fixed and strategy in ("PACK", "STRICT_PACK"):
        placed = _strict_pack(todo, bundles, free, soft_target, allowed)
    if placed is not None:
        pass
    elif strategy == "STRICT_PACK":
        homes = set(fixed.values())
        if len(homes) > 1:
            return None
        placed = _strict_pack(todo, bundles, free, next(iter(homes)) if homes else None, allowed)
    elif strategy == "STRICT_SPREAD":
        placed = _strict_spread(todo, bundles, free, set(fixed.values()), allowed)
    elif strategy == "PACK":
        only = next(iter(set(fixed.values()))) if len(set(fixed.values())) == 1 else None
        placed = _strict_pack(todo, bundles, free, only, allowed) if not fixed or only else None
        if placed is None:
            placed = _greedy(todo, bundles, free, counts, True, allowed)
    else:
        placed = _greedy(todo, bundles, free, counts, False, allowed)
    if placed is None:
        return None
    return {**fixed, **placed}


# ---------------------------------------------------------------------- the table
class PlacementGroupRecord:
    def __init__(self, spec: dict):
        self.pg_id: bytes = spec["pg_id"]
        self.hex = self.pg_id.hex()
        self.name: str = spec.get("name") or ""
        self.namespace: str = spec.get("namespace") or ""
        self.bundles: list[dict[str, float]] = [normalize(b) for b in spec["bundles"]]
        self.strategy: str = spec.get("strategy") or "PACK"
        self.detached = spec.get("lifetime") == "detached"
        self.job_id = spec.get("job_id")
        self.selectors: list | None = spec.get("bundle_label_selector")  # wire form, per bundle
        self.soft_target: str | None = spec.get("soft_target_node_id")
        self.state = PENDING
        self.bundle_nodes: dict[int, str] = {}
        self.waiters: list[asyncio.Future] = []
        self.created_at = time.time()
        self.placed_at: float | None = None
        self.attempts = 0
        self.warned = False

    def saved(self) -> dict:
        return {
            "spec": {
                "pg_id": self.pg_id,
                "name": self.name,
                "namespace": self.namespace,
                "bundles": self.bundles,
                "strategy": self.strategy,
                "lifetime": "detached" if self.detached else None,
                "job_id": self.job_id,
                "bundle_label_selector": self.selectors,
                "soft_target_node_id": self.soft_target,
            },
            "state": self.state,
            "bundle_nodes": self.bundle_nodes,
            "created_at": self.created_at,
            "placed_at": self.placed_at,
        }

    def entry(self) -> dict:
        latency = None if self.placed_at is None else (self.placed_at - self.created_at) * 1000
        return {
            "placement_group_id": self.hex,
            "name": self.name,
            "namespace": self.namespace,
            "bundles": {i: dict(b) for i, b in enumerate(self.bundles)},
            "bundles_to_node_id": dict(self.bundle_nodes),
            "strategy": self.strategy,
            "state": self.state,
            "is_detached": self.detached,
            "creator_job_id": self.job_id,
            "stats": {
                "end_to_end_creation_latency_ms": latency,
                "scheduling_attempt": self.attempts,
                "scheduling_state": {
                    PENDING: "INFEASIBLE" if self.warned else "QUEUED",
                    RESCHEDULING: "QUEUED",
                    CREATED: "FINISHED",
                    REMOVED: "REMOVED",
                }[self.state],
            },
        }


def validate_spec(bundles: Any, strategy: Any) -> None:
    if not isinstance(bundles, list) or not bundles:
        raise ValueError("The placement group `bundles` argument must be a non-empty list of dicts.")
    for b in bundles:
        if not isinstance(b, dict) or not normalize(b):
            raise ValueError(
                f"Bundles cannot be an empty dictionary or resources with only 0 values. Bundles: {bundles}"
            )
    if strategy not in STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy!r}. Supported strategies: {list(STRATEGIES)}.")


class PlacementGroupManager:
    def __init__(self, service: ControlService):
        self.svc = service
        self.groups: dict[bytes, PlacementGroupRecord] = {}
        self.named: dict[tuple[str, str], bytes] = {}
        self._placing = False
        self._again = False

    def handlers(self) -> dict:
        return {
            "create_placement_group": self._h_create,
            "wait_placement_group": self._h_wait,
            "remove_placement_group": self._h_remove,
            "get_placement_group": self._h_get_named,
            "placement_group_table": self._h_table,
        }

    def restore(self) -> None:
        """Reload the groups a previous head wrote (daemons keep their reserved bundles)."""
        for saved in self.svc.store.load("placement_groups").values():
            rec = PlacementGroupRecord(saved["spec"])
            rec.state = saved["state"]
            rec.bundle_nodes = {int(i): n for i, n in (saved.get("bundle_nodes") or {}).items()}
            rec.created_at = saved.get("created_at") or rec.created_at
            rec.placed_at = saved.get("placed_at")
            self.groups[rec.pg_id] = rec
            if rec.name and rec.state != REMOVED:
                self.named[(rec.namespace, rec.name)] = rec.pg_id

    def _save(self, rec: PlacementGroupRecord) -> None:
        self.svc.store.put("placement_groups", rec.pg_id, rec.saved())

    def state_of(self, pg_hex: str) -> str | None:
        rec = self.groups.get(bytes.fromhex(pg_hex))
        return rec.state if rec else None

    # ---- requests ----------------------------------------------------------------------
    def _h_create(self, conn, spec: dict) -> dict:
        validate_spec(spec.get("bundles"), spec.get("strategy"))
        rec = PlacementGroupRecord(spec)
        if rec.name:
            existing = self.named.get((rec.namespace, rec.name))
            if existing is not None and self.groups[existing].state != REMOVED:
                raise ValueError(
                    f"Failed to create placement group {rec.name!r}: the name is already taken "
                    f"in namespace {rec.namespace!r}."
                )
            self.named[(rec.namespace, rec.name)] = rec.pg_id
        self.groups[rec.pg_id] = rec
        self._save(rec)
        self.kick()
        return rec.entry()

    def _h_wait(self, conn, pg_id: bytes) -> Any:
        rec = self.groups.get(pg_id)
        if rec is None or rec.state == REMOVED:
            return False
        if rec.state in (CREATED, RESCHEDULING) and rec.placed_at is not None:
            return True
        fut = asyncio.get_running_loop().create_future()
        rec.waiters.append(fut)
        return fut

    def _h_remove(self, conn, pg_id: bytes) -> bool:
        rec = self.groups.get(pg_id)
        if rec is None or rec.state == REMOVED:
            return False
        self.remove(rec, "The placement group was removed by remove_placement_group().")
        return True

    def _h_get_named(self, conn, p: list) -> dict | None:
        name, ns = p
        pg_id = self.named.get((ns or "", name))
        rec = self.groups.get(pg_id) if pg_id else None
        return rec.entry() if rec is not None and rec.state != REMOVED else None

    def _h_table(self, conn, pg_id: bytes | None) -> list:
        if pg_id is not None:
            rec = self.groups.get(pg_id)
            return [rec.entry()] if rec else []
        return [rec.entry() for rec in self.groups.values()]

    # ---- lifecycle ---------------------------------------------------------------------
    def remove(self, rec: PlacementGroupRecord, reason: str) -> None:
        if rec.state == REMOVED:
            return
        rec.state = REMOVED
        rec.bundle_nodes = {}
        if rec.name and self.named.get((rec.namespace, rec.name)) == rec.pg_id:
            del self.named[(rec.namespace, rec.name)]
        for conn in self.svc.node_conns.values():
            conn.notify("pg_removed", rec.hex)
        for actor in list(self.svc.actors.values()):
            s = actor.spec.get("strategy")
            if isinstance(s, dict) and s.get("pg_id") == rec.hex and actor.state != "DEAD":
                actor.no_restart = True
                self.svc._kill_actor_worker(actor)
                self.svc._set_dead(actor, {"message": reason, "pg_removed": True})
        self._resolve(rec, False)
        self._save(rec)

    def on_job_finished(self, job_id: int) -> None:
        for rec in list(self.groups.values()):
            if rec.job_id == job_id and not rec.detached and rec.state != REMOVED:
                self.remove(rec, "The placement group's job (driver) exited.")

    def on_node_dead(self, node_id: str) -> None:
        lost = False
        for rec in self.groups.values():
            if rec.state in (CREATED, RESCHEDULING) and node_id in rec.bundle_nodes.values():
                rec.bundle_nodes = {i: n for i, n in rec.bundle_nodes.items() if n != node_id}
                rec.state = RESCHEDULING
                self._save(rec)
                lost = True
        if lost:
            self.kick()

    def _resolve(self, rec: PlacementGroupRecord, created: bool) -> None:
        waiters, rec.waiters = rec.waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(created)

    # ---- placing -----------------------------------------------------------------------
    def kick(self) -> None:
        """Try to place pending groups soon (resources changed, a node joined...)."""
        if not any(r.state in (PENDING, RESCHEDULING) for r in self.groups.values()):
            return
        if self._placing:
            self._again = True
            return
        self._placing = True
        asyncio.get_running_loop().create_task(self._place_pending())

    async def _place_pending(self) -> None:
        try:
            while True:
                self._again = False
                for rec in [r for r in self.groups.values() if r.state in (PENDING, RESCHEDULING)]:
                    await self._try_place(rec)
                if not self._again:
                    return
        except Exception:
            logger.exception("placing placement groups failed")
        finally:
            self._placing = False

    def _alive_nodes(self) -> dict[str, dict]:
        return {
            nid: n for nid, n in self.svc.nodes.items() if n.get("alive") and nid in self.svc.node_conns
        }

    async def _try_place(self, rec: PlacementGroupRecord) -> None:
        nodes = self._alive_nodes()
        fixed = {i: n for i, n in rec.bundle_nodes.items() if n in nodes}
        labels = {n: v.get("labels") or {} for n, v in nodes.items()}
        constraints = {"selectors": rec.selectors, "labels": labels}
        mapping = assign_bundles(
            rec.bundles, rec.strategy, {n: v["resources_available"] for n, v in nodes.items()}, fixed,
            soft_target=rec.soft_target, **constraints,
        )
        rec.attempts += 1
        if mapping is None:
            totals = {n: v["resources_total"] for n, v in nodes.items()}
            if not rec.warned and assign_bundles(rec.bundles, rec.strategy, totals, **constraints) is None:
                rec.warned = True
                self.svc._warn_job(rec.job_id, self._infeasible_message(rec, nodes))
            return
        by_node: dict[str, list] = {}
        for i, nid in mapping.items():
            if i not in fixed:
                by_node.setdefault(nid, []).append([i, rec.bundles[i]])
        order = list(by_node)
        results = await asyncio.gather(*(self._reserve(nid, rec.hex, by_node[nid]) for nid in order))
        if rec.state == REMOVED or not all(r is True for r in results):
            for nid, ok in zip(order, results, strict=True):
                conn = self.svc.node_conns.get(nid)
                if ok is True and conn is not None:
                    conn.notify("return_bundles", [rec.hex, [i for i, _ in by_node[nid]]])
            if rec.state != REMOVED and False in results:
                self._again = True  # our view was stale: try again with the replies' view
            return
        rec.bundle_nodes = dict(sorted(mapping.items()))
        rec.state = CREATED
        rec.warned = False
        if rec.placed_at is None:
            rec.placed_at = time.time()
        self._save(rec)
        self.svc._broadcast_view()
        self._resolve(rec, True)
        self.svc._retry_pending_actors()

    async def _reserve(self, node_id: str, pg_hex: str, items: list) -> bool | None:
        """True: reserved; False: the node refused (it has less free than we thought);
        None: the node could not be asked."""
        conn = self.svc.node_conns.get(node_id)
        if conn is None:
            return None
        try:
            reply = await conn.request("reserve_bundles", [pg_hex, items])
        except (ConnectionError, RpcError) as e:
            logger.warning("reserving bundles of %s on node %s failed: %s", pg_hex, node_id, e)
            return None
        node = self.svc.nodes.get(node_id)
        if node is not None:
            node["resources_total"] = reply["total"]
            node["resources_available"] = reply["available"]
        return bool(reply["ok"])

    @staticmethod
    def _infeasible_message(rec: PlacementGroupRecord, nodes: dict[str, dict]) -> str:
        label = f"{rec.name!r} ({rec.hex})" if rec.name else rec.hex
        shapes = "; ".join(describe(n["resources_total"]) for n in nodes.values()) or "no nodes"
        return (
            f"The placement group {label} with bundles "
            f"{[describe(b) for b in rec.bundles]} and strategy {rec.strategy} cannot be created: "
            f"no set of nodes in the cluster can hold it (the nodes have {shapes}). "
            "It stays PENDING until nodes that fit join."
        )
