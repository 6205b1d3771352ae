"""``ActorPool``: spread work over a fixed set of actors, as ``ray.util.ActorPool`` does.

The pool is plain driver-side bookkeeping over the public API: it hands each value to an
idle actor through a user function ``fn(actor, value) -> ObjectRef``, remembers which actor
is busy with which ref, and returns the actor to the idle set once its result is consumed.
Values submitted while every actor is busy wait in a local FIFO until an actor frees up.

Results can be consumed in submission order (``get_next``/``map``) or in completion order
(``get_next_unordered``/``map_unordered``). Like Ray, an actor only becomes idle again when
its result is *fetched* by the caller, not when the remote call finishes; that is what makes
ordered consumption possible without buffering results in the pool.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import solray
from solray.exceptions import GetTimeoutError, RayError

V = TypeVar("V")

__all__ = ["ActorPool"]

_TIMEOUT_MSG = "Timed out waiting for result"


def _as_key(future: Any) -> Any:
    """Return a hashable key for what ``fn`` returned (a ref, or a list of refs)."""
    return tuple(future) if isinstance(future, list) else future


def _refs_of(future: Any) -> list:
    """Return the refs that must all be ready before ``future``'s result is ready."""
    return list(future) if isinstance(future, (list, tuple)) else [future]


class ActorPool:
    """Run work over a fixed pool of actors, mirroring ``ray.util.ActorPool``.

    Args:
        actors: actor handles to use; all start idle.

    Example::

        pool = ActorPool([Worker.remote(), Worker.remote()])
        list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3]))  # [2, 4, 6]
    """

    def __init__(self, actors: list) -> None:
        self._idle_actors: list = list(actors)
        # key(future) -> (submission index, actor that runs it)
        self._future_to_actor: dict[Any, tuple[int, Any]] = {}
        # submission index -> future, for in-order retrieval
        self._index_to_future: dict[int, Any] = {}
        self._next_task_index = 0
        self._next_return_index = 0
        # (fn, value) pairs waiting for an actor to become idle
        self._pending_submits: deque[tuple[Callable[[Any, Any], Any], Any]] = deque()

    # ------------------------------------------------------------------ mapping

    def map(self, fn: Callable[[Any, V], Any], values: Iterable[V]) -> Iterator[Any]:
        """Apply ``fn`` over ``values`` in parallel; iterate results in input order.

        Results still pending from earlier ``submit`` calls are discarded first, as Ray
        does, so the iterator yields exactly one result per value. All values are
        submitted now; the returned generator fetches their results as it is consumed
        (and must be consumed for the actors to be freed).
        """
        self._discard_pending_results()
        for value in values:
            self.submit(fn, value)

        def results() -> Iterator[Any]:
            while self.has_next():
                yield self.get_next()

        return results()

    def map_unordered(self, fn: Callable[[Any, V], Any], values: Iterable[V]) -> Iterator[Any]:
        """Like :meth:`map`, but yield results as they finish, in any order.

        Faster than ``map`` when some values take much longer than others, since a slow
        result does not hold back the ones behind it.
        """
        self._discard_pending_results()
        for value in values:
            self.submit(fn, value)

        def results() -> Iterator[Any]:
            while self.has_next():
                yield self.get_next_unordered()

        return results()

    def _discard_pending_results(self) -> None:
        """Drop unfetched results of earlier submissions so a new map starts clean."""
        while self.has_next():
            try:
                if self._next_return_index >= self._next_task_index:
                    # Ordered retrieval is impossible after unordered retrieval.
                    self.get_next_unordered(timeout=0, ignore_if_timedout=True)
                else:
                    self.get_next(timeout=0, ignore_if_timedout=True)
            except (TimeoutError, RayError):
                # Discarded anyway: a late or failed old result must not break the new map.
                pass

    # --------------------------------------------------------------- submission

    def submit(self, fn: Callable[[Any, V], Any], value: V) -> None:
        """Schedule ``fn(actor, value)`` on an idle actor, or queue it until one is idle.

        ``fn`` must return the ObjectRef (or list of ObjectRefs) of the remote call; the
        actor counts as busy until that result is fetched with ``get_next*``.
        """
        if self._idle_actors:
            actor = self._idle_actors.pop()
            future = fn(actor, value)
            self._future_to_actor[_as_key(future)] = (self._next_task_index, actor)
            self._index_to_future[self._next_task_index] = future
            self._next_task_index += 1
        else:
            self._pending_submits.append((fn, value))

    def has_next(self) -> bool:
        """Whether any submitted result has not been fetched yet."""
        return bool(self._future_to_actor)

    # ---------------------------------------------------------------- retrieval

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """Return the next result in submission order, waiting up to ``timeout`` seconds.

        Raises:
            StopIteration: nothing is pending.
            ValueError: called after :meth:`get_next_unordered` consumed results out of order.
            GetTimeoutError: (a ``TimeoutError``) the result was not ready in time. With
                ``ignore_if_timedout=True`` the late task is dropped first, so the next call
                moves on to the following result; otherwise it stays next in line.
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        future = self._index_to_future[self._next_return_index]
        timed_out = False
        refs = _refs_of(future)
        if timeout is not None and refs:
            ready, _ = solray.wait(refs, num_returns=len(refs), timeout=timeout)
            if len(ready) < len(refs):
                if not ignore_if_timedout:
                    raise GetTimeoutError(_TIMEOUT_MSG)
                timed_out = True
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(_as_key(future))
        self._return_actor(actor)
        if timed_out:
            raise GetTimeoutError(f"{_TIMEOUT_MSG}. The task {future} has been ignored.")
        return solray.get(future)

    def get_next_unordered(
        self, timeout: float | None = None, ignore_if_timedout: bool = False
    ) -> Any:
        """Return whichever pending result finishes first, waiting up to ``timeout`` seconds.

        Raises:
            StopIteration: nothing is pending.
            GetTimeoutError: (a ``TimeoutError``) no result was ready in time. With
                ``ignore_if_timedout=True`` the oldest pending task is dropped first.
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        key = self._first_ready_key(timeout)
        timed_out = key is None
        if timed_out:
            if not ignore_if_timedout:
                raise GetTimeoutError(_TIMEOUT_MSG)
            key = min(self._future_to_actor, key=lambda k: self._future_to_actor[k][0])
        index, actor = self._future_to_actor.pop(key)
        future = self._index_to_future.pop(index)
        self._next_return_index = max(self._next_return_index, index + 1)
        self._return_actor(actor)
        if timed_out:
            raise GetTimeoutError(f"{_TIMEOUT_MSG}. The task {future} has been ignored.")
        return solray.get(future)

    def _first_ready_key(self, timeout: float | None) -> Any:
        """Wait until some pending future is fully ready; return its key, or None on timeout.

        The common case (each future one ref) costs a single ``wait``. A future made of
        several refs is ready only once all of them are, so this keeps waiting for more
        refs until one future is complete; the deadline covers the whole loop.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        ready_refs: set = set()
        while True:
            for key in self._future_to_actor:  # submission order: oldest complete one wins
                if all(ref in ready_refs for ref in _refs_of(key)):
                    return key
            pending = [
                ref
                for key in self._future_to_actor
                for ref in _refs_of(key)
                if ref not in ready_refs
            ]
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = solray.wait(pending, num_returns=1, timeout=remaining)
            if not ready:
                return None
            ready_refs.update(ready)

    # ------------------------------------------------------------- idle actors

    def _return_actor(self, actor: Any) -> None:
        """Mark ``actor`` idle and hand it the oldest queued submission, if any."""
        self._idle_actors.append(actor)
        if self._pending_submits:
            fn, value = self._pending_submits.popleft()
            self.submit(fn, value)

    def has_free(self) -> bool:
        """Whether an actor is idle and no submission is waiting for one."""
        return len(self._idle_actors) > 0 and len(self._pending_submits) == 0

    def pop_idle(self) -> Any | None:
        """Remove and return an idle actor, or None if none is free.

        Lets callers shrink the pool (for example to kill an actor) without disturbing
        work in flight.
        """
        if self.has_free():
            return self._idle_actors.pop()
        return None

    def push(self, actor: Any) -> None:
        """Add ``actor`` to the pool as idle; it immediately takes queued work, if any.

        Raises:
            ValueError: the actor already belongs to this pool.
        """
        busy_actors = [a for _, a in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy_actors:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)
