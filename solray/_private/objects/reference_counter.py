"""Local reference counts of one process, and the hand-off of zero counts to the IO loop.

``ObjectRef`` objects are created and dropped on any thread (user code, GC); the count
changes under a lock and every count that reaches zero is batched into one callback on the
IO loop, which decides whether to free the object (owner) or release the borrow (borrower).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class ReferenceCounter:
    def __init__(self, on_zero: Callable[[list[bytes]], None], schedule: Callable[[Callable], None]):
        self._counts: dict[bytes, int] = {}
        self._owners: dict[bytes, str] = {}
        self._lock = threading.Lock()
        self._zeroed: list[bytes] = []
        self._flush_pending = False
        self._on_zero = on_zero
        self._schedule = schedule
        self.enabled = True

    def add_local(self, oid: bytes, owner: str) -> None:
        with self._lock:
            c = self._counts.get(oid)
            if c is None:
                self._counts[oid] = 1
                self._owners[oid] = owner
            else:
                self._counts[oid] = c + 1

    def remove_local(self, oid: bytes) -> None:
        schedule = False
        with self._lock:
            c = self._counts.get(oid)
            if c is None:
                return
            if c > 1:
                self._counts[oid] = c - 1
                return
            del self._counts[oid]
            self._owners.pop(oid, None)
            self._zeroed.append(oid)
            if not self._flush_pending:
                self._flush_pending = schedule = True
        if schedule and self.enabled:
            self._schedule(self._flush)

    def _flush(self) -> None:
        with self._lock:
            zeroed, self._zeroed = self._zeroed, []
            self._flush_pending = False
            zeroed = [oid for oid in zeroed if oid not in self._counts]
        if zeroed:
            self._on_zero(zeroed)

    def count(self, oid: bytes) -> int:
        return self._counts.get(oid, 0)

    def has(self, oid: bytes) -> bool:
        return oid in self._counts

    def snapshot(self) -> dict[bytes, int]:
        with self._lock:
            return dict(self._counts)
