"""Async actors: ``async def`` methods share one event loop and run concurrently."""

from __future__ import annotations

import asyncio

import pytest
from helpers import wait_for

import solray
from solray.exceptions import ActorDiedError, TaskCancelledError


class EventState:
    """A plain base class; the actor classes below are built on it."""

    def __init__(self):
        self.event = asyncio.Event()
        self.waiting = 0
        self.max_waiting = 0
        self.started: list = []

    async def wait(self, tag=None):
        self.started.append(tag)
        self.waiting += 1
        self.max_waiting = max(self.max_waiting, self.waiting)
        try:
            await asyncio.wait_for(self.event.wait(), timeout=30)
        finally:
            self.waiting -= 1
        return tag

    async def set(self):
        self.event.set()
        return self.waiting

    async def stats(self):
        return self.waiting, self.max_waiting

    async def get_started(self):
        return self.started

    def sync_method(self):
        return "sync in an async actor"

    async def actor_id(self):
        return solray.get_runtime_context().get_actor_id()

    async def fail(self):
        await asyncio.sleep(0)
        raise ValueError("async failure")


EventActor = solray.remote(EventState)


def test_async_methods_run_concurrently(ray_shared):
    a = EventActor.remote()
    waiters = [a.wait.remote(i) for i in range(3)]
    # The fourth call releases the three that are already waiting.
    assert solray.get(a.set.remote()) == 3
    assert solray.get(waiters) == [0, 1, 2]


def test_many_concurrent_calls(ray_shared):
    a = EventActor.remote()
    waiters = [a.wait.remote(i) for i in range(200)]
    wait_for(lambda: solray.get(a.stats.remote())[0] == 200, what="200 waiting calls")
    solray.get(a.set.remote())
    assert solray.get(waiters) == list(range(200))


def test_async_calls_start_in_submission_order(ray_shared):
    a = EventActor.remote()
    waiters = [a.wait.remote(i) for i in range(50)]
    solray.get(a.set.remote())
    solray.get(waiters)
    assert solray.get(a.get_started.remote()) == list(range(50))


def test_max_concurrency_limits_an_async_actor(ray_shared):
    @solray.remote(max_concurrency=2, concurrency_groups={"ctl": 1})
    class Limited(EventState):
        @solray.method(concurrency_group="ctl")
        async def ctl_stats(self):
            return self.waiting, self.max_waiting

        @solray.method(concurrency_group="ctl")
        async def ctl_set(self):
            self.event.set()

    a = Limited.remote()
    waiters = [a.wait.remote(i) for i in range(5)]
    wait_for(lambda: solray.get(a.ctl_stats.remote())[0] == 2, what="two calls running")
    solray.get(a.ctl_set.remote())
    assert solray.get(waiters) == list(range(5))
    assert solray.get(a.ctl_stats.remote()) == (0, 2)


def test_async_concurrency_group_with_options(ray_shared):
    @solray.remote(max_concurrency=1, concurrency_groups={"io": 1})
    class OneSlot(EventState):
        pass

    a = OneSlot.remote()
    held = a.wait.remote("held")  # takes the default group's only slot
    wait_for(lambda: solray.get(a.stats.options(concurrency_group="io").remote())[0] == 1, what="wait running")
    solray.get(a.set.options(concurrency_group="io").remote())
    assert solray.get(held) == "held"


def test_await_object_refs_inside_an_async_method(ray_shared):
    @solray.remote
    def double(x):
        return 2 * x

    @solray.remote
    class Awaiter:
        async def run(self, other):
            a = await double.remote(21)
            b = await other.set.remote()
            return a, b

    e = EventActor.remote()
    assert solray.get(Awaiter.remote().run.remote(e)) == (42, 0)


def test_inheriting_from_an_actor_class_is_rejected():
    with pytest.raises(TypeError, match="Inheriting from actor class"):

        class Sub(EventActor):  # noqa: F841
            pass


def test_sync_method_in_an_async_actor(ray_shared):
    a = EventActor.remote()
    assert solray.get(a.sync_method.remote()) == "sync in an async actor"


def test_async_method_error_raises_original_type(ray_shared):
    a = EventActor.remote()
    with pytest.raises(ValueError, match="async failure"):
        solray.get(a.fail.remote())
    assert solray.get(a.set.remote()) == 0


def test_runtime_context_in_an_async_method(ray_shared):
    a = EventActor.remote()
    assert solray.get(a.actor_id.remote()) == a._actor_id.hex()


def test_async_actor_from_a_driver_asyncio_loop(ray_shared):
    a = EventActor.remote()

    async def main():
        waiters = [a.wait.remote(i) for i in range(3)]
        await a.set.remote()
        return await asyncio.gather(*waiters)

    assert asyncio.run(main()) == [0, 1, 2]


def test_cancel_a_waiting_async_call(ray_shared):
    a = EventActor.remote()
    ref = a.wait.remote("cancelled")
    wait_for(lambda: solray.get(a.stats.remote())[0] == 1, what="the call to start")
    solray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        solray.get(ref)
    # The actor keeps working.
    assert solray.get(a.stats.remote())[0] == 0


def test_async_generator_method_streams(ray_shared):
    @solray.remote
    class Gen:
        async def count(self, n):
            for i in range(n):
                await asyncio.sleep(0)
                yield i

    g = Gen.remote()
    refs = list(g.count.options(num_returns="streaming").remote(4))
    assert solray.get(refs) == [0, 1, 2, 3]


def test_exit_actor_in_an_async_actor(ray_shared):
    @solray.remote
    class Quitter:
        async def quit(self):
            solray.actor.exit_actor()

        async def ping(self):
            return "pong"

    q = Quitter.remote()
    assert solray.get(q.ping.remote()) == "pong"
    with pytest.raises(ActorDiedError):
        solray.get(q.quit.remote())
    with pytest.raises(ActorDiedError):
        solray.get(q.ping.remote())


def test_exit_lets_running_async_calls_finish(ray_shared):
    @solray.remote
    class Finisher(EventState):
        async def quit(self):
            solray.actor.exit_actor()

    f = Finisher.remote()
    waiter = f.wait.remote("finished")
    wait_for(lambda: solray.get(f.stats.remote())[0] == 1, what="the waiter to start")
    setter_first = f.set.remote()
    assert solray.get(setter_first) == 1
    with pytest.raises(ActorDiedError):
        solray.get(f.quit.remote())
    assert solray.get(waiter) == "finished"


def test_each_concurrent_call_sees_its_own_task_id(ray_shared):
    @solray.remote
    class TaskIds:
        def __init__(self):
            self.event = asyncio.Event()

        async def task_id(self, first):
            before = solray.get_runtime_context().get_task_id()
            if first:
                await self.event.wait()  # the second call runs meanwhile
            else:
                self.event.set()
            await asyncio.sleep(0)
            return before, solray.get_runtime_context().get_task_id()

    t = TaskIds.remote()
    first, second = t.task_id.remote(True), t.task_id.remote(False)
    assert solray.get(first) == (first.task_id().hex(),) * 2
    assert solray.get(second) == (second.task_id().hex(),) * 2
