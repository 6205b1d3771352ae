"""What one reconcile pass decided: the objects to create, delete and update, the status to
write and the Events to record. The kopf adapter carries a ``Plan`` out; tests read it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Event:
    type: str  # "Normal" or "Warning", as Kubernetes Events
    reason: str
    message: str


@dataclass
class Plan:
    create: list[dict] = field(default_factory=list)
    # (kind, name) of objects to delete, in the resource's namespace.
    delete: list[tuple[str, str]] = field(default_factory=list)
    # Whole objects whose spec must change (a Service's selector, a RayCluster's replicas).
    update: list[dict] = field(default_factory=list)
    status: dict = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    # A merge patch of the resource's own spec (KubeRay clears workersToDelete once done).
    spec_patch: dict | None = None
    # Calls to a Ray head's HTTP APIs (submit a job, deploy a serve config), done by the adapter.
    calls: list[dict] = field(default_factory=list)
    # Seconds after which the adapter should reconcile again even without a change.
    requeue_after: float | None = None

    def warn(self, reason: str, message: str) -> None:
        self.events.append(Event("Warning", reason, message))

    def note(self, reason: str, message: str) -> None:
        self.events.append(Event("Normal", reason, message))

    def extend(self, other: Plan) -> None:
        self.create += other.create
        self.delete += other.delete
        self.update += other.update
        self.events += other.events
        self.calls += other.calls
