"""The local reference counter under the garbage collector: ``ObjectRef.__del__`` may run in
the middle of one of the counter's own critical sections (GC fires on any allocation)."""

from __future__ import annotations

import threading

from solray._private.objects.reference_counter import ReferenceCounter


def counter() -> tuple[ReferenceCounter, list[bytes]]:
    zeroed: list[bytes] = []
    return ReferenceCounter(on_zero=zeroed.extend, schedule=lambda fn: fn()), zeroed


def test_a_drop_inside_the_counters_critical_section_is_applied_when_it_ends():
    refs, zeroed = counter()
    refs.add_local(b"a", "owner")
    refs.add_local(b"b", "owner")
    refs._lock.acquire()  # where add_local/_flush stand when the GC runs ObjectRef.__del__
    done = threading.Event()
    threading.Thread(target=lambda: (refs.remove_local(b"b"), done.set())).start()
    refs.remove_local(b"a")  # the same thread: waiting for the lock would never end
    assert done.wait(5)  # another thread does not wait either
    assert refs.has(b"a") and refs.has(b"b")  # not applied while the section runs
    refs._release()
    assert not refs.has(b"a") and not refs.has(b"b")
    assert sorted(zeroed) == [b"a", b"b"]


def test_counts_stay_exact_under_concurrent_adds_and_drops():
    refs, zeroed = counter()

    def churn():
        for _ in range(2000):
            refs.add_local(b"x", "owner")
            refs.remove_local(b"x")

    refs.add_local(b"x", "owner")
    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refs.count(b"x") == 1
    refs.remove_local(b"x")
    assert not refs.has(b"x") and zeroed == [b"x"]
