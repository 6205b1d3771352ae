"""A FIFO queue shared between tasks and actors, as ``ray.util.queue`` provides.

The items live in one async actor (``_QueueActor``) that wraps an ``asyncio.Queue``; a
:class:`Queue` object is only a thin client holding that actor's handle, so it pickles
into tasks and actors and every copy talks to the same queue. The actor is async so a
``get`` that waits for an item does not stop a concurrent ``put`` from delivering one.

Timeouts and "would block" cases are reported by the actor as return values, not remote
exceptions, and the client raises :class:`Empty` / :class:`Full` locally: the caller gets
a plain ``Empty``/``Full`` (not a wrapped task error) and no traceback crosses the wire on
the normal "queue is empty" path.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterable
from typing import Any

import solray
from solray.exceptions import RayActorError

__all__ = ["Empty", "Full", "Queue"]


class Empty(queue.Empty):
    """Raised by a non-blocking get on an empty queue, or a blocking get that timed out."""


class Full(queue.Full):
    """Raised by a non-blocking put on a full queue, or a blocking put that timed out."""


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class Queue:
    """A first-in, first-out queue usable from any task or actor.

    Behaves like ``asyncio.Queue``/``queue.Queue``: ``put`` and ``get`` can block (with an
    optional timeout) or fail fast, and batch variants move many items in one round trip.

    Args:
        maxsize: most items the queue holds; 0 (default) means unbounded.
        actor_options: options passed to ``.options(...)`` of the backing actor, e.g.
            ``{"num_cpus": 1}`` or custom resources.

    Example::

        q = Queue(maxsize=10)
        q.put(1)
        q.get()  # 1
    """

    def __init__(self, maxsize: int = 0, actor_options: dict | None = None) -> None:
        actor_options = actor_options or {}
        self.maxsize = maxsize
        self.actor = solray.remote(_QueueActor).options(**actor_options).remote(self.maxsize)

    def __len__(self) -> int:
        return self.size()

    # ------------------------------------------------------------------ size

    def size(self) -> int:
        """The number of items in the queue (a snapshot; other clients may change it)."""
        return solray.get(self.actor.qsize.remote())

    def qsize(self) -> int:
        """The number of items in the queue (same as :meth:`size`)."""
        return self.size()

    def empty(self) -> bool:
        """Whether the queue is empty (a snapshot)."""
        return solray.get(self.actor.empty.remote())

    def full(self) -> bool:
        """Whether the queue is full (a snapshot; never true when maxsize is 0)."""
        return solray.get(self.actor.full.remote())

    # ------------------------------------------------------------------- put

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item`` to the queue.

        With ``block=True`` waits until there is room, for at most ``timeout`` seconds
        (forever if None). With several producers on a full queue, the order in which
        their items land is not defined.

        Raises:
            Full: the queue is full and ``block`` is False, or the timeout passed.
            ValueError: ``timeout`` is negative.
        """
        if not block:
            if not solray.get(self.actor.put_nowait.remote(item)):
                raise Full
            return
        _check_timeout(timeout)
        if not solray.get(self.actor.put.remote(item, timeout)):
            raise Full

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Async version of :meth:`put`, for use inside coroutines and async actors."""
        if not block:
            if not await self.actor.put_nowait.remote(item):
                raise Full
            return
        _check_timeout(timeout)
        if not await self.actor.put.remote(item, timeout):
            raise Full

    def put_nowait(self, item: Any) -> None:
        """Same as ``put(item, block=False)``."""
        self.put(item, block=False)

    def put_nowait_batch(self, items: Iterable) -> None:
        """Add all ``items`` in order in one round trip, or none of them.

        Raises:
            Full: the items do not all fit in the queue.
            TypeError: ``items`` is not iterable.
        """
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        error = solray.get(self.actor.put_nowait_batch.remote(list(items)))
        if error is not None:
            raise Full(error)

    # ------------------------------------------------------------------- get

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the oldest item.

        With ``block=True`` waits for an item, for at most ``timeout`` seconds (forever
        if None).

        Raises:
            Empty: the queue is empty and ``block`` is False, or the timeout passed.
            ValueError: ``timeout`` is negative.
        """
        if not block:
            ok, item = solray.get(self.actor.get_nowait.remote())
        else:
            _check_timeout(timeout)
            ok, item = solray.get(self.actor.get.remote(timeout))
        if not ok:
            raise Empty
        return item

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """Async version of :meth:`get`, for use inside coroutines and async actors."""
        if not block:
            ok, item = await self.actor.get_nowait.remote()
        else:
            _check_timeout(timeout)
            ok, item = await self.actor.get.remote(timeout)
        if not ok:
            raise Empty
        return item

    def get_nowait(self) -> Any:
        """Same as ``get(block=False)``."""
        return self.get(block=False)

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        """Remove and return exactly ``num_items`` items, oldest first, in one round trip.

        Raises:
            Empty: fewer than ``num_items`` items are in the queue (none are removed).
            TypeError: ``num_items`` is not an int.
            ValueError: ``num_items`` is negative.
        """
        if not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        ok, result = solray.get(self.actor.get_nowait_batch.remote(num_items))
        if not ok:
            raise Empty(result)
        return result

    # -------------------------------------------------------------- shutdown

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """Terminate the backing actor and release its resources.

        Args:
            force: kill the actor at once, failing calls in flight.
            grace_period_s: without ``force``, how long to let the actor finish the calls
                it already received and exit on its own before killing it.
        """
        actor = self.actor
        self.actor = None
        if actor is None:
            return
        if force:
            solray.kill(actor, no_restart=True)
            return
        done_ref = actor.exit_gracefully.remote()
        done, _ = solray.wait([done_ref], timeout=grace_period_s)
        if done:
            try:
                solray.get(done_ref)
            except RayActorError:
                return  # it exited, as asked
            except Exception:  # any other outcome means it is still alive
                pass
        solray.kill(actor, no_restart=True)


class _QueueActor:
    """Holds the items; runs as an async actor so blocked gets and puts interleave."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)

    def qsize(self) -> int:
        return self.queue.qsize()

    def empty(self) -> bool:
        return self.queue.empty()

    def full(self) -> bool:
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None = None) -> bool:
        """Return False if no room appeared within ``timeout``."""
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def get(self, timeout: float | None = None) -> tuple[bool, Any]:
        """Return ``(False, None)`` if no item arrived within ``timeout``."""
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return False, None
        return True, item

    def put_nowait(self, item: Any) -> bool:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    def put_nowait_batch(self, items: list) -> str | None:
        """Put all items or none; return the reason they did not fit, or None."""
        if self.maxsize > 0 and len(items) + self.qsize() > self.maxsize:
            return (
                f"Cannot add {len(items)} items to queue of size {self.qsize()} "
                f"and maxsize {self.maxsize}."
            )
        for item in items:
            self.queue.put_nowait(item)
        return None

    def get_nowait(self) -> tuple[bool, Any]:
        try:
            return True, self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return False, None

    def get_nowait_batch(self, num_items: int) -> tuple[bool, Any]:
        """Return ``(True, items)``, or ``(False, reason)`` if too few items are queued."""
        if num_items > self.qsize():
            return False, f"Cannot get {num_items} items from queue of size {self.qsize()}."
        return True, [self.queue.get_nowait() for _ in range(num_items)]

    async def exit_gracefully(self) -> None:
        """Exit the actor process once this call runs (``Queue.shutdown`` without force)."""
        from solray.actor import exit_actor

        exit_actor()
