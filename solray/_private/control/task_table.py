"""The control service's table of recent tasks, built from the owners' task events.

Sans-IO: events in (``apply``), records out (``records``). It keeps the newest
``max_tasks`` tasks (Ray keeps a bounded number too, ``RAY_task_events_max_num_task_in_gcs``);
the oldest are evicted first and counted in ``dropped`` so the state API can say the
list is truncated. A record is a plain dict with the owner's fields:

    task_id, attempt, state, name, func, type, job, owner, actor, parent, res, pg,
    node, worker, pid, error_type, error_message, events [[state, unix_time], ...]
"""

from __future__ import annotations

import itertools
import os
import time
from collections import OrderedDict
from typing import Any

DEFAULT_MAX_TASKS = int(os.environ.get("SOLRAY_TASK_EVENTS_MAX_NUM_TASKS", os.environ.get("RAY_task_events_max_num_task_in_gcs", 10_000)))
TERMINAL = frozenset({"FINISHED", "FAILED"})
# How far a task has come: a late event of an earlier state (a retry's events arrive in
# order, but an attempt's RUNNING may follow another attempt's FAILED) never rolls it back.
_RANK = {"PENDING_ARGS_AVAIL": 0, "PENDING_NODE_ASSIGNMENT": 1, "SUBMITTED_TO_WORKER": 2, "RUNNING": 3, "FINISHED": 4, "FAILED": 4}
MAX_EVENTS_PER_TASK = 32


class TaskTable:
    def __init__(self, max_tasks: int = DEFAULT_MAX_TASKS):
        self.max_tasks = max(1, max_tasks)
        self.tasks: OrderedDict[bytes, dict] = OrderedDict()
        self.dropped = 0

    def apply(self, events: list) -> None:
        for task_id, attempt, state, ts, extra in events:
            rec = self.tasks.get(task_id)
            if rec is None:
                rec = self.tasks[task_id] = {"task_id": task_id, "attempt": attempt, "state": state, "events": []}
                if len(self.tasks) > self.max_tasks:
                    self.tasks.popitem(last=False)
                    self.dropped += 1
            if extra:
                rec.update(extra)
            if attempt > rec["attempt"]:
                # A retry: the new attempt starts over (the old one failed).
                rec["attempt"] = attempt
                rec["state"] = state
                rec.pop("error_type", None)
                rec.pop("error_message", None)
            elif attempt == rec["attempt"] and _RANK.get(state, 0) >= _RANK.get(rec["state"], 0):
                rec["state"] = state
            if state == "PENDING_ARGS_AVAIL":
                rec.setdefault("creation_time", ts)
            elif state == "RUNNING":
                rec["start_time"] = ts
                rec.pop("end_time", None)
            elif state in TERMINAL:
                rec["end_time"] = ts
            if len(rec["events"]) < MAX_EVENTS_PER_TASK:
                rec["events"].append([state, ts])

    def on_job_finished(self, job_id: int, now: float | None = None) -> None:
        """The job's driver exited: what it still had running will never report back."""
        now = now or time.time()
        for rec in self.tasks.values():
            if rec.get("job") == job_id and rec["state"] not in TERMINAL:
                rec["state"] = "FAILED"
                rec["end_time"] = now
                rec["error_type"] = "WORKER_DIED"
                rec["error_message"] = "The task's job (driver) exited before the task finished."
                rec["events"].append(["FAILED", now])

    def records(self) -> list[dict]:
        return list(self.tasks.values())

    def newest(self, n: int) -> list[dict]:
        """The ``n`` most recently added tasks, newest first."""
        return list(itertools.islice(reversed(self.tasks.values()), max(0, n)))

    def counts_by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for rec in self.tasks.values():
            out[rec["state"]] = out.get(rec["state"], 0) + 1
        return out

    def get(self, task_id: bytes) -> dict | None:
        return self.tasks.get(task_id)

    def stats(self) -> dict[str, Any]:
        return {"total": len(self.tasks) + self.dropped, "stored": len(self.tasks), "dropped": self.dropped}
