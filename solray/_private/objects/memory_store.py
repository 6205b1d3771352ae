"""The owner's table of objects: state, where the value is, who borrows it, who waits.

Entries are touched by the user thread (``put``, ``get``) and the IO loop (task replies),
so every state change and waiter registration happens under one lock. A value is either
inline (``[meta, data, buffers]`` as it came over the wire) or a location in shared memory
(``[node_id, path, size]``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Entry:
    __slots__ = (
        "ready",
        "inline",
        "location",
        "is_error",
        "contained",
        "borrowers",
        "callbacks",
        "owned",
        "mapped",
        "fetching",
    )

    def __init__(self, owned: bool):
        self.ready = False
        self.inline: list | None = None
        self.location: list | None = None
        self.is_error = False
        self.contained: list = []  # ObjectRefs the value holds: kept alive with it
        self.borrowers: dict[str, int] = {}  # borrower address -> deliveries not yet released
        self.callbacks: list[Callable[[Entry], None]] = []
        self.owned = owned
        self.mapped = None  # cached shared-memory mapping: (meta, data, buffers)
        self.fetching = False


class MemoryStore:
    def __init__(self):
        self.entries: dict[bytes, Entry] = {}
        self.lock = threading.Lock()
        # Bumped and signalled whenever any object becomes ready (waiters rescan on wake-up).
        self.generation = 0
        self.ready_cond = threading.Condition(threading.Lock())

    def get(self, oid: bytes) -> Entry | None:
        return self.entries.get(oid)

    def create(self, oid: bytes, owned: bool) -> Entry:
        with self.lock:
            e = self.entries.get(oid)
            if e is None:
                e = self.entries[oid] = Entry(owned)
            return e

    def set_ready(
        self,
        oid: bytes,
        *,
        inline: list | None = None,
        location: list | None = None,
        is_error: bool = False,
        contained: list | None = None,
        create_owned: bool | None = None,
    ) -> Entry | None:
        """Mark an object ready and run its waiters. Returns None if nobody holds it."""
        with self.lock:
            e = self.entries.get(oid)
            if e is None:
                if create_owned is None:
                    return None
                e = self.entries[oid] = Entry(create_owned)
            e.inline = inline
            e.location = location
            e.is_error = is_error
            e.mapped = None
            if contained:
                e.contained = contained
            e.ready = True
            callbacks, e.callbacks = e.callbacks, []
        with self.ready_cond:
            self.generation += 1
            self.ready_cond.notify_all()
        for cb in callbacks:
            cb(e)
        return e

    def reset(self, oid: bytes) -> None:
        """Make a ready object pending again (its value is being rebuilt)."""
        with self.lock:
            e = self.entries.get(oid)
            if e is not None:
                e.ready = False
                e.inline = e.location = e.mapped = None

    def add_callback(self, oid: bytes, cb: Callable[[Entry], None]) -> bool:
        """Register ``cb`` for when ``oid`` is ready; False if it is ready already."""
        with self.lock:
            e = self.entries.get(oid)
            if e is None or e.ready:
                return False
            e.callbacks.append(cb)
            return True

    def remove_callback(self, oid: bytes, cb: Callable) -> None:
        with self.lock:
            e = self.entries.get(oid)
            if e is not None:
                try:
                    e.callbacks.remove(cb)
                except ValueError:
                    pass

    def pop(self, oid: bytes) -> Entry | None:
        with self.lock:
            return self.entries.pop(oid, None)
