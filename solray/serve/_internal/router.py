"""Which replica takes a request: power of two choices on ongoing requests.

``ReplicaScheduler`` is the decision logic alone (no IO, not thread-safe): replicas and their
ongoing counts in, a replica out. ``Router`` wraps it for one deployment in one process: it is
thread-safe (drivers call handles from any thread, proxies from their event loop), lets
callers wait when every replica is at ``max_ongoing_requests``, and refuses them with
``BackPressureError`` past ``max_queued_requests``. The controller pushes replica changes.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from solray.serve.exceptions import BackPressureError, DeploymentUnavailableError


class ReplicaScheduler:
    def __init__(self) -> None:
        self.ongoing: dict[str, int] = {}
        self.max_ongoing = 5
        # model id -> replica last sent it: requests for a model stick to where it is loaded.
        self.model_affinity: dict[str, str] = {}

    def update(self, replica_ids: list[str], max_ongoing: int) -> None:
        self.max_ongoing = max_ongoing
        self.ongoing = {rid: self.ongoing.get(rid, 0) for rid in replica_ids}
        self.model_affinity = {m: r for m, r in self.model_affinity.items() if r in self.ongoing}

    def choose(self, model_id: str = "") -> str | None:
        """A replica with room (and count the request on it), or None if all are full."""
        ongoing = self.ongoing
        cap = self.max_ongoing
        if model_id:
            rid = self.model_affinity.get(model_id)
            if rid is not None and ongoing.get(rid, cap) < cap:
                ongoing[rid] += 1
                return rid
        free = [r for r, n in ongoing.items() if n < cap]
        if not free:
            return None
        if len(free) == 1:
            rid = free[0]
        else:
            a, b = random.sample(free, 2)
            rid = a if ongoing[a] <= ongoing[b] else b
        ongoing[rid] += 1
        if model_id:
            self.model_affinity[model_id] = rid
        return rid

    def release(self, rid: str) -> None:
        n = self.ongoing.get(rid)
        if n:
            self.ongoing[rid] = n - 1

    def remove(self, rid: str) -> None:
        self.ongoing.pop(rid, None)


class Router:
    """Routes one deployment's requests from this process."""

    def __init__(self, app: str, deployment: str, report: Callable[[str, int], None] | None = None) -> None:
        self.app = app
        self.deployment = deployment
        self.id = uuid.uuid4().hex
        self._report = report
        self._queued = 0
        self.lost: dict[str, str] = {}  # replica id -> why the controller replaced it
        self._reported = 0
        self._reported_at = 0.0
        self._lock = threading.Lock()
        self._sched = ReplicaScheduler()
        self._actors: dict[str, Any] = {}
        self._dead: set[str] = set()
        self._waiters: deque = deque()
        self._known = False
        self._missing = False
        self.max_queued = -1

    # ---- updates from the controller -------------------------------------------------
    def on_table(self, table: dict | None) -> None:
        with self._lock:
            self._known = True
            self._missing = table is None or not table.get("exists")
            replicas = [] if self._missing else table["replicas"]
            listed = {rid for rid, _ in replicas}
            self._dead &= listed  # the controller has caught up with these deaths
            self._actors = {rid: actor for rid, actor in replicas if rid not in self._dead}
            self._sched.update(list(self._actors), table["max_ongoing"] if not self._missing else 1)
            self.max_queued = -1 if self._missing else table["max_queued"]
            self.lost = {} if self._missing else table.get("lost", {})
            waiters, self._waiters = self._waiters, deque()
        for w in waiters:
            _wake(w)

    @property
    def max_ongoing(self) -> int:
        return self._sched.max_ongoing

    # ---- routing -------------------------------------------------------------------
    def try_assign(self, model_id: str = "") -> tuple[str, Any] | None:
        with self._lock:
            rid = self._sched.choose(model_id)
            return None if rid is None else (rid, self._actors[rid])

    async def assign(self, model_id: str = "", timeout_s: float | None = None) -> tuple[str, Any]:
        """A replica for a request from the running event loop, waiting while all are full."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        queued = False
        try:
            while True:
                with self._lock:
                    rid = self._sched.choose(model_id)
                    if rid is not None:
                        return rid, self._actors[rid]
                    if self._known and self._missing:
                        raise DeploymentUnavailableError(
                            f"Deployment {self.deployment!r} of application {self.app!r} does not exist."
                        )
                    if not queued:
                        if self._known and 0 <= self.max_queued <= self._queued:
                            raise BackPressureError(self._queued, self.max_queued, self.deployment)
                        queued = True
                        self._queued += 1
                    fut = loop.create_future()
                    waiter = (loop, fut)
                    self._waiters.append(waiter)
                self._report_queue()
                try:
                    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                    await asyncio.wait_for(fut, remaining)
                except asyncio.TimeoutError:
                    raise TimeoutError(f"No replica of {self.deployment!r} was free within {timeout_s}s.") from None
                finally:
                    with self._lock:
                        try:
                            self._waiters.remove(waiter)
                        except ValueError:
                            pass
        finally:
            if queued:
                with self._lock:
                    self._queued -= 1
                self._report_queue()

    def _report_queue(self) -> None:
        """Tell the controller how many requests wait here (autoscaling counts them too):
        at once when the queue starts or empties, else at most twice a second."""
        if self._report is None:
            return
        now = time.monotonic()
        with self._lock:
            n = self._queued
            if n == self._reported or (n and self._reported and now - self._reported_at < 0.5):
                return
            self._reported, self._reported_at = n, now
        try:
            self._report(self.id, n)
        except Exception:  # noqa: BLE001 - metrics are best effort
            pass

    def release(self, rid: str) -> None:
        with self._lock:
            self._sched.release(rid)
            waiter = self._waiters.popleft() if self._waiters else None
        if waiter is not None:
            _wake(waiter)

    def mark_dead(self, rid: str) -> None:
        """A call found the replica dead: route around it until the controller replaces it."""
        with self._lock:
            self._dead.add(rid)
            self._actors.pop(rid, None)
            self._sched.remove(rid)

    async def why_lost(self, rid: str, wait_s: float = 1.0) -> str:
        """Why replica ``rid`` is gone, once the controller says (it may lag the failure)."""
        deadline = time.monotonic() + wait_s
        while rid not in self.lost and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.lost.get(rid, "died")

    def num_queued(self) -> int:
        return self._queued


def _wake(waiter: tuple) -> None:
    loop, fut = waiter
    try:
        loop.call_soon_threadsafe(_resolve, fut)
    except RuntimeError:  # its loop is closed
        pass


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
