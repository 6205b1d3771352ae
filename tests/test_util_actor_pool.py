"""ActorPool behaves as ``ray.util.ActorPool``: ordering, timeouts, idle-actor management."""

from __future__ import annotations

import time

import pytest

import solray
from solray.exceptions import GetTimeoutError
from solray.util.actor_pool import ActorPool


@pytest.fixture(scope="module")
def ray_start():
    """One cluster for the module: each test's actors end with their handles."""
    import solray

    solray.init(num_cpus=2)
    yield solray
    solray.shutdown()


@solray.remote
class Worker:
    def double(self, v):
        return 2 * v

    def slow_double(self, v, delay):
        time.sleep(delay)
        return 2 * v

    def pair(self, v):
        return v, v + 1

    def fail(self, v):
        raise ValueError(f"bad value {v}")


def double(a, v):
    return a.double.remote(v)


def slow(a, v):
    """``v`` is ``(value, delay)``."""
    return a.slow_double.remote(*v)


# ---------------------------------------------------------------------------- map


def test_map_returns_results_in_input_order(ray_start):
    pool = ActorPool([Worker.remote(), Worker.remote()])
    # Earlier values sleep longer, so they finish last; map must still yield them first.
    values = [(i, 0.05 * (6 - i)) for i in range(6)]
    assert list(pool.map(slow, values)) == [2 * i for i in range(6)]
    assert not pool.has_next()
    assert pool.has_free()


def test_map_returns_a_lazy_iterator(ray_start):
    pool = ActorPool([Worker.remote(), Worker.remote()])
    gen = pool.map(double, [1, 2, 3, 4])
    assert iter(gen) is gen
    assert next(gen) == 2
    assert list(gen) == [4, 6, 8]


def test_map_empty_values(ray_start):
    pool = ActorPool([Worker.remote()])
    assert list(pool.map(double, [])) == []
    assert list(pool.map_unordered(double, [])) == []


def test_map_unordered_yields_fast_results_before_slow_ones(ray_start):
    pool = ActorPool([Worker.remote(), Worker.remote()])
    values = [(0, 1.5), (1, 0.0), (2, 0.0), (3, 0.0)]
    results = list(pool.map_unordered(slow, values))
    assert sorted(results) == [0, 2, 4, 6]
    # One actor is stuck on the slow value while the other drains the fast ones.
    assert results[-1] == 0
    assert results[0] != 0


def test_map_discards_results_left_from_earlier_submits(ray_start):
    pool = ActorPool([Worker.remote(), Worker.remote()])
    pool.submit(double, 100)
    pool.submit(double, 200)
    assert list(pool.map(double, [1, 2, 3])) == [2, 4, 6]
    assert not pool.has_next()


def test_map_more_values_than_actors_reuses_actors(ray_start):
    pool = ActorPool([Worker.remote()])
    assert list(pool.map(double, range(10))) == [2 * i for i in range(10)]


def test_consecutive_maps(ray_start):
    pool = ActorPool([Worker.remote(), Worker.remote()])
    assert list(pool.map(double, [1, 2])) == [2, 4]
    assert sorted(pool.map_unordered(double, [3, 4])) == [6, 8]
    assert list(pool.map(double, [5])) == [10]


# ------------------------------------------------------------ submit / get_next


def test_submit_and_get_next_in_order(ray_start):
    pool = ActorPool([Worker.remote(), Worker.remote()])
    assert not pool.has_next()
    pool.submit(slow, (1, 0.3))
    pool.submit(slow, (2, 0.0))
    assert pool.has_next()
    assert pool.get_next() == 2
    assert pool.get_next() == 4
    assert not pool.has_next()


def test_get_next_without_pending_raises_stop_iteration(ray_start):
    pool = ActorPool([Worker.remote()])
    with pytest.raises(StopIteration, match="No more results to get"):
        pool.get_next()
    with pytest.raises(StopIteration, match="No more results to get"):
        pool.get_next_unordered()


def test_get_next_unordered_returns_all(ray_start):
    pool = ActorPool([Worker.remote(), Worker.remote()])
    pool.submit(double, 1)
    pool.submit(double, 2)
    assert {pool.get_next_unordered(), pool.get_next_unordered()} == {2, 4}
    assert not pool.has_next()


def test_submits_wait_for_a_free_actor(ray_start):
    pool = ActorPool([Worker.remote()])
    for v in range(4):
        pool.submit(double, v)
    assert not pool.has_free()
    assert [pool.get_next() for _ in range(4)] == [0, 2, 4, 6]
    assert pool.has_free()
    assert not pool.has_next()


def test_fn_returning_several_refs(ray_start):
    pool = ActorPool([Worker.remote(), Worker.remote()])

    def pair(a, v):
        return list(a.pair.options(num_returns=2).remote(v))

    pool.submit(pair, 1)
    pool.submit(pair, 10)
    assert pool.get_next() == [1, 2]
    assert pool.get_next(timeout=10) == [10, 11]
    pool.submit(pair, 5)
    assert pool.get_next_unordered(timeout=10) == [5, 6]


def test_task_error_surfaces_and_frees_the_actor(ray_start):
    pool = ActorPool([Worker.remote()])
    pool.submit(lambda a, v: a.fail.remote(v), 7)
    with pytest.raises(ValueError, match="bad value 7"):
        pool.get_next()
    assert pool.has_free()
    assert list(pool.map(double, [1])) == [2]


# ------------------------------------------------------------------------ timeouts


def test_get_next_timeout_keeps_the_task(ray_start):
    pool = ActorPool([Worker.remote()])
    pool.submit(slow, (3, 1.0))
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="Timed out waiting for result"):
        pool.get_next(timeout=0.1)
    assert time.monotonic() - start < 0.9
    # Still pending, and still the next result.
    assert pool.has_next()
    assert not pool.has_free()
    assert pool.get_next(timeout=30) == 6


def test_get_next_timeout_raises_get_timeout_error(ray_start):
    pool = ActorPool([Worker.remote()])
    pool.submit(slow, (1, 1.0))
    with pytest.raises(GetTimeoutError):
        pool.get_next(timeout=0.05)
    assert pool.get_next() == 2


def test_get_next_ignore_if_timedout_skips_the_task(ray_start):
    pool = ActorPool([Worker.remote(), Worker.remote()])
    pool.submit(slow, (1, 2.0))
    pool.submit(slow, (2, 0.0))
    with pytest.raises(TimeoutError, match="has been ignored"):
        pool.get_next(timeout=0.1, ignore_if_timedout=True)
    assert pool.get_next() == 4
    assert not pool.has_next()


def test_get_next_unordered_timeout(ray_start):
    pool = ActorPool([Worker.remote()])
    pool.submit(slow, (5, 1.0))
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=0.1)
    assert pool.has_next()
    assert pool.get_next_unordered(timeout=30) == 10


def test_get_next_unordered_ignore_if_timedout(ray_start):
    pool = ActorPool([Worker.remote()])
    pool.submit(slow, (5, 2.0))
    with pytest.raises(TimeoutError, match="has been ignored"):
        pool.get_next_unordered(timeout=0.1, ignore_if_timedout=True)
    assert not pool.has_next()
    # The actor went back to the pool (its late call queues ahead of the next one).
    pool.submit(double, 4)
    assert pool.get_next() == 8


def test_get_next_with_timeout_returns_ready_result(ray_start):
    pool = ActorPool([Worker.remote()])
    pool.submit(double, 21)
    assert pool.get_next(timeout=30) == 42


def test_get_next_after_get_next_unordered_is_rejected(ray_start):
    pool = ActorPool([Worker.remote(), Worker.remote()])
    pool.submit(slow, (1, 1.0))
    pool.submit(slow, (2, 0.0))
    assert pool.get_next_unordered() == 4  # the second submission finishes first
    with pytest.raises(ValueError, match="get_next_unordered"):
        pool.get_next()
    assert pool.get_next_unordered() == 2


# ------------------------------------------------------------------- idle actors


def test_pop_idle_and_has_free(ray_start):
    a1 = Worker.remote()
    pool = ActorPool([a1])
    assert pool.has_free()
    pool.submit(double, 1)
    assert not pool.has_free()
    assert pool.pop_idle() is None
    assert pool.get_next() == 2
    assert pool.has_free()
    assert pool.pop_idle() == a1
    assert not pool.has_free()
    assert pool.pop_idle() is None


def test_push_adds_an_idle_actor(ray_start):
    a1, a2 = Worker.remote(), Worker.remote()
    pool = ActorPool([a1])
    pool.push(a2)
    popped = {pool.pop_idle(), pool.pop_idle()}
    assert popped == {a1, a2}
    assert pool.pop_idle() is None


def test_push_runs_work_queued_while_the_pool_was_empty(ray_start):
    a1 = Worker.remote()
    pool = ActorPool([])
    pool.submit(double, 3)
    assert not pool.has_next()  # nothing is running: no actor to run it
    assert not pool.has_free()
    pool.push(a1)
    assert pool.has_next()
    assert pool.get_next() == 6
    assert pool.has_free()


def test_push_rejects_actor_already_in_pool(ray_start):
    a1, a2 = Worker.remote(), Worker.remote()
    pool = ActorPool([a1, a2])
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(a1)  # idle
    pool.submit(slow, (1, 0.5))
    pool.submit(slow, (2, 0.5))
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(a2)  # busy
    assert sorted(pool.get_next() for _ in range(2)) == [2, 4]


def test_pop_idle_while_work_is_pending(ray_start):
    pool = ActorPool([Worker.remote()])
    pool.submit(double, 1)
    pool.submit(double, 2)  # waits for the only actor
    assert pool.pop_idle() is None
    assert pool.get_next() == 2
    # The freed actor was handed the pending submit, so it is busy again.
    assert pool.pop_idle() is None
    assert pool.get_next() == 4
    assert pool.pop_idle() is not None
