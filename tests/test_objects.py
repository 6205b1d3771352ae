"""Objects: ObjectRef semantics, put/get/wait, borrowing and reference counting.

Reference counting is observed where it matters: the shared-memory file of a large object
(one file per object in the session's shm folder) must exist while any reference to the
object lives anywhere, and disappear once none does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import pickle

import numpy as np
import pytest
from helpers import Gate, arrive_and_wait, wait_for

import solray as ray
from solray._private.worker import state
from solray.exceptions import GetTimeoutError

BIG = 1_000_000  # bytes; above the inline limit, so the value lives in shared memory


def shm_files() -> set[str]:
    return set(os.listdir(state.get_core_worker().shm_dir))


def shm_file(ref) -> str:
    return ref.hex()


def wait_freed(ref_hex: str) -> None:
    gc.collect()
    wait_for(lambda: ref_hex not in shm_files(), what=f"object {ref_hex} to be freed")


@ray.remote
def echo(x):
    return x


@ray.remote
def gated_echo(x, address):
    arrive_and_wait(address)
    return x


@ray.remote
def get_inner(refs, address=None):
    if address is not None:
        arrive_and_wait(address)
    return ray.get(refs[0])


@ray.remote
def make_big(n=BIG):
    return np.ones(n, dtype=np.uint8)


# ---------------------------------------------------------------------------- ObjectRef


def test_ref_is_hashable_and_comparable(ray_shared):
    a = ray.put(1)
    b = ray.put(1)
    assert a != b
    assert len({a, b, a}) == 2
    d = {a: "a", b: "b"}
    assert d[a] == "a"
    assert isinstance(a.hex(), str) and len(a.binary()) > 0


def test_ref_pickles_to_the_same_object(ray_shared):
    ref = ray.put("value")
    clone = pickle.loads(pickle.dumps(ref))
    assert clone == ref and hash(clone) == hash(ref)
    assert ray.get(clone) == "value"


def test_top_level_ref_args_are_resolved(ray_shared):
    assert ray.get(echo.remote(ray.put(5))) == 5
    assert ray.get(echo.remote(echo.remote(echo.remote("chain")))) == "chain"
    arr = np.arange(BIG // 8)
    out = ray.get(echo.remote(x=ray.put(arr)))  # keyword ref argument too
    assert np.array_equal(out, arr)


def test_nested_refs_stay_refs(ray_shared):
    inner = ray.put(7)

    @ray.remote
    def kind(container):
        return type(container[0]).__name__, ray.get(container[0])

    assert ray.get(kind.remote([inner])) == ("ObjectRef", 7)
    assert ray.get(get_inner.remote({0: inner})) == 7


def test_refs_returned_inside_values(ray_shared):
    @ray.remote
    def make_ref():
        return [ray.put(np.full(BIG, 3, dtype=np.uint8))]

    [ref] = ray.get(make_ref.remote())
    assert int(ray.get(ref)[0]) == 3


def test_borrower_keeps_object_alive(ray_shared):
    """The driver drops its ref while a task still holds it inside a list."""
    ref = ray.put(np.full(BIG, 9, dtype=np.uint8))
    name = shm_file(ref)
    assert name in shm_files()
    with Gate() as gate:
        task = get_inner.remote([ref], gate.address)
        gate.wait_arrivals(1)
        del ref
        gc.collect()
        # A barrier: once this object's file is gone, the owner processed the earlier drop.
        barrier = ray.put(np.zeros(BIG, dtype=np.uint8))
        barrier_name = shm_file(barrier)
        del barrier
        wait_freed(barrier_name)
        assert name in shm_files()
        gate.release()
        value = ray.get(task)
    assert int(value[0]) == 9 and value.nbytes == BIG
    del value, task
    wait_freed(name)


def test_borrowed_ref_passed_on_by_a_task(ray_shared):
    @ray.remote
    def pass_on(refs):
        return ray.get(get_inner.remote(refs))

    ref = ray.put(np.full(BIG, 4, dtype=np.uint8))
    assert int(ray.get(pass_on.remote([ref]))[0]) == 4


def test_await_ref_in_asyncio(ray_shared):
    async def main():
        a = await echo.remote(1)
        b = await ray.put("two")
        c, d = await asyncio.gather(echo.remote(3), echo.remote(4))
        return a, b, c, d

    assert asyncio.run(main()) == (1, "two", 3, 4)


def test_await_failing_ref_raises(ray_shared):
    @ray.remote
    def fail():
        raise KeyError("awaited")

    async def main():
        await fail.remote()

    with pytest.raises(KeyError):
        asyncio.run(main())


@ray.remote
class AsyncGetter:
    async def get(self, refs):
        return await refs[0]

    async def get_many(self, refs):
        return await asyncio.gather(*refs)


def test_await_ref_inside_async_actor(ray_shared):
    actor = AsyncGetter.remote()
    assert ray.get(actor.get.remote([echo.remote("from actor")])) == "from actor"
    assert ray.get(actor.get_many.remote([echo.remote(i) for i in range(5)])) == [0, 1, 2, 3, 4]
    ray.kill(actor)


def test_ref_future(ray_shared):
    fut = echo.remote(11).future()
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(timeout=30) == 11
    futs = [echo.remote(i).future() for i in range(10)]
    assert [f.result(timeout=30) for f in concurrent.futures.as_completed(futs)] != []
    assert sorted(f.result() for f in futs) == list(range(10))


# ---------------------------------------------------------------------------- get / put


def test_get_list_and_single(ray_shared):
    refs = [ray.put(i) for i in range(5)]
    assert ray.get(refs) == [0, 1, 2, 3, 4]
    assert ray.get(tuple(refs)) == [0, 1, 2, 3, 4]
    assert ray.get(refs[2]) == 2
    assert ray.get([]) == []


def test_get_timeout(ray_shared):
    with Gate() as gate:
        ref = gated_echo.remote(1, gate.address)
        with pytest.raises(GetTimeoutError):
            ray.get(ref, timeout=0.2)
        with pytest.raises(TimeoutError):  # GetTimeoutError is a TimeoutError too
            ray.get([ray.put(0), ref], timeout=0)
        gate.release()
        assert ray.get(ref, timeout=30) == 1


@pytest.mark.parametrize("bad", [1, "ref", None, [1, 2], {"a": 1}])
def test_get_non_ref_raises_type_error(ray_shared, bad):
    with pytest.raises(TypeError):
        ray.get(bad)


def test_put_of_object_ref_raises(ray_shared):
    with pytest.raises(TypeError):
        ray.put(ray.put(1))
    # wrapped in a container it is fine
    inner = ray.put(1)
    assert ray.get(ray.get(ray.put([inner]))[0]) == 1


def test_put_get_values(ray_shared):
    values = [None, 0, "s", b"bytes" * 100_000, {"a": [1, 2]}, (1, 2), 3.5, list(range(50_000))]
    for v in values:
        assert ray.get(ray.put(v)) == v


def test_numpy_get_is_zero_copy_and_read_only(ray_shared):
    arr = np.arange(BIG, dtype=np.int64)
    out = ray.get(ray.put(arr))
    assert np.array_equal(out, arr)
    assert not out.flags.writeable
    assert not out.flags.owndata
    with pytest.raises(ValueError):
        out[0] = 1
    # a task's large numpy return is zero-copy too
    out = ray.get(make_big.remote())
    assert not out.flags.writeable and not out.flags.owndata and out.sum() == BIG


def test_arrow_table_roundtrip(ray_shared):
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"x": np.arange(200_000), "y": np.ones(200_000)})
    out = ray.get(echo.remote(ray.put(table)))
    assert out.equals(table)


def test_put_in_a_task_is_owned_by_the_task(ray_shared):
    @ray.remote
    def put_and_return():
        return ray.put(np.full(BIG, 5, dtype=np.uint8))

    ref = ray.get(put_and_return.remote())
    assert int(ray.get(ref)[7]) == 5


def test_large_argument_passing(ray_shared):
    arr = np.ones(100 * 2**20, dtype=np.uint8)

    @ray.remote
    def size_and_sum(a):
        return a.nbytes, int(a[::4096].sum()), a.flags.writeable

    nbytes, total, writeable = ray.get(size_and_sum.remote(arr))
    assert nbytes == arr.nbytes and total == arr[::4096].sum() and not writeable
    out = ray.get(echo.remote(arr))
    assert out.nbytes == arr.nbytes


# ---------------------------------------------------------------------------- wait


def test_wait_semantics(ray_shared):
    with Gate() as gate:
        slow = gated_echo.remote("slow", gate.address)
        fast = [ray.put(i) for i in range(3)]
        refs = [fast[0], slow, fast[1], fast[2]]
        ready, not_ready = ray.wait(refs, num_returns=3, timeout=30)
        assert ready == [fast[0], fast[1], fast[2]]  # in the order given
        assert not_ready == [slow]
        ready, not_ready = ray.wait(refs, num_returns=4, timeout=0.2)
        assert ready == [fast[0], fast[1], fast[2]] and not_ready == [slow]
        ready, not_ready = ray.wait(refs, num_returns=1)
        assert len(ready) == 1 and len(not_ready) == 3
        gate.release()
        ready, not_ready = ray.wait(refs, num_returns=4)
        assert ready == refs and not_ready == []


def test_wait_timeout_zero_and_fetch_local(ray_shared):
    with Gate() as gate:
        ref = gated_echo.remote(1, gate.address)
        assert ray.wait([ref], timeout=0) == ([], [ref])
        gate.release()
        assert ray.wait([ref], timeout=30, fetch_local=False) == ([ref], [])


def test_wait_bad_arguments(ray_shared):
    ref = ray.put(1)
    with pytest.raises(ValueError):
        ray.wait([ref, ref])
    with pytest.raises(ValueError):
        ray.wait([ref], num_returns=2)
    with pytest.raises(ValueError):
        ray.wait([ref], num_returns=0)
    with pytest.raises(TypeError):
        ray.wait(ref)
    with pytest.raises(TypeError):
        ray.wait([1])
    assert ray.wait([]) == ([], [])  # as in Ray


def test_wait_many(ray_shared):
    refs = [echo.remote(i) for i in range(1000)]
    ready, not_ready = ray.wait(refs, num_returns=1000, timeout=60)
    assert len(ready) == 1000 and not not_ready


# ---------------------------------------------------------------------------- reference counting


def test_put_object_freed_after_del(ray_shared):
    ref = ray.put(np.zeros(BIG, dtype=np.uint8))
    name = shm_file(ref)
    assert name in shm_files()
    del ref
    wait_freed(name)


def test_task_return_freed_after_del(ray_shared):
    ref = make_big.remote()
    ray.get(ref)
    name = shm_file(ref)
    assert name in shm_files()
    del ref
    wait_freed(name)


def test_object_kept_while_value_is_mapped(ray_shared):
    ref = ray.put(np.full(BIG, 2, dtype=np.uint8))
    value = ray.get(ref)
    del ref
    gc.collect()
    # The file may go, but the mapped value stays valid.
    assert int(value.sum()) == 2 * BIG


def test_argument_of_pending_task_is_kept(ray_shared):
    ref = ray.put(np.full(BIG, 6, dtype=np.uint8))
    name = shm_file(ref)
    with Gate() as gate:
        task = gated_echo.remote(ref, gate.address)
        del ref
        gate.wait_arrivals(1)
        gc.collect()
        assert name in shm_files()
        gate.release()
        assert int(ray.get(task)[0]) == 6
    del task
    wait_freed(name)


def test_contained_refs_freed_with_their_container(ray_shared):
    inner = ray.put(np.zeros(BIG, dtype=np.uint8))
    name = shm_file(inner)
    outer = ray.put([inner])
    del inner
    gc.collect()
    barrier = ray.put(np.zeros(BIG, dtype=np.uint8))
    barrier_name = shm_file(barrier)
    del barrier
    wait_freed(barrier_name)
    assert name in shm_files()  # the container still holds it
    assert ray.get(ray.get(outer)[0]).nbytes == BIG
    del outer
    wait_freed(name)


def test_many_objects_do_not_leak(ray_shared):
    before = len(shm_files())
    for _ in range(20):
        ray.get(make_big.remote())
        ref = ray.put(np.zeros(BIG, dtype=np.uint8))
        del ref
    gc.collect()
    wait_for(lambda: len(shm_files()) <= before, what="shm files to be freed")


def test_borrowed_ref_passed_on_top_level(ray_shared):
    @ray.remote
    def pass_on_top_level(refs):
        return ray.get(echo.remote(refs[0]))

    ref = ray.put(np.full(BIG, 8, dtype=np.uint8))
    assert int(ray.get(pass_on_top_level.remote([ref]))[0]) == 8
    small = ray.put("small")
    assert ray.get(pass_on_top_level.remote([small])) == "small"


@ray.remote(max_retries=0)
def hold_ref_and_die(refs):
    os._exit(1)


def test_dead_borrower_does_not_leak(ray_shared):
    ref = ray.put(np.zeros(BIG, dtype=np.uint8))
    name = shm_file(ref)
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(hold_ref_and_die.remote([ref]))
    del ref
    wait_freed(name)


@ray.remote
class Holder:
    def __init__(self):
        self.kept = []

    def touch(self, refs):
        return len(refs)

    def keep(self, refs):
        self.kept.append(refs)

    def values(self):
        return [int(ray.get(refs[0])[0]) for refs in self.kept]


def test_borrow_released_while_delivered_again(ray_shared):
    """A borrower drops a ref just as the owner sends it again: the new borrow must count.

    The actor's release of an earlier call's ref and the next call carrying the same ref
    travel on different connections, so they can cross.
    """
    holder = Holder.remote()
    refs = [ray.put(np.full(BIG, i, dtype=np.uint8)) for i in range(8)]
    for ref in refs:
        for _ in range(3):
            ray.get(holder.touch.remote([ref]))
        ray.get(holder.keep.remote([ref]))
    del refs, ref
    gc.collect()
    barrier = ray.put(np.zeros(BIG, dtype=np.uint8))
    barrier_name = shm_file(barrier)
    del barrier
    wait_freed(barrier_name)
    assert ray.get(holder.values.remote()) == list(range(8))
    ray.kill(holder)


@ray.remote(num_returns="streaming")
def big_items(n, fail=False):
    for i in range(n):
        yield np.full(BIG, i, dtype=np.uint8)
    if fail:
        raise ValueError("stream failed")


@ray.remote(num_returns="dynamic")
def big_items_dynamic(n, fail=False):
    for i in range(n):
        yield np.full(BIG, i, dtype=np.uint8)
    if fail:
        raise ValueError("dynamic failed")


def test_streaming_completed_ref(ray_shared):
    gen = big_items.remote(2)
    assert ray.get(gen.completed(), timeout=30) is None
    assert [int(ray.get(r)[0]) for r in gen] == [0, 1]


def test_dropped_generator_frees_unread_items(ray_shared):
    before = len(shm_files())
    gen = big_items.remote(3)
    first = next(gen)
    assert int(ray.get(first)[0]) == 0
    ray.get(gen.completed())
    del gen, first
    gc.collect()
    wait_for(lambda: len(shm_files()) <= before, what="unread stream items to be freed")
    # a generator dropped while its task still runs: later items are freed on arrival
    gen = big_items.remote(3)
    done = gen.completed()
    del gen
    gc.collect()
    ray.get(done)
    wait_for(lambda: len(shm_files()) <= before, what="stream items of a dropped generator")


def test_failed_dynamic_task_frees_its_items(ray_shared):
    before = len(shm_files())
    ref = big_items_dynamic.remote(3)
    assert [int(ray.get(r)[0]) for r in ray.get(ref)] == [0, 1, 2]
    del ref
    ref = big_items_dynamic.remote(3, fail=True)
    with pytest.raises(ValueError, match="dynamic failed"):
        ray.get(ref)
    del ref
    gc.collect()
    wait_for(lambda: len(shm_files()) <= before, what="items of a failed dynamic task")


def test_return_of_dropped_pending_task_is_freed(ray_shared):
    before = len(shm_files())

    @ray.remote(num_returns=2)
    def gated_big(address):
        arrive_and_wait(address)
        return np.ones(BIG, dtype=np.uint8), "done"

    with Gate() as gate:
        big, small = gated_big.remote(gate.address)
        gate.wait_arrivals(1)
        del big  # dropped while the task runs
        gc.collect()
        gate.release()
        assert ray.get(small) == "done"  # the reply with both returns has arrived
    wait_for(lambda: len(shm_files()) <= before, what="the dropped return to be freed")


def test_get_duplicate_refs(ray_shared):
    ref = echo.remote("dup")
    assert ray.get([ref, ref, ref]) == ["dup"] * 3
    with Gate() as gate:
        pending = gated_echo.remote("later", gate.address)
        gate.wait_arrivals(1)
        gate.release()
        assert ray.get([pending, pending], timeout=30) == ["later", "later"]


@ray.remote
def first_and_sum(a):
    return float(a[0]), float(a.sum())


def test_recycled_object_files_hold_each_new_value(ray_shared):
    """Puts of one size reuse freed files (the writer refills them through a mapping it
    keeps): every task must see its own values, and an array still held from an earlier
    get must never change under its reader."""
    n = 3 * (1 << 20)  # 24 MB of float64: above the recycling threshold
    held_ref = ray.put(np.full(n, -1.0))
    held = ray.get(held_ref)
    del held_ref  # freed while `held` still maps it: its file must not be recycled
    for i in range(12):
        ref = ray.put(np.full(n, float(i)))
        assert ray.get(first_and_sum.remote(ref)) == (float(i), float(i) * n)
        del ref
        gc.collect()
    assert held[0] == -1.0 and held[-1] == -1.0 and float(held.sum()) == -float(n)
