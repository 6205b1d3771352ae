"""Placement-group bundles as resources: their names, and a node's table of reserved ones.

A bundle reserved on a node takes its resources out of the node's free pool and puts
them back under *synthetic* names that only the group's tasks ask for, as Ray does:
``CPU_group_<i>_<pg>`` (bundle ``i``) and ``CPU_group_<pg>`` (the group's wildcard, the sum of
its bundles on this node), the same for ``GPU``, ``memory`` and custom resources, plus a
``bundle_group_..`` marker of 1000 units so a task asking for no resources can still be
pinned to a bundle. A task in bundle ``i`` asks for the indexed *and* the wildcard names,
so the wildcard bounds what the whole group uses on the node. Pure bookkeeping, no IO.
"""

from __future__ import annotations

import re

from solray._private.scheduling.resources import EPS, NodeResources, normalize

MARKER = "bundle"
MARKER_TOTAL = 1000.0
MARKER_DEMAND = 0.001


def resource_name(resource: str, pg_hex: str, index: int = -1) -> str:
    if index is None or index < 0:
        return f"{resource}_group_{pg_hex}"
    return f"{resource}_group_{index}_{pg_hex}"


def group_demand(demand: dict[str, float], pg_hex: str, index: int = -1) -> dict[str, float]:
    """Rewrite a task's demand into the names of its placement group's resources."""
    out: dict[str, float] = {}
    for k, v in normalize(demand).items():
        out[resource_name(k, pg_hex)] = v
        if index >= 0:
            out[resource_name(k, pg_hex, index)] = v
    out[resource_name(MARKER, pg_hex)] = MARKER_DEMAND
    if index >= 0:
        out[resource_name(MARKER, pg_hex, index)] = MARKER_DEMAND
    return out


def synthetic(bundle: dict[str, float], pg_hex: str, index: int) -> dict[str, float]:
    """What reserving ``bundle`` as bundle ``index`` adds to a node's resources."""
    out: dict[str, float] = {}
    for k, v in normalize(bundle).items():
        out[resource_name(k, pg_hex)] = v
        out[resource_name(k, pg_hex, index)] = v
    out[resource_name(MARKER, pg_hex)] = MARKER_TOTAL
    out[resource_name(MARKER, pg_hex, index)] = MARKER_TOTAL
    return out


_GROUP_NAME = re.compile(r"^(.+)_group_(?:(\d+)_)?([0-9a-f]+)$")


def original_resources(demand: dict[str, float]) -> dict[str, float]:
    """A demand with a placement group's resource names turned back into plain ones."""
    plain: dict[str, float] = {}
    grouped: dict[str, float] = {}
    for k, v in demand.items():
        m = _GROUP_NAME.match(k)
        if m is None:
            plain[k] = v
        elif m.group(1) != MARKER:
            grouped[m.group(1)] = v  # indexed and wildcard entries carry the same amount
    return {**plain, **grouped}


def uses_group(demand: dict, pg_hex: str) -> bool:
    suffix = "_" + pg_hex
    return any(k.endswith(suffix) for k in demand)


def _gpu_target(demand: dict) -> tuple[str, int, float] | None:
    """(pg, bundle index or -1, GPUs) for a demand on a group's GPUs, else None."""
    found: tuple[str, int, float] | None = None
    for k, v in demand.items():
        if not k.startswith("GPU_group_"):
            continue
        rest = k[len("GPU_group_"):]
        head, _, tail = rest.partition("_")
        if tail and head.isdigit():
            return tail, int(head), v
        found = (rest, -1, v)
    return found


class _Bundle:
    __slots__ = ("demand", "gpu_ids", "gpu_free", "share")

    def __init__(self, demand: dict[str, float], gpu_ids: list[int]):
        self.demand = demand
        self.gpu_ids = gpu_ids
        gpus = demand.get("GPU", 0.0)
        self.share = 1.0 if gpus >= 1 - EPS else gpus
        self.gpu_free: dict[int, float] = {g: self.share for g in gpu_ids}

    def take_gpus(self, gpus: float) -> list[int] | None:
        if gpus >= 1 - EPS:
            ids = [g for g in sorted(self.gpu_free) if self.gpu_free[g] >= 1 - EPS][: round(gpus)]
            if len(ids) < round(gpus):
                return None
            for g in ids:
                self.gpu_free[g] = 0.0
            return ids
        for g in sorted(self.gpu_free, key=lambda g: self.gpu_free[g]):
            if self.gpu_free[g] + EPS >= gpus:
                self.gpu_free[g] -= gpus
                return [g]
        return None


class BundleTable:
    """The bundles reserved on one node, kept in step with its ``NodeResources``."""

    def __init__(self, resources: NodeResources):
        self.resources = resources
        self.bundles: dict[tuple[str, int], _Bundle] = {}

    def groups(self) -> set[str]:
        return {pg for pg, _ in self.bundles}

    def reserve(self, pg_hex: str, items: list) -> bool:
        """Reserve ``[(index, bundle), ...]`` all together, or none if they do not fit now."""
        fresh = [(int(i), normalize(b)) for i, b in items if (pg_hex, int(i)) not in self.bundles]
        need: dict[str, float] = {}
        for _, b in fresh:
            for k, v in b.items():
                need[k] = need.get(k, 0.0) + v
        if not self.resources.can_acquire(need):
            return False
        res = self.resources
        for index, b in fresh:
            self.bundles[(pg_hex, index)] = _Bundle(b, res.acquire(b))
            for k, v in synthetic(b, pg_hex, index).items():
                res.total[k] = res.total.get(k, 0.0) + v
                res.available[k] = res.available.get(k, 0.0) + v
        return True

    def release(self, pg_hex: str, indices: list[int] | None = None) -> list[int]:
        """Give bundles of ``pg_hex`` (all, or ``indices``) back to the node; return which."""
        res = self.resources
        gone = [i for (pg, i) in self.bundles if pg == pg_hex and (indices is None or i in indices)]
        for index in gone:
            b = self.bundles.pop((pg_hex, index))
            for k, v in synthetic(b.demand, pg_hex, index).items():
                left = res.total.get(k, 0.0) - v
                if left <= EPS:
                    res.total.pop(k, None)
                    res.available.pop(k, None)
                else:
                    res.total[k] = left
                    res.available[k] = res.available.get(k, 0.0) - v
            res.release(b.demand, b.gpu_ids)
        return gone

    def acquire_gpus(self, demand: dict) -> list[int]:
        """GPU ids for a lease on a group's GPUs, taken from the bundle(s) holding them."""
        target = _gpu_target(demand)
        if target is None:
            return []
        pg, index, gpus = target
        for (p, i), b in sorted(self.bundles.items()):
            if p == pg and (index < 0 or i == index):
                ids = b.take_gpus(gpus)
                if ids is not None:
                    return ids
        return []

    def release_gpus(self, demand: dict, gpu_ids: list[int]) -> None:
        target = _gpu_target(demand)
        if target is None or not gpu_ids:
            return
        pg, index, gpus = target
        share = 1.0 if gpus >= 1 - EPS else gpus
        for (p, i), b in self.bundles.items():
            if p == pg and (index < 0 or i == index) and set(gpu_ids) <= set(b.gpu_free):
                for g in gpu_ids:
                    b.gpu_free[g] = min(b.share, b.gpu_free[g] + share)
                return
