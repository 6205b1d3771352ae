"""One deployment's replicas as the controller sees them, and what to do next.

``DeploymentState.plan(now)`` compares the replicas with the target (count and version)
and returns the actions to take: start replicas, stop replicas, reconfigure replicas. The
controller performs them and reports back with ``on_*`` calls, so the decisions are plain
code over plain data.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from solray.serve._internal.autoscaling import AutoscalingPolicy
from solray.serve.config import DeploymentConfig

STARTING, RUNNING, STOPPING = "STARTING", "RUNNING", "STOPPING"
#: A version whose replicas fail to start this many times in a row is given up on.
MAX_START_FAILURES = 3
#: How long the reason a replica was lost is kept for routers to quote.
LOST_REASON_TTL_S = 60.0
#: How long a router's report of queued requests counts without being renewed.
QUEUED_REPORT_TTL_S = 60.0


@dataclasses.dataclass
class Replica:
    id: str
    version: str
    state: str = STARTING
    actor: Any = None
    started_at: float = 0.0
    user_config_version: int = 0
    # In-flight controller calls (asyncio futures), owned by the controller's loop.
    ready: Any = None
    watch: Any = None
    health: Any = None
    health_started: float = 0.0
    last_health_ok: float = 0.0
    stop: Any = None
    stop_started: float = 0.0
    metrics: Any = None
    slow_start_noted: bool = False
    ongoing: float = 0.0


class DeploymentState:
    def __init__(self, app: str, spec: dict, now: float) -> None:
        self.app = app
        self.name = spec["name"]
        self.replicas: dict[str, Replica] = {}
        self.deleting = False
        self.failures = 0
        self.message = ""
        self.queued: dict[str, tuple[int, float]] = {}  # router id -> (requests waiting, when)
        # Why replicas were lost (for the errors of their in-flight requests): id -> (why, when).
        self.lost: dict[str, tuple[str, float]] = {}
        self.user_config_version = 0
        self.spec: dict = {}
        self.config: DeploymentConfig | None = None
        self.policy: AutoscalingPolicy | None = None
        self.target = 0
        self.apply(spec, now)

    # ---- the desired state ---------------------------------------------------------------
    def apply(self, spec: dict, now: float) -> None:
        """A new (or the same) spec for this deployment: code, arguments, config."""
        config = DeploymentConfig.from_dict(dict(spec["config"]))
        old = self.config
        if spec.get("version") != self.spec.get("version"):
            self.failures = 0
            self.message = ""
        if old is None or old.user_config != config.user_config:
            self.user_config_version += 1
        if config.autoscaling_config is not None:
            if old is None or old.autoscaling_config != config.autoscaling_config or self.policy is None:
                self.policy = AutoscalingPolicy(config.autoscaling_config)
                a = config.autoscaling_config
                running = self.target if old is not None else a.initial()
                self.target = max(a.min_replicas, min(a.max_replicas, running))
        else:
            self.policy = None
            self.target = config.num_replicas
        self.spec = spec
        self.config = config
        self.deleting = False

    def delete(self) -> None:
        self.deleting = True
        self.target = 0

    @property
    def version(self) -> str:
        return self.spec["version"]

    # ---- observations --------------------------------------------------------------------
    def on_started(self, rid: str, now: float) -> None:
        r = self.replicas.get(rid)
        if r is not None and r.state == STARTING:
            r.state = RUNNING
            r.last_health_ok = now
            self.failures = 0
            self.message = ""

    def on_start_failed(self, rid: str, error: str) -> None:
        r = self.replicas.pop(rid, None)
        if r is not None and r.version == self.version:
            self.failures += 1
            self.message = f"A replica of {self.name!r} failed to start: {error}"

    def on_gone(self, rid: str) -> Replica | None:
        return self.replicas.pop(rid, None)

    def on_lost(self, rid: str, reason: str, now: float) -> None:
        """A running replica died or failed its health check: it is replaced."""
        self.replicas.pop(rid, None)
        self.lost = {k: v for k, v in self.lost.items() if now - v[1] < LOST_REASON_TTL_S}
        self.lost[rid] = (reason, now)

    def record_queued(self, router_id: str, queued: int, now: float) -> None:
        if queued:
            self.queued[router_id] = (queued, now)
        else:
            self.queued.pop(router_id, None)

    def autoscale(self, now: float) -> None:
        if self.policy is None or self.deleting:
            return
        # A router that stopped reporting (its process died) stops counting after a while.
        self.queued = {k: v for k, v in self.queued.items() if now - v[1] < QUEUED_REPORT_TTL_S}
        running = [r for r in self.replicas.values() if r.state == RUNNING and r.version == self.version]
        if running:
            load = sum(r.ongoing for r in running) + sum(n for n, _ in self.queued.values())
            self.policy.record(now, load)
        self.target = self.policy.decide(now, self.target)

    # ---- decisions -----------------------------------------------------------------------
    def plan(self, now: float) -> dict[str, list]:
        """What to start, stop and reconfigure to move towards the target."""
        current = [r for r in self.replicas.values() if r.version == self.version and r.state != STOPPING]
        old = [r for r in self.replicas.values() if r.version != self.version and r.state != STOPPING]
        to_start: list[Replica] = []
        to_stop: list[Replica] = []
        missing = self.target - len(current)
        if missing > 0 and self.failures < MAX_START_FAILURES:
            for _ in range(missing):
                r = Replica(id=uuid.uuid4().hex[:8], version=self.version, started_at=now,
                            user_config_version=self.user_config_version)
                self.replicas[r.id] = r
                to_start.append(r)
        elif missing < 0:
            # Replicas still starting go first, then the least busy.
            extra = sorted(current, key=lambda r: (r.state == RUNNING, r.ongoing))[:-missing]
            to_stop.extend(extra)
        # Old versions leave once the new ones can take all their traffic (and stay while a
        # new version fails to start: serving old code beats serving nothing).
        kept = [r for r in current if r not in to_stop]
        if old and len(kept) >= self.target and all(r.state == RUNNING for r in kept):
            to_stop.extend(old)
        for r in to_stop:
            r.state = STOPPING
            r.stop_started = now
        reconfigure = [r for r in current if r.state == RUNNING and r.user_config_version != self.user_config_version]
        for r in reconfigure:
            r.user_config_version = self.user_config_version
        return {"start": to_start, "stop": to_stop, "reconfigure": reconfigure}

    def routable(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.state == RUNNING]

    def status(self) -> str:
        if self.failures >= MAX_START_FAILURES:
            return "DEPLOY_FAILED"
        current = [r for r in self.replicas.values() if r.version == self.version and r.state == RUNNING]
        others = [r for r in self.replicas.values() if r not in current and r.state != STOPPING]
        if len(current) == self.target and not others:
            return "HEALTHY"
        if self.policy is not None and not any(r.version != self.version for r in others):
            return "UPSCALING" if len(current) < self.target else "DOWNSCALING"
        return "UPDATING"

    def replica_states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.replicas.values():
            counts[r.state] = counts.get(r.state, 0) + 1
        return counts
