"""Task events: what an owner tells the control service about the tasks it submits.

The state API (``list_tasks``, ``summarize_tasks``, the dashboard's task table) needs to
know every task's state, but the owner's task path must not pay for it. So recording an
event is an append to a bounded deque; a timer on the IO loop sends what piled up to the
control service in one notification at most every ``FLUSH_INTERVAL_S``. Events that cannot
be sent (the head is away) stay buffered up to ``MAX_BUFFERED``; older ones are dropped.

Wire form of one event: ``[task_id, attempt, state, unix_time, extra]`` where ``extra`` is
a small dict (the task's static description on submission, its worker when it runs, the
error when it fails) or None.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from solray._private.worker.task_spec import ACTOR_CREATION, ACTOR_TASK

if TYPE_CHECKING:
    from solray._private.worker.core_worker import CoreWorker

FLUSH_INTERVAL_S = float(os.environ.get("SOLRAY_TASK_EVENTS_REPORT_INTERVAL_S", "0.1"))
MAX_BUFFERED = 10_000
MAX_ERROR_MESSAGE_CHARS = 4_000

# Ray's task states, in the order a task moves through them.
PENDING_ARGS_AVAIL = "PENDING_ARGS_AVAIL"
RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"

TYPE_NAMES = {ACTOR_TASK: "ACTOR_TASK", ACTOR_CREATION: "ACTOR_CREATION_TASK"}

# Ray's ErrorType names for the errors an owner fails a task with.
ERROR_TYPES = {
    "TaskCancelledError": "TASK_CANCELLED",
    "WorkerCrashedError": "WORKER_DIED",
    "NodeDiedError": "NODE_DIED",
    "OutOfMemoryError": "OUT_OF_MEMORY",
    "ActorDiedError": "ACTOR_DIED",
    "RayActorError": "ACTOR_DIED",
    "ActorUnavailableError": "ACTOR_UNAVAILABLE",
    "TaskUnschedulableError": "TASK_UNSCHEDULABLE_ERROR",
    "TaskPlacementGroupRemoved": "TASK_PLACEMENT_GROUP_REMOVED",
    "ObjectLostError": "OBJECT_UNRECONSTRUCTABLE",
    "RuntimeEnvSetupError": "RUNTIME_ENV_SETUP_FAILED",
    "RaySystemError": "WORKER_DIED",
}


def _enabled() -> bool:
    value = os.environ.get("SOLRAY_TASK_EVENTS", os.environ.get("RAY_task_events_enabled", "1"))
    return value.lower() not in ("0", "false", "no")


class TaskEventBuffer:
    """The owner's side of task events (one per core worker)."""

    def __init__(self, worker: CoreWorker):
        self.worker = worker
        self.enabled = _enabled()
        self._events: deque = deque(maxlen=MAX_BUFFERED)
        self._armed = False

    # ---- recording (any thread; normally the IO loop) ------------------------------------
    def submitted(self, spec: Any) -> None:
        if not self.enabled:
            return
        fn = spec.function
        extra = {
            "name": spec.name,
            "func": fn.name if fn is not None else spec.name,
            "type": TYPE_NAMES.get(spec.kind, "NORMAL_TASK"),
            "job": self.worker.job_id,
            "owner": self.worker.worker_id,
        }
        if spec.actor_id:
            extra["actor"] = spec.actor_id
        if spec.parent_task_id:
            extra["parent"] = spec.parent_task_id
        if spec.resources:
            extra["res"] = spec.resources
        if spec.placement:
            extra["pg"] = spec.placement[0]
        self._add(spec, PENDING_ARGS_AVAIL, extra)

    def running(self, spec: Any, node_id: str | None = None, worker_id: str | None = None, pid: int | None = None) -> None:
        if not self.enabled:
            return
        extra = {"node": node_id, "worker": worker_id, "pid": pid} if node_id else None
        self._add(spec, RUNNING, extra)

    def finished(self, spec: Any, reply: dict) -> None:
        if not self.enabled:
            return
        log = {"log": reply["lo"]} if "lo" in reply else None
        if not reply.get("e"):
            self._add(spec, FINISHED, log)
            return
        message = ""
        try:
            from solray._private.serialization import serializer

            message = str(serializer.deserialize(*reply["r"][0]))[:MAX_ERROR_MESSAGE_CHARS]
        except Exception:  # an error class this process cannot import: the type is enough
            pass
        kind = "TASK_CANCELLED" if reply.get("cancelled") else "TASK_EXECUTION_EXCEPTION"
        self._add(spec, FAILED, {"error_type": kind, "error_message": message, **(log or {})})

    def failed(self, spec: Any, error: BaseException) -> None:
        if not self.enabled:
            return
        name = type(error).__name__
        kind = ERROR_TYPES.get(name)
        if kind is None:
            kind = next((ERROR_TYPES[c.__name__] for c in type(error).__mro__ if c.__name__ in ERROR_TYPES), "TASK_EXECUTION_EXCEPTION")
        self._add(spec, FAILED, {"error_type": kind, "error_message": str(error)[:MAX_ERROR_MESSAGE_CHARS]})

    def _add(self, spec: Any, state: str, extra: dict | None) -> None:
        if spec.method == "__ray_terminate__":
            return  # the runtime's own call that ends an actor (Ray does not list it either)
        self._events.append([spec.task_id, spec.attempt or 0, state, time.time(), extra])
        if not self._armed:
            self._armed = True
            loop = self.worker.loop
            try:
                if self.worker.in_loop_thread():
                    loop.call_later(FLUSH_INTERVAL_S, self.flush)
                else:
                    loop.call_soon_threadsafe(loop.call_later, FLUSH_INTERVAL_S, self.flush)
            except RuntimeError:  # the loop is closed (shutdown)
                self._armed = False

    # ---- sending (IO loop) ---------------------------------------------------------------
    def flush(self) -> None:
        """Send every buffered event in one notification (kept if the head is away)."""
        self._armed = False
        control = self.worker.control
        if not self._events or control is None or control.closed:
            return
        batch = [self._events.popleft() for _ in range(len(self._events))]
        control.notify("task_events", batch)
