"""The node daemon's records of workers, leases and lease requests."""

from __future__ import annotations

import asyncio
import time

from solray._private import ids
from solray._private.rpc.connection import Connection
from solray._private.scheduling.resources import describe, normalize

STARTING, IDLE, LEASED, DEAD = "starting", "idle", "leased", "dead"


class WorkerRecord:
    __slots__ = ("worker_id", "pid", "job_id", "env_key", "state", "conn", "address", "lease", "blocked", "idle_since", "waiting", "is_actor", "env_vars", "pip", "packages")

    def __init__(self, worker_id: str, job_id: int, env_key: str):
        self.worker_id = worker_id
        self.pid: int | None = None
        self.job_id = job_id
        self.env_key = env_key
        self.state = STARTING
        self.conn: Connection | None = None
        self.address = ""
        self.lease: Lease | None = None
        self.blocked = False
        self.idle_since = time.monotonic()
        self.waiting: Lease | None = None  # lease granted to this worker before it registered
        self.is_actor = False
        self.env_vars: dict = {}
        self.pip: dict | None = None  # the pip runtime_env it was started for (its own, not the job's)
        self.packages: dict | None = None  # its own working_dir/py_modules URIs (not the job's)


class Lease:
    __slots__ = ("lease_id", "demand", "gpu_ids", "worker", "owner", "future", "for_actor")

    def __init__(self, demand: dict, owner: Connection, future: asyncio.Future, for_actor: bool):
        self.lease_id = ids.new_id(8).hex()
        self.demand = demand
        self.gpu_ids: list[int] = []
        self.worker: WorkerRecord | None = None
        self.owner = owner
        self.future = future
        self.for_actor = for_actor


class LeaseRequest:
    __slots__ = ("demand", "job_id", "env_key", "env_vars", "owner", "future", "for_actor", "shape", "strategy", "spilled", "preferred", "pip", "packages")

    def __init__(self, payload: dict, owner: Connection, future: asyncio.Future):
        self.demand = normalize(payload.get("resources"))
        self.job_id = payload["job_id"]
        self.env_vars = payload.get("env_vars") or {}
        self.env_key = payload.get("env_key") or ""
        self.owner = owner
        self.future = future
        self.for_actor = bool(payload.get("for_actor"))
        self.shape = describe(self.demand)
        self.strategy = payload.get("strategy")
        self.spilled = bool(payload.get("spilled"))
        self.preferred = payload.get("preferred_node")
        self.pip = payload.get("pip")
        self.packages = payload.get("packages")


def pg_of(req: LeaseRequest) -> str | None:
    s = req.strategy
    return s.get("pg_id") if isinstance(s, dict) and s.get("type") == "placement_group" else None
