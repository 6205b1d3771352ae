"""Actors in real processes: creation, ordering, returns, threads, groups, names, handles."""

from __future__ import annotations

import gc
import os
import pickle
import sys
import threading

import psutil
import pytest
from helpers import Gate, wait_for

import solray
from solray._private.worker import state


@solray.remote
class Counter:
    def __init__(self, start: int = 0):
        self.value = start
        self.log: list = []

    def incr(self, by: int = 1) -> int:
        self.value += by
        return self.value

    def record(self, item) -> None:
        self.log.append(item)

    def get_log(self) -> list:
        return self.log

    def pid(self) -> int:
        return os.getpid()

    @solray.method(num_returns=2)
    def two(self):
        return self.value, self.value + 1

    def pair(self):
        return "a", "b"

    def nothing(self) -> None:
        return None

    def actor_id(self) -> str:
        return solray.get_runtime_context().get_actor_id()

    def fail(self):
        raise KeyError("no such key in the actor")


def process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ------------------------------------------------------------------ basics


def test_create_and_call_with_constructor_args(ray_shared):
    c = Counter.remote(10)
    assert solray.get(c.incr.remote()) == 11
    assert solray.get(c.incr.remote(by=5)) == 16


def test_actor_runs_in_its_own_process(ray_shared):
    a, b = Counter.remote(), Counter.remote()
    pids = solray.get([a.pid.remote(), b.pid.remote()])
    assert len(set(pids)) == 2
    assert os.getpid() not in pids


def test_calls_run_in_submission_order(ray_shared):
    c = Counter.remote()
    for i in range(300):
        c.record.remote(i)
    assert solray.get(c.get_log.remote()) == list(range(300))


def test_each_caller_keeps_its_own_order(ray_shared):
    @solray.remote
    def caller(counter, who, n):
        for i in range(n):
            counter.record.remote((who, i))
        return solray.get(counter.get_log.remote())

    c = Counter.remote()
    solray.get([caller.remote(c, who, 100) for who in range(3)])
    log = solray.get(c.get_log.remote())
    assert len(log) == 300
    for who in range(3):
        assert [i for w, i in log if w == who] == list(range(100))


def test_object_ref_arguments_keep_submission_order(ray_shared):
    """A call whose argument is not ready yet still runs before later calls."""

    @solray.remote
    def later(gate_address, value):
        from helpers import arrive_and_wait

        arrive_and_wait(gate_address)
        return value

    c = Counter.remote()
    with Gate() as gate:
        c.record.remote(later.remote(gate.address, "first"))
        c.record.remote("second")
        gate.wait_arrivals(1)
    assert solray.get(c.get_log.remote()) == ["first", "second"]


def test_method_num_returns_decorator(ray_shared):
    c = Counter.remote(3)
    r1, r2 = c.two.remote()
    assert solray.get([r1, r2]) == [3, 4]


def test_method_options_num_returns(ray_shared):
    c = Counter.remote()
    a, b = c.pair.options(num_returns=2).remote()
    assert solray.get([a, b]) == ["a", "b"]
    assert c.nothing.options(num_returns=0).remote() is None


def test_method_error_raises_original_type(ray_shared):
    c = Counter.remote()
    with pytest.raises(KeyError, match="no such key") as info:
        solray.get(c.fail.remote())
    assert isinstance(info.value, solray.exceptions.RayTaskError)
    # The actor survives a method's exception.
    assert solray.get(c.incr.remote()) == 1


def test_runtime_context_actor_id(ray_shared):
    c = Counter.remote()
    assert solray.get(c.actor_id.remote()) == c._actor_id.hex()
    assert solray.get_runtime_context().get_actor_id() is None


def test_ray_ready(ray_shared):
    assert solray.get(Counter.remote().__ray_ready__.remote()) is True


def test_calling_a_method_directly_raises(ray_shared):
    c = Counter.remote()
    with pytest.raises(TypeError, match=r"\.remote\(\)"):
        c.incr()


def test_instantiating_an_actor_class_directly_raises():
    with pytest.raises(TypeError, match=r"Counter\.remote\(\)"):
        Counter()


def test_unknown_method_raises_attribute_error(ray_shared):
    with pytest.raises(AttributeError, match="no_such_method"):
        Counter.remote().no_such_method  # noqa: B018


def test_method_with_a_leading_underscore(ray_shared):
    @solray.remote
    class Private:
        def _helper(self):
            return "private but callable"

    assert solray.get(Private.remote()._helper.remote()) == "private but callable"


def test_handle_equality_hash_and_pickle(ray_shared):
    c = Counter.remote()
    other = Counter.remote()
    copy = pickle.loads(pickle.dumps(c))
    assert copy == c and hash(copy) == hash(c)
    assert copy != other
    assert len({c, copy, other}) == 2
    assert solray.get(copy.incr.remote()) == 1
    assert solray.get(c.incr.remote()) == 2


# ------------------------------------------------------------------ handles in tasks and actors


def test_task_calls_a_method_on_a_handle_it_received(ray_shared):
    @solray.remote
    def bump(counter, n):
        return solray.get([counter.incr.remote() for _ in range(n)])[-1]

    c = Counter.remote()
    assert solray.get(bump.remote(c, 3)) == 3
    assert solray.get(c.incr.remote()) == 4


def test_handle_inside_a_container_argument(ray_shared):
    @solray.remote
    def bump_all(handles):
        return solray.get([h["c"].incr.remote() for h in handles])

    c = Counter.remote()
    assert solray.get(bump_all.remote([{"c": c}, {"c": c}])) == [1, 2]


def test_actor_calls_another_actor_and_a_task(ray_shared):
    @solray.remote
    def square(x):
        return x * x

    @solray.remote
    class Caller:
        def __init__(self, counter):
            self.counter = counter

        def go(self):
            v = solray.get(self.counter.incr.remote(5))
            return solray.get(square.remote(v))

    c = Counter.remote()
    caller = Caller.remote(c)
    assert solray.get(caller.go.remote()) == 25
    assert solray.get(c.incr.remote()) == 6


def test_actor_creates_an_actor(ray_shared):
    @solray.remote
    class Parent:
        def __init__(self):
            self.child = Counter.remote(100)

        def child_incr(self):
            return solray.get(self.child.incr.remote())

        def child_handle(self):
            return self.child

    p = Parent.remote()
    assert solray.get(p.child_incr.remote()) == 101
    child = solray.get(p.child_handle.remote())
    assert solray.get(child.incr.remote()) == 102


def test_handle_passed_back_and_forth_keeps_order(ray_shared):
    @solray.remote
    def record_many(counter, start):
        for i in range(start, start + 50):
            counter.record.remote(i)
        return solray.get(counter.get_log.remote())

    c = Counter.remote()
    log = solray.get(record_many.remote(c, 0))
    assert log == list(range(50))


# ------------------------------------------------------------------ threaded actors


def test_max_concurrency_runs_calls_in_parallel_threads(ray_shared):
    @solray.remote(max_concurrency=3)
    class Threaded:
        def __init__(self):
            self.barrier = threading.Barrier(3)

        def meet(self):
            # Returns only once three calls are inside at the same time.
            self.barrier.wait(timeout=30)
            return threading.get_ident()

    t = Threaded.remote()
    idents = solray.get([t.meet.remote() for _ in range(3)])
    assert len(set(idents)) == 3


class _Tracker:
    """Counts calls in flight; ``hold`` blocks until ``release`` (or a timeout)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        self.event = threading.Event()

    def hold(self):
        with self.lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        released = self.event.wait(timeout=30)
        with self.lock:
            self.inflight -= 1
        return released

    def release(self):
        self.event.set()

    def stats(self):
        with self.lock:
            return self.inflight, self.max_inflight


def test_sync_actor_runs_one_call_at_a_time(ray_shared):
    @solray.remote
    class Serial:
        def __init__(self):
            self.inflight = 0
            self.max_inflight = 0

        def work(self):
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            x = sum(range(10_000))
            self.inflight -= 1
            return x

        def max_seen(self):
            return self.max_inflight

    s = Serial.remote()
    solray.get([s.work.remote() for _ in range(20)])
    assert solray.get(s.max_seen.remote()) == 1


def test_concurrency_group_limits_and_isolates_calls(ray_shared):
    @solray.remote(concurrency_groups={"io": 2, "ctl": 1})
    class Grouped(_Tracker):
        @solray.method(concurrency_group="io")
        def io_hold(self):
            return self.hold()

        @solray.method(concurrency_group="ctl")
        def ctl_stats(self):
            return self.stats()

        @solray.method(concurrency_group="ctl")
        def ctl_release(self):
            self.release()

    g = Grouped.remote()
    refs = [g.io_hold.remote() for _ in range(4)]
    # Two io calls run at once; the control group is not blocked by them.
    wait_for(lambda: solray.get(g.ctl_stats.remote())[0] == 2, what="two io calls in flight")
    solray.get(g.ctl_release.remote())
    assert solray.get(refs) == [True] * 4
    assert solray.get(g.ctl_stats.remote()) == (0, 2)


def test_concurrency_group_chosen_with_options(ray_shared):
    @solray.remote(concurrency_groups={"io": 1})
    class Grouped(_Tracker):
        pass

    g = Grouped.remote()
    # ``hold`` occupies the default group (one thread); ``release`` in the io group frees it.
    held = g.hold.remote()
    wait_for(lambda: solray.get(g.stats.options(concurrency_group="io").remote())[0] == 1, what="hold running")
    g.release.options(concurrency_group="io").remote()
    assert solray.get(held) is True


def test_undefined_concurrency_group_is_rejected(ray_shared):
    @solray.remote(concurrency_groups={"io": 1})
    class Bad:
        @solray.method(concurrency_group="nope")
        def f(self):
            return 1

    with pytest.raises(ValueError, match="nope"):
        Bad.remote()


# ------------------------------------------------------------------ named actors


def test_named_actor_get_actor_and_get_if_exists(ray_shared):
    a = Counter.options(name="named-counter").remote()
    solray.get(a.incr.remote())
    assert solray.get_actor("named-counter") == a
    b = Counter.options(name="named-counter", get_if_exists=True).remote()
    assert b == a
    assert solray.get(b.incr.remote()) == 2
    with pytest.raises(ValueError, match="named-counter"):
        Counter.options(name="named-counter").remote()
    solray.kill(a)


def test_named_actor_namespaces(ray_shared):
    a = Counter.options(name="ns-counter", namespace="ns-one").remote(1)
    b = Counter.options(name="ns-counter", namespace="ns-two").remote(2)
    assert a != b
    assert solray.get(solray.get_actor("ns-counter", namespace="ns-one").incr.remote()) == 2
    assert solray.get(solray.get_actor("ns-counter", namespace="ns-two").incr.remote()) == 3
    with pytest.raises(ValueError, match="ns-counter"):
        solray.get_actor("ns-counter")  # not in the driver's own namespace
    solray.kill(a)
    solray.kill(b)


def test_get_actor_missing_raises_value_error(ray_shared):
    with pytest.raises(ValueError, match="no-such-actor"):
        solray.get_actor("no-such-actor")


def test_get_actor_from_a_task(ray_shared):
    @solray.remote
    def use_named():
        return solray.get(solray.get_actor("task-visible").incr.remote(10))

    a = Counter.options(name="task-visible").remote()
    assert solray.get(use_named.remote()) == 10
    assert solray.get(a.incr.remote()) == 11
    solray.kill(a)


def test_named_actor_name_is_free_after_kill(ray_shared):
    a = Counter.options(name="reusable").remote()
    solray.get(a.incr.remote())
    solray.kill(a)
    b = Counter.options(name="reusable").remote(7)
    assert solray.get(b.incr.remote()) == 8
    solray.kill(b)


def test_named_actor_survives_its_handle(ray_shared):
    Counter.options(name="handle-dropped").remote(5)
    gc.collect()
    assert solray.get(solray.get_actor("handle-dropped").incr.remote()) == 6
    solray.kill(solray.get_actor("handle-dropped"))


def test_detached_actor(ray_shared):
    a = Counter.options(name="detached-one", lifetime="detached").remote()
    pid = solray.get(a.pid.remote())
    del a
    gc.collect()
    h = solray.get_actor("detached-one")
    assert solray.get(h.pid.remote()) == pid
    solray.kill(h)
    wait_for(lambda: process_gone(pid), what="killed detached actor to exit")


# ------------------------------------------------------------------ handle scope


def test_actor_terminates_when_its_handle_goes_out_of_scope(ray_shared):
    c = Counter.remote()
    pid = solray.get(c.pid.remote())
    del c
    gc.collect()
    wait_for(lambda: process_gone(pid), what="actor process to exit")


def test_pending_calls_finish_before_scope_exit(ray_shared):
    c = Counter.remote()
    pid = solray.get(c.pid.remote())
    refs = [c.incr.remote() for _ in range(20)]
    del c
    gc.collect()
    assert solray.get(refs) == list(range(1, 21))
    wait_for(lambda: process_gone(pid), what="actor process to exit")


def test_borrowed_handle_keeps_the_actor_alive(ray_shared):
    @solray.remote
    class Holder:
        def __init__(self):
            self.held = None

        def hold(self, handles):
            self.held = handles[0]

        def use(self):
            return solray.get(self.held.incr.remote())

        def drop(self):
            self.held = None
            gc.collect()

    c = Counter.remote()
    pid = solray.get(c.pid.remote())
    holder = Holder.remote()
    solray.get(holder.hold.remote([c]))
    del c
    gc.collect()
    # The creator's handle is gone, but the holder's copy still works.
    assert solray.get(holder.use.remote()) == 1
    assert solray.get(holder.use.remote()) == 2
    assert not process_gone(pid)
    solray.get(holder.drop.remote())
    wait_for(lambda: process_gone(pid), what="actor process to exit once no handle remains")


def test_handle_inside_put_object_keeps_the_actor_alive(ray_shared):
    c = Counter.remote()
    pid = solray.get(c.pid.remote())
    ref = solray.put({"actor": c})
    del c
    gc.collect()
    assert solray.get(solray.get(ref)["actor"].incr.remote()) == 1
    del ref
    gc.collect()
    wait_for(lambda: process_gone(pid), what="actor process to exit once the object is freed")


# ------------------------------------------------------------------ other drivers


def _driver_env() -> dict:
    worker = state.get_core_worker()
    return dict(os.environ, SOLRAY_ADDRESS=worker.control_address, SOLRAY_TOKEN=worker.token)


def _run_driver(code: str, namespace: str | None = None) -> str:
    import subprocess
    import textwrap

    header = f"import os, solray\nsolray.init(namespace={namespace!r})\n"
    out = subprocess.run(
        [sys.executable, "-c", header + textwrap.dedent(code)],
        env=_driver_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_get_actor_from_another_driver_in_the_same_namespace(ray_shared):
    a = Counter.options(name="cross-driver", namespace="team").remote(40)
    out = _run_driver(
        """
        h = solray.get_actor("cross-driver")
        print("VALUE", solray.get(h.incr.remote(2)))
        """,
        namespace="team",
    )
    assert "VALUE 42" in out
    assert solray.get(a.incr.remote()) == 43
    solray.kill(a)


def test_driver_exit_kills_its_actors_but_not_detached_ones(ray_shared):
    out = _run_driver(
        """
        @solray.remote
        class Counter:
            def pid(self):
                return os.getpid()

        a = Counter.remote()
        b = Counter.options(name="kept", lifetime="detached").remote()
        print("PIDS", solray.get(a.pid.remote()), solray.get(b.pid.remote()))
        """,
        namespace="exit-test",
    )
    owned_pid, detached_pid = (int(x) for x in out.split("PIDS")[1].split())
    wait_for(lambda: process_gone(owned_pid), what="the exited driver's actor to exit")
    kept = solray.get_actor("kept", namespace="exit-test")
    assert solray.get(kept.pid.remote()) == detached_pid
    solray.kill(kept)


def test_print_in_actor_reaches_the_driver_with_a_prefix(ray_shared):
    out = _run_driver(
        """
        @solray.remote
        class Talker:
            def __init__(self):
                print("constructed")

            def say(self, text):
                print(text)
                return os.getpid()

        t = Talker.remote()
        pid = solray.get(t.say.remote("hello from the actor"))
        print("PID", pid)
        """
    )
    pid = int(out.split("PID ")[1].split()[0])
    assert f"(Talker pid={pid}) constructed" in out
    assert f"(Talker pid={pid}) hello from the actor" in out


# ------------------------------------------------------------------ resources


def test_actor_holds_its_resources_until_it_dies(ray_shared):
    # The module's cluster has custom=2: one such actor fits at a time.
    first = Counter.options(resources={"custom": 2}).remote()
    assert solray.get(first.incr.remote()) == 1
    second = Counter.options(resources={"custom": 2}).remote()
    pending = second.incr.remote()
    ready, _ = solray.wait([pending], timeout=0.5)
    assert not ready
    solray.kill(first)
    # Calls queued while it waited run once it starts.
    assert solray.get(pending, timeout=30) == 1
    solray.kill(second)


def test_many_zero_cpu_actors_share_a_small_cluster(ray_shared):
    actors = [Counter.remote() for _ in range(8)]  # actors hold no CPU by default
    assert len(set(solray.get([a.pid.remote() for a in actors]))) == 8


def test_actor_created_in_a_task_lives_with_the_returned_handle(ray_shared):
    @solray.remote
    def make():
        c = Counter.remote(1)
        solray.get(c.incr.remote())
        return c

    c = solray.get(make.remote())
    pid = solray.get(c.pid.remote())
    assert solray.get(c.incr.remote()) == 3
    del c
    gc.collect()
    wait_for(lambda: process_gone(pid), what="the actor to exit with the last handle")


# ------------------------------------------------------------------ cancellation


@solray.remote
class Cancellable:
    def __init__(self):
        self.steps = 0
        self.ran: list = []

    def loop_until_cancelled(self, gate_address):
        from helpers import arrive_and_wait

        arrive_and_wait(gate_address)  # tell the test we are running
        ctx = solray.get_runtime_context()
        while not ctx.is_canceled():
            self.steps += 1
            threading.Event().wait(0.01)
        return "stopped cleanly"

    def record(self, tag):
        self.ran.append(tag)
        return tag

    def get_ran(self):
        return self.ran


def test_cancel_running_sync_actor_method_is_not_interrupted(ray_shared):
    a = Cancellable.remote()
    with Gate() as gate:
        ref = a.loop_until_cancelled.remote(gate.address)
        gate.wait_arrivals(1)
    solray.cancel(ref)
    with pytest.raises(solray.exceptions.TaskCancelledError):
        solray.get(ref)
    # The method returned on its own (no KeyboardInterrupt); the actor keeps working.
    assert solray.get(a.record.remote("after")) == "after"


def test_cancel_queued_actor_call_never_runs(ray_shared):
    a = Cancellable.remote()
    with Gate() as gate:
        busy = a.loop_until_cancelled.remote(gate.address)
        gate.wait_arrivals(1)
        queued = a.record.remote("cancelled")
        solray.cancel(queued)
        solray.cancel(busy)
    with pytest.raises(solray.exceptions.TaskCancelledError):
        solray.get(queued)
    solray.get(a.record.remote("next"))
    assert solray.get(a.get_ran.remote()) == ["next"]


def test_is_canceled_outside_a_task_raises(ray_shared):
    with pytest.raises(RuntimeError):
        solray.get_runtime_context().is_canceled()
