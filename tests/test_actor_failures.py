"""Actors that fail: creation errors, kill, restarts, crashes mid-call, graceful exits."""

from __future__ import annotations

import gc
import os

import psutil
import pytest
from helpers import Gate, arrive_and_wait, wait_for

import solray
from solray.exceptions import ActorDiedError, RayActorError


def process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@solray.remote
class Stateful:
    def __init__(self, start: int = 0):
        self.value = start

    def incr(self) -> int:
        self.value += 1
        return self.value

    def pid(self) -> int:
        return os.getpid()

    def crash(self):
        os._exit(1)

    def crash_at_gate(self, gate_address):
        arrive_and_wait(gate_address)
        os._exit(1)

    def restarted(self) -> bool:
        return solray.get_runtime_context().was_current_actor_reconstructed

    def leave(self):
        solray.actor.exit_actor()


# ------------------------------------------------------------------ creation errors


def test_constructor_error_surfaces_on_the_first_call(ray_shared):
    @solray.remote
    class Broken:
        def __init__(self):
            raise ValueError("cannot build this actor")

        def ping(self):
            return "pong"

    b = Broken.remote()
    with pytest.raises(ActorDiedError, match="cannot build this actor") as info:
        solray.get(b.ping.remote())
    assert isinstance(info.value, RayActorError)
    # Later calls fail the same way, at once.
    with pytest.raises(ActorDiedError, match="cannot build this actor"):
        solray.get(b.ping.remote())


def test_constructor_error_is_not_restarted(ray_shared):
    @solray.remote(max_restarts=3)
    class Broken:
        def __init__(self):
            raise RuntimeError("always broken")

        def ping(self):
            return "pong"

    with pytest.raises(ActorDiedError, match="always broken"):
        solray.get(Broken.remote().ping.remote())


def test_failed_constructor_argument_kills_the_actor(ray_shared):
    @solray.remote
    def bad_arg():
        raise KeyError("missing argument value")

    a = Stateful.remote(bad_arg.remote())
    with pytest.raises(ActorDiedError, match="missing argument value"):
        solray.get(a.incr.remote())


# ------------------------------------------------------------------ kill


def test_kill_without_restart(ray_shared):
    a = Stateful.options(max_restarts=2).remote()
    pid = solray.get(a.pid.remote())
    solray.kill(a)  # no_restart=True is the default
    with pytest.raises(ActorDiedError, match="kill"):
        solray.get(a.incr.remote())
    wait_for(lambda: process_gone(pid), what="the killed actor's process to exit")


def test_kill_with_restart_gives_fresh_state(ray_shared):
    a = Stateful.options(max_restarts=1).remote(10)
    assert solray.get([a.incr.remote(), a.incr.remote()]) == [11, 12]
    old_pid = solray.get(a.pid.remote())
    assert solray.get(a.restarted.remote()) is False
    solray.kill(a, no_restart=False)
    # Calls made after kill() returns go to the new incarnation.
    assert solray.get(a.incr.remote()) == 11
    assert solray.get(a.pid.remote()) != old_pid
    assert solray.get(a.restarted.remote()) is True
    # The single restart is used up: the next kill is final.
    solray.kill(a, no_restart=False)
    with pytest.raises(ActorDiedError):
        solray.get(a.incr.remote())


def test_kill_without_max_restarts_is_final(ray_shared):
    a = Stateful.remote()
    solray.get(a.incr.remote())
    solray.kill(a, no_restart=False)
    with pytest.raises(ActorDiedError):
        solray.get(a.incr.remote())


def test_infinite_restarts(ray_shared):
    a = Stateful.options(max_restarts=-1).remote()
    for _ in range(3):
        assert solray.get(a.incr.remote()) == 1
        solray.kill(a, no_restart=False)
    assert solray.get(a.incr.remote()) == 1


def test_kill_rejects_non_actors(ray_shared):
    with pytest.raises(ValueError, match="actor"):
        solray.kill(solray.put(1))


def test_kill_fails_calls_in_flight(ray_shared):
    a = Stateful.remote()
    with Gate() as gate:
        ref = a.crash_at_gate.remote(gate.address)  # never reaches os._exit: killed first
        gate.wait_arrivals(1)
        solray.kill(a)
        with pytest.raises(ActorDiedError):
            solray.get(ref)


def test_killed_detached_actor_is_gone_by_name(ray_shared):
    a = Stateful.options(name="doomed", lifetime="detached").remote()
    solray.get(a.incr.remote())
    solray.kill(a)
    with pytest.raises(ValueError, match="doomed"):
        solray.get_actor("doomed")


# ------------------------------------------------------------------ crashes


def test_crash_mid_call_raises_actor_died_error(ray_shared):
    a = Stateful.remote()
    solray.get(a.incr.remote())
    with pytest.raises(ActorDiedError):
        solray.get(a.crash.remote())
    with pytest.raises(ActorDiedError):
        solray.get(a.incr.remote())


def test_crash_with_restart_then_calls_succeed(ray_shared):
    a = Stateful.options(max_restarts=1).remote()
    assert solray.get(a.incr.remote()) == 1
    old_pid = solray.get(a.pid.remote())
    with pytest.raises(ActorDiedError):
        solray.get(a.crash.remote())
    assert solray.get(a.incr.remote()) == 1  # fresh state
    assert solray.get(a.pid.remote()) != old_pid


def test_crash_is_retried_with_max_task_retries(ray_shared, tmp_path):
    @solray.remote(max_restarts=1, max_task_retries=1)
    class CrashOnce:
        def run(self, marker):
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)
            return "second attempt"

    a = CrashOnce.remote()
    assert solray.get(a.run.remote(str(tmp_path / "crashed"))) == "second attempt"


def test_method_max_task_retries_option(ray_shared, tmp_path):
    @solray.remote(max_restarts=1)
    class CrashOnce:
        def run(self, marker):
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)
            return "retried"

    c = CrashOnce.remote()
    assert solray.get(c.run.options(max_task_retries=1).remote(str(tmp_path / "m"))) == "retried"


def test_calls_queued_during_a_restart_run_after_it(ray_shared):
    a = Stateful.options(max_restarts=1).remote()
    solray.get(a.incr.remote())
    a.crash.remote()
    refs = [a.incr.remote() for _ in range(5)]
    # Submitted behind the crash: they run on the new incarnation, in order, or fail if
    # they were already in flight to the old one. Any that ran saw fresh, ordered state.
    values = []
    for r in refs:
        try:
            values.append(solray.get(r))
        except ActorDiedError:
            assert not values, "a call failed after a later one had succeeded"
    assert values == list(range(1, len(values) + 1))
    assert solray.get(a.incr.remote()) == len(values) + 1


def test_externally_killed_actor_process(ray_shared):
    a = Stateful.remote()
    pid = solray.get(a.pid.remote())
    psutil.Process(pid).kill()
    wait_for(lambda: process_gone(pid), what="the process to die")
    with pytest.raises(ActorDiedError):
        solray.get(a.incr.remote())


def test_dead_actor_error_reaches_a_task(ray_shared):
    @solray.remote
    def call(handle):
        return solray.get(handle.incr.remote())

    a = Stateful.remote()
    solray.kill(a)
    with pytest.raises(ActorDiedError):
        solray.get(call.remote(a))


# ------------------------------------------------------------------ graceful exits


def test_ray_terminate_finishes_pending_calls_first(ray_shared):
    a = Stateful.options(max_restarts=2).remote()
    pid = solray.get(a.pid.remote())
    pending = [a.incr.remote() for _ in range(10)]
    a.__ray_terminate__.remote()
    later = a.incr.remote()
    assert solray.get(pending) == list(range(1, 11))
    with pytest.raises(ActorDiedError):
        solray.get(later)
    wait_for(lambda: process_gone(pid), what="the terminated actor's process to exit")
    # An intended exit is not restarted.
    with pytest.raises(ActorDiedError):
        solray.get(a.incr.remote())


def test_exit_actor(ray_shared):
    a = Stateful.options(max_restarts=2).remote()
    pid = solray.get(a.pid.remote())
    with pytest.raises(ActorDiedError, match="exit_actor"):
        solray.get(a.leave.remote())
    with pytest.raises(ActorDiedError):
        solray.get(a.incr.remote())
    wait_for(lambda: process_gone(pid), what="the actor's process to exit")


def test_exit_actor_runs_atexit_handlers(ray_shared, tmp_path):
    @solray.remote
    class WithCleanup:
        def __init__(self, path):
            import atexit

            atexit.register(lambda: open(path, "w").write("cleaned up"))

        def leave(self):
            solray.actor.exit_actor()

    path = tmp_path / "cleanup"
    a = WithCleanup.remote(str(path))
    with pytest.raises(ActorDiedError):
        solray.get(a.leave.remote())
    wait_for(lambda: path.exists() and path.read_text() == "cleaned up", what="the atexit handler")


def test_exit_actor_outside_an_actor_raises(ray_shared):
    with pytest.raises(TypeError):
        solray.actor.exit_actor()


def test_exit_actor_in_a_threaded_actor_lets_running_calls_finish(ray_shared):
    @solray.remote(max_concurrency=2)
    class Threaded:
        def hold(self, gate_address):
            arrive_and_wait(gate_address)
            return "finished"

        def leave(self):
            solray.actor.exit_actor()

    t = Threaded.remote()
    with Gate() as gate:
        held = t.hold.remote(gate.address)
        gate.wait_arrivals(1)
        with pytest.raises(ActorDiedError):
            solray.get(t.leave.remote())
    assert solray.get(held) == "finished"


def test_scope_exit_after_restart_still_terminates(ray_shared):
    a = Stateful.options(max_restarts=1).remote()
    solray.kill(a, no_restart=False)
    pid = solray.get(a.pid.remote())
    del a
    gc.collect()
    wait_for(lambda: process_gone(pid), what="the restarted actor to exit with its handle")


def test_retried_calls_keep_their_order(ray_shared, tmp_path):
    @solray.remote(max_restarts=1, max_task_retries=2)
    class Log:
        def __init__(self):
            self.log = []

        def step(self, i, gate_address, marker):
            if i == 0 and not os.path.exists(marker):
                open(marker, "w").close()
                arrive_and_wait(gate_address)  # the later calls are in flight meanwhile
                os._exit(1)
            self.log.append(i)
            return i

        def get_log(self):
            return self.log

    a = Log.remote()
    marker = str(tmp_path / "crashed")
    with Gate() as gate:
        refs = [a.step.remote(i, gate.address, marker) for i in range(6)]
        gate.wait_arrivals(1)
    assert solray.get(refs) == list(range(6))
    assert solray.get(a.get_log.remote()) == list(range(6))


def test_kill_an_actor_that_is_still_pending(ray_shared):
    a = Stateful.options(resources={"never-available": 1}).remote()
    ref = a.incr.remote()
    solray.kill(a)
    with pytest.raises(ActorDiedError):
        solray.get(ref, timeout=30)


def test_large_constructor_argument_survives_a_restart_after_the_creator_let_go(ray_shared):
    import numpy as np

    @solray.remote(max_restarts=1)
    class Big:
        def __init__(self, array):
            self.total = int(array.sum())

        def total_and_pid(self):
            return self.total, os.getpid()

    @solray.remote
    class Holder:
        def hold(self, handles):
            self.held = handles[0]

        def use(self):
            return solray.get(self.held.total_and_pid.remote())

    big = Big.remote(np.ones(1_000_000, dtype=np.uint8))  # stored in shared memory
    holder = Holder.remote()
    solray.get(holder.hold.remote([big]))
    del big
    gc.collect()
    total, pid = solray.get(holder.use.remote())
    assert total == 1_000_000
    psutil.Process(pid).kill()

    def restarted():
        try:
            return solray.get(holder.use.remote())
        except ActorDiedError:
            return None  # a call that raced the kill

    # Restarted from the same (still pinned) argument.
    total, new_pid = wait_for(restarted, what="the restarted actor")
    assert (total, new_pid != pid) == (1_000_000, True)


@solray.remote
def create_owned_actor(detached_name=None):
    opts = {"max_restarts": -1}
    if detached_name:
        opts.update(name=detached_name, lifetime="detached")
    actor = Stateful.options(**opts).remote()
    solray.get(actor.incr.remote())
    return actor, os.getpid()


def test_an_actor_dies_with_the_worker_that_created_it(ray_shared):
    """Fate-sharing, as in Ray: even max_restarts=-1 does not bring it back; a detached
    actor created by the same kind of worker survives."""
    owned, owner_pid = solray.get(create_owned_actor.remote())
    detached, detached_owner_pid = solray.get(create_owned_actor.remote("survives-its-owner"))
    assert solray.get(owned.incr.remote()) == 2
    os.kill(owner_pid, 9)
    if detached_owner_pid != owner_pid:
        os.kill(detached_owner_pid, 9)
    wait_for(lambda: process_gone(owner_pid), what="the owner to exit")
    errors = []

    def owned_actor_died() -> bool:  # calls sent before the control service saw it may pass
        try:
            solray.get(owned.incr.remote())
            return False
        except ActorDiedError as e:
            errors.append(e)
            return True

    wait_for(owned_actor_died, what="the owned actor to die")
    assert "owner" in str(errors[-1])
    assert solray.get(detached.incr.remote()) == 2
    solray.kill(detached)
