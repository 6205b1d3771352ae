"""Streaming generators (``num_returns="streaming"``): the owner's side.

Part of ``CoreWorker`` (a mixin: the state lives in ``CoreWorker.__init__``). Items arrive
as ``stream_item`` notifications while the task runs; ``ObjectRefGenerator`` asks for
the next ref, waiting until it exists or the stream ends."""

from __future__ import annotations

import asyncio
import threading
import time

from solray import exceptions
from solray._private import ids
from solray._private.objects.object_ref import ObjectRef, ObjectRefGenerator

# Object index of a generator's i-th item is i + 2: 0 marks completion, 1 is the main return.
STREAM_INDEX_BASE = 2


class StreamsMixin:
    """The owner's side of streaming generators (see the module doc)."""

    # ------------------------------------------------------------------ streaming generators
    def create_stream(self, task_id: bytes) -> ObjectRefGenerator:
        self._streams[task_id] = {"items": {}, "next": 0, "count": None, "cond": threading.Condition(), "waiters": []}
        return ObjectRefGenerator(task_id, self)

    def _h_stream_item(self, payload):
        task_id, index, value, contained = payload
        st = self._streams.get(task_id)
        oid = ids.object_id(task_id, index + STREAM_INDEX_BASE)
        pins = self.note_borrowed(contained)
        if value[0] is None:
            self.store.set_ready(oid, location=value[1], contained=pins, create_owned=True)
        else:
            self.store.set_ready(oid, inline=value, contained=pins, create_owned=True)
        if st is None:
            if task_id in self._dropped_streams:
                self._maybe_free(oid)  # its generator is gone: nobody can read it
            else:  # a num_returns="dynamic" task: its final value will hold the refs
                self._unclaimed_items.setdefault(task_id, []).append(oid)
            return
        ref = ObjectRef(oid, self.address, _worker=self)
        with st["cond"]:
            st["items"][index] = ref
            st["next"] = max(st["next"], index + 1)
            st["cond"].notify_all()
        self._wake_stream_waiters(st)

    def drop_stream(self, task_id: bytes) -> None:
        """The stream's generator was garbage-collected (any thread)."""
        if task_id in self._streams and not self.shutting_down:
            self.schedule(lambda: self._drop_stream(task_id))

    def _drop_stream(self, task_id: bytes) -> None:
        st = self._streams.pop(task_id, None)  # its unread refs go with it
        if st is not None and st["count"] is None:
            self._dropped_streams.add(task_id)

    def end_stream(self, task_id: bytes, count: int) -> None:
        self._end_stream(task_id, count=count)

    def _end_stream(self, task_id: bytes, count: int | None = None, error_inline: list | None = None) -> None:
        st = self._streams.get(task_id)
        if st is None:
            return
        with st["cond"]:
            if error_inline is not None:
                index = st["next"]
                oid = ids.object_id(task_id, index + STREAM_INDEX_BASE)
                ref = ObjectRef(oid, self.address, _worker=self)
                self.store.set_ready(oid, inline=error_inline, is_error=True, create_owned=True)
                st["items"][index] = ref
                count = index + 1
            st["count"] = count if count is not None else st["next"]
            st["cond"].notify_all()
        self._wake_stream_waiters(st)

    def _wake_stream_waiters(self, st: dict) -> None:
        waiters, st["waiters"] = st["waiters"], []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(lambda f=fut: f.done() or f.set_result(None))

    def next_stream_ref(self, task_id: bytes, index: int, timeout: float | None) -> ObjectRef | None:
        st = self._streams.get(task_id)
        if st is None:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._blocked():
            with st["cond"]:
                while True:
                    ended, ref = self._take_item(st, task_id, index)
                    if ended or ref is not None:
                        return ref
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise exceptions.GetTimeoutError("timed out waiting for the next generator item")
                    st["cond"].wait(remaining if remaining is not None else 1.0)

    async def next_stream_ref_async(self, task_id: bytes, index: int) -> ObjectRef | None:
        st = self._streams.get(task_id)
        if st is None:
            return None
        loop = asyncio.get_running_loop()
        while True:
            with st["cond"]:
                ended, ref = self._take_item(st, task_id, index)
                if ended or ref is not None:
                    return ref
                fut = loop.create_future()
                st["waiters"].append((loop, fut))
            await fut

    def _take_item(self, st: dict, task_id: bytes, index: int) -> tuple[bool, ObjectRef | None]:
        """(the stream ended before ``index``, the ref of item ``index`` if it arrived);
        the caller holds ``st["cond"]``."""
        ref = st["items"].pop(index, None)
        if ref is None and st["count"] is not None and index >= st["count"]:
            self._streams.pop(task_id, None)
            return True, None
        return False, ref

    def stream_completion_ref(self, task_id: bytes) -> ObjectRef:
        return ObjectRef(ids.object_id(task_id, 0), self.address, _worker=self)
