"""``ObjectRef``: a handle to a value in the cluster, counted by its owner."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

from solray._private import ids
from solray._private.serialization.serializer import record_contained_ref
from solray._private.worker import state


class ObjectRef:
    """A reference to an object. Hashable, picklable, and awaitable.

    While any ``ObjectRef`` to an object exists anywhere in the cluster, the object's
    owner keeps it alive; passing a ref inside a value makes the receiver a borrower.
    """

    __slots__ = ("_id", "_owner", "_worker", "__weakref__")

    def __init__(self, oid: bytes, owner: str = "", *, _worker=None, _add_ref: bool = True):
        self._id = oid
        self._owner = owner
        self._worker = _worker if _worker is not None else state.get_core_worker(required=False)
        if _add_ref and self._worker is not None:
            self._worker.refs.add_local(oid, owner)

    def __del__(self):
        w = self._worker
        if w is not None:
            try:
                w.refs.remove_local(self._id)
            except Exception:  # interpreter shutdown
                pass

    # ---- identity ---------------------------------------------------------------------
    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def task_id(self) -> bytes:
        return ids.task_id_of(self._id)

    def owner_address(self) -> str:
        return self._owner

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def __reduce__(self):
        record_contained_ref(self)
        return (_rebuild_ref, (self._id, self._owner))

    # ---- waiting ----------------------------------------------------------------------
    def __await__(self):
        return self._worker_or_current().get_async(self).__await__()

    def future(self) -> concurrent.futures.Future:
        """A ``concurrent.futures.Future`` that resolves to the object's value."""
        return self._worker_or_current().get_future(self)

    def as_future(self) -> asyncio.Future:
        return asyncio.ensure_future(self.__await__())

    def _worker_or_current(self):
        return self._worker or state.get_core_worker()


def _rebuild_ref(oid: bytes, owner: str) -> ObjectRef:
    return ObjectRef(oid, owner)


class ObjectRefGenerator:
    """Iterator over the refs a ``num_returns="streaming"`` task yields, as they arrive."""

    def __init__(self, task_id: bytes, worker: Any):
        self._task_id = task_id
        self._worker = worker
        self._index = 0
        # Keeps the task's completion object alive for completed() and cancel().
        self._completion = worker.stream_completion_ref(task_id)

    def __del__(self):
        try:
            self._worker.drop_stream(self._task_id)
        except Exception:  # interpreter shutdown
            pass

    def __iter__(self):
        return self

    def __next__(self) -> ObjectRef:
        ref = self._worker.next_stream_ref(self._task_id, self._index, timeout=None)
        if ref is None:
            raise StopIteration
        self._index += 1
        return ref

    def __aiter__(self):
        return self

    async def __anext__(self) -> ObjectRef:
        ref = await self._worker.next_stream_ref_async(self._task_id, self._index)
        if ref is None:
            raise StopAsyncIteration
        self._index += 1
        return ref

    def _next_sync(self, timeout_s: float | None = None) -> ObjectRef:
        """Ray's name: next ref, or raise StopIteration; GetTimeoutError on timeout."""
        return next(self) if timeout_s is None else self._next_with_timeout(timeout_s)

    def _next_with_timeout(self, timeout_s: float) -> ObjectRef:
        ref = self._worker.next_stream_ref(self._task_id, self._index, timeout=timeout_s)
        if ref is None:
            raise StopIteration
        self._index += 1
        return ref

    def completed(self) -> ObjectRef:
        """A ref that is ready when the generator task has finished."""
        return self._completion

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._task_id.hex()})"


class DynamicObjectRefGenerator:
    """The value of a ``num_returns="dynamic"`` task's ref: the refs it yielded."""

    def __init__(self, refs: list[ObjectRef]):
        self._refs = refs

    def __iter__(self):
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"
