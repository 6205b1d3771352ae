"""This process's user metrics (``solray.util.metrics``), sent to the control service in batches.

Metrics live for the process, not for one ``init()``: a module may create its counters at
import time, before the process joins a cluster, and record into them from any thread.
So there is one recorder per process. Recording updates a value under a lock; a timer on
the core worker's IO loop sends what changed at most every ``REPORT_INTERVAL_S``:
counters and histograms as what was added since the last report, gauges as their last
value. What is recorded outside a cluster waits for one (bounded by the number of series).
"""

from __future__ import annotations

import bisect
import os
import threading
from typing import Any


def _report_interval_s() -> float:
    if "SOLRAY_METRICS_REPORT_INTERVAL_S" in os.environ:
        return float(os.environ["SOLRAY_METRICS_REPORT_INTERVAL_S"])
    if "RAY_metrics_report_interval_ms" in os.environ:
        return int(os.environ["RAY_metrics_report_interval_ms"]) / 1000
    return 0.5


REPORT_INTERVAL_S = _report_interval_s()
MAX_PENDING_SERIES = 10_000


class MetricsRecorder:
    def __init__(self):
        self._lock = threading.Lock()
        self._defs: dict[str, list] = {}  # name -> [type, description, boundaries]
        self._pending: dict[tuple, Any] = {}  # (name, tags) -> delta / last value / [buckets, sum, count]
        self._armed_on = None  # the core worker whose loop has a report scheduled

    def define(self, name: str, kind: str, description: str, boundaries: list[float] | None = None) -> None:
        with self._lock:
            self._defs.setdefault(name, [kind, description, list(boundaries) if boundaries else None])

    def record(self, name: str, kind: str, tags: dict[str, str], value: float) -> None:
        key = (name, tuple(sorted(tags.items())))
        with self._lock:
            cur = self._pending.get(key)
            if cur is None and len(self._pending) >= MAX_PENDING_SERIES:
                return
            if kind == "counter":
                self._pending[key] = (cur or 0.0) + value
            elif kind == "gauge":
                self._pending[key] = value
            else:
                boundaries = self._defs[name][2]
                if cur is None:
                    cur = self._pending[key] = [[0] * (len(boundaries) + 1), 0.0, 0]
                cur[0][bisect.bisect_left(boundaries, value)] += 1
                cur[1] += value
                cur[2] += 1
        self._arm()

    def _arm(self) -> None:
        from solray._private.worker import state

        worker = state.get_core_worker(required=False)
        if worker is None or self._armed_on is worker or worker.shutting_down:
            return
        self._armed_on = worker
        try:
            worker.loop.call_soon_threadsafe(worker.loop.call_later, REPORT_INTERVAL_S, self._report, worker)
        except RuntimeError:  # its loop already closed
            self._armed_on = None

    def take_batch(self) -> dict | None:
        with self._lock:
            if not self._pending:
                return None
            pending, self._pending = self._pending, {}
            names = {name for name, _ in pending}
            defs = {n: self._defs[n] for n in names}
        points = [[name, [list(t) for t in tags], value] for (name, tags), value in pending.items()]
        return {"defs": defs, "points": points}

    def _report(self, worker, final: bool = False) -> None:
        """On the IO loop: send what changed since the last report."""
        self._armed_on = None
        control = worker.control
        if control is None or control.closed or (worker.shutting_down and not final):
            return  # kept: sent by the next worker of this process, if any
        batch = self.take_batch()
        if batch is not None:
            control.notify("report_metrics", batch)

    def report_final(self, worker) -> None:
        """On the IO loop of a core worker that shuts down: send what is left."""
        self._report(worker, final=True)

    def flush(self) -> None:
        """Send now (from any thread of a process in a cluster)."""
        from solray._private.worker import state

        worker = state.get_core_worker(required=False)
        if worker is None:
            return
        if worker.in_loop_thread():
            self._report(worker)
        else:
            worker.loop.call_soon_threadsafe(self._report, worker)


RECORDER = MetricsRecorder()
