"""Resource accounting of one node: totals, what is free, and which GPUs are whose.

Pure bookkeeping, no IO: the node daemon asks it whether a demand fits and records what a
lease holds. Quantities are floats (fractional CPUs/GPUs are allowed, as in Ray); the
GPU ids handed to a lease become its ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import math

EPS = 1e-9


def normalize(resources: dict | None) -> dict[str, float]:
    return {k: float(v) for k, v in (resources or {}).items() if v}


def fits(demand: dict[str, float], available: dict[str, float]) -> bool:
    return all(available.get(k, 0.0) + EPS >= v for k, v in demand.items())


def describe(resources: dict[str, float]) -> str:
    parts = []
    for k, v in sorted(resources.items()):
        if k.startswith("node:"):
            continue
        if k in ("memory", "object_store_memory"):
            parts.append(f"{k}: {v / 2**30:.2f} GiB")
        else:
            parts.append(f"{k}: {v:g}")
    return "{" + ", ".join(parts) + "}"


class NodeResources:
    def __init__(self, total: dict[str, float]):
        self.total = normalize(total)
        self.available = dict(self.total)
        n_gpus = int(math.floor(self.total.get("GPU", 0) + EPS))
        self.gpu_free: dict[int, float] = {i: 1.0 for i in range(n_gpus)}

    def feasible(self, demand: dict[str, float]) -> bool:
        return fits(demand, self.total)

    def can_acquire(self, demand: dict[str, float]) -> bool:
        return fits(demand, self.available)

    def acquire(self, demand: dict[str, float]) -> list[int]:
        """Take ``demand``; return the GPU ids assigned (whole GPUs first, else a shared one)."""
        for k, v in demand.items():
            self.available[k] = self.available.get(k, 0.0) - v
        gpus = demand.get("GPU", 0.0)
        if gpus <= 0:
            return []
        ids: list[int] = []
        if gpus >= 1 - EPS:
            for gid in sorted(self.gpu_free):
                if len(ids) >= round(gpus):
                    break
                if self.gpu_free[gid] >= 1 - EPS:
                    ids.append(gid)
            for gid in ids:
                self.gpu_free[gid] = 0.0
        else:
            for gid in sorted(self.gpu_free, key=lambda g: self.gpu_free[g]):
                if self.gpu_free[gid] + EPS >= gpus:
                    self.gpu_free[gid] -= gpus
                    ids.append(gid)
                    break
        return ids

    def release(self, demand: dict[str, float], gpu_ids: list[int]) -> None:
        for k, v in demand.items():
            if k not in self.total:  # a placement group's resource, gone with its group
                continue
            self.available[k] = min(self.total.get(k, 0.0), self.available.get(k, 0.0) + v)
        gpus = demand.get("GPU", 0.0)
        share = 1.0 if gpus >= 1 - EPS else gpus
        for gid in gpu_ids:
            self.gpu_free[gid] = min(1.0, self.gpu_free.get(gid, 0.0) + share)

    def lend(self, part: dict[str, float]) -> None:
        """A blocked worker's CPUs (plain or a placement group's) become usable by others."""
        for k, v in part.items():
            if k in self.total:
                self.available[k] = self.available.get(k, 0.0) + v

    def reclaim(self, part: dict[str, float]) -> None:
        for k, v in part.items():
            if k in self.total:
                self.available[k] = self.available.get(k, 0.0) - v

    def lend_cpu(self, cpus: float) -> None:
        """A blocked worker's CPUs become usable by others (it may briefly oversubscribe)."""
        self.available["CPU"] = self.available.get("CPU", 0.0) + cpus

    def reclaim_cpu(self, cpus: float) -> None:
        self.available["CPU"] = self.available.get("CPU", 0.0) - cpus


def cpu_part(demand: dict[str, float]) -> dict[str, float]:
    """The CPU entries of a demand: ``CPU`` and a placement group's ``CPU_group_...``."""
    return {k: v for k, v in demand.items() if k == "CPU" or k.startswith("CPU_group_")}
