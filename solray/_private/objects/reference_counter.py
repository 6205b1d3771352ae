"""Local reference counts of one process, and the hand-off of zero counts to the IO loop.

``ObjectRef`` objects are created and dropped on any thread (user code, GC); the count
changes under a lock and every count that reaches zero is batched into one callback on the
IO loop, which decides whether to free the object (owner) or release the borrow (borrower).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class ReferenceCounter:
    def __init__(self, on_zero: Callable[[list[bytes]], None], schedule: Callable[[Callable], None]):
        self._counts: dict[bytes, int] = {}
        self._owners: dict[bytes, str] = {}
        self._lock = threading.Lock()
        # Drops wait here until a lock holder applies them: ``ObjectRef.__del__`` can run inside
        # a critical section of this very thread (the garbage collector fires on any
        # allocation), where blocking on the lock would deadlock.
        self._dropped: deque[bytes] = deque()
        self._zeroed: list[bytes] = []
        self._flush_pending = False
        self._on_zero = on_zero
        self._schedule = schedule
        self.enabled = True

    def add_local(self, oid: bytes, owner: str) -> None:
        self._lock.acquire()
        try:
            c = self._counts.get(oid)
            if c is None:
                self._counts[oid] = 1
                self._owners[oid] = owner
            else:
                self._counts[oid] = c + 1
        finally:
            self._release()

    def remove_local(self, oid: bytes) -> None:
        # Queued before trying the lock: a holder that makes us fail applies it on release.
        self._dropped.append(oid)
        if self._lock.acquire(blocking=False):
            self._release()

    def _release(self) -> None:
        """Apply the queued drops, release the lock, and schedule a flush for new zeros."""
        while True:
            schedule = False
            while self._dropped:
                oid = self._dropped.popleft()
                c = self._counts.get(oid)
                if c is None:
                    continue
                if c > 1:
                    self._counts[oid] = c - 1
                    continue
                del self._counts[oid]
                self._owners.pop(oid, None)
                self._zeroed.append(oid)
                if not self._flush_pending:
                    self._flush_pending = schedule = True
            self._lock.release()
            if schedule and self.enabled:
                self._schedule(self._flush)
            # A drop queued after the loop above and before the release found the lock taken.
            if not self._dropped or not self._lock.acquire(blocking=False):
                return

    def _flush(self) -> None:
        self._lock.acquire()
        try:
            zeroed, self._zeroed = self._zeroed, []
            self._flush_pending = False
            zeroed = [oid for oid in zeroed if oid not in self._counts]
        finally:
            self._release()
        if zeroed:
            self._on_zero(zeroed)

    def count(self, oid: bytes) -> int:
        return self._counts.get(oid, 0)

    def has(self, oid: bytes) -> bool:
        return oid in self._counts

    def snapshot(self) -> dict[bytes, int]:
        self._lock.acquire()
        try:
            return dict(self._counts)
        finally:
            self._release()
