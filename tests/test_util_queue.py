"""Queue behaves as ``ray.util.queue.Queue``: FIFO, blocking with timeouts, batches, sharing."""

from __future__ import annotations

import asyncio
import queue as stdlib_queue
import time

import cloudpickle
import pytest

import solray
from solray.exceptions import RayError
from solray.util.queue import Empty, Full, Queue


@pytest.fixture(scope="module")
def ray_start():
    """One cluster for the module: each test's actors end with their handles."""
    import solray

    solray.init(num_cpus=2)
    yield solray
    solray.shutdown()


@solray.remote
def put_items(q, items, delay=0.0):
    time.sleep(delay)
    for item in items:
        q.put(item)
    return len(items)


@solray.remote
def get_items(q, n, delay=0.0, timeout=None):
    time.sleep(delay)
    return [q.get(timeout=timeout) for _ in range(n)]


@solray.remote
def get_until_empty(q):
    got = []
    try:
        while True:
            got.append(q.get(block=True, timeout=1))
    except Empty:
        pass
    return got


@solray.remote
class Consumer:
    def __init__(self, q):
        self.q = q

    def take(self, n):
        return [self.q.get(timeout=10) for _ in range(n)]

    async def take_async(self):
        return await self.q.get_async(timeout=10)


def test_exceptions_subclass_stdlib():
    assert issubclass(Empty, stdlib_queue.Empty)
    assert issubclass(Full, stdlib_queue.Full)


# -------------------------------------------------------------------------- basics


def test_fifo_and_size(ray_start):
    q = Queue()
    assert q.empty()
    assert not q.full()
    assert q.size() == q.qsize() == len(q) == 0
    for i in range(10):
        q.put(i)
    assert q.size() == q.qsize() == len(q) == 10
    assert not q.empty()
    assert [q.get() for _ in range(10)] == list(range(10))
    assert q.empty()


def test_items_of_any_type(ray_start):
    q = Queue()
    items = [None, "s", {"a": [1, 2]}, (1, 2), b"bytes" * 100_000]
    for item in items:
        q.put(item)
    assert [q.get() for _ in items] == items


def test_maxsize_and_full(ray_start):
    q = Queue(maxsize=2)
    assert q.maxsize == 2
    q.put(1)
    assert not q.full()
    q.put(2)
    assert q.full()
    assert q.get() == 1
    assert not q.full()


def test_unbounded_queue_is_never_full(ray_start):
    q = Queue(maxsize=0)
    q.put_nowait_batch(range(1000))
    assert not q.full()
    assert q.size() == 1000


# ----------------------------------------------------------- blocking and timeouts


def test_get_nonblocking_on_empty_raises_empty(ray_start):
    q = Queue()
    with pytest.raises(Empty):
        q.get(block=False)
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(stdlib_queue.Empty):
        q.get_nowait()
    q.put_nowait(5)
    assert q.get_nowait() == 5


def test_get_timeout_raises_empty_after_waiting(ray_start):
    q = Queue()
    start = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0.3)
    elapsed = time.monotonic() - start
    assert 0.25 <= elapsed < 5


def test_put_nonblocking_on_full_raises_full(ray_start):
    q = Queue(maxsize=1)
    q.put_nowait(1)
    with pytest.raises(Full):
        q.put_nowait(2)
    with pytest.raises(Full):
        q.put(2, block=False)
    assert q.size() == 1
    assert q.get() == 1


def test_put_timeout_raises_full_after_waiting(ray_start):
    q = Queue(maxsize=1)
    q.put(1)
    start = time.monotonic()
    with pytest.raises(Full):
        q.put(2, timeout=0.3)
    elapsed = time.monotonic() - start
    assert 0.25 <= elapsed < 5
    assert q.size() == 1
    assert q.get() == 1
    assert q.empty()


def test_negative_timeout_is_rejected(ray_start):
    q = Queue()
    with pytest.raises(ValueError):
        q.put(1, timeout=-1)
    with pytest.raises(ValueError):
        q.get(timeout=-1)


def test_blocking_get_is_woken_by_a_put_from_a_task(ray_start):
    q = Queue()
    ref = put_items.remote(q, ["late"], delay=0.5)
    assert q.get(timeout=30) == "late"
    assert solray.get(ref) == 1


def test_blocking_put_is_woken_by_a_get_from_a_task(ray_start):
    q = Queue(maxsize=1)
    q.put("first")
    ref = get_items.remote(q, 1, delay=0.5)
    q.put("second", timeout=30)  # blocks until the task takes "first"
    assert solray.get(ref) == ["first"]
    assert q.get(timeout=5) == "second"


# ---------------------------------------------------------------------- batches


def test_put_and_get_batch(ray_start):
    q = Queue()
    q.put_nowait_batch([1, 2, 3])
    q.put_nowait_batch(x for x in (4, 5))  # any iterable
    assert q.size() == 5
    assert q.get_nowait_batch(2) == [1, 2]
    assert q.get_nowait_batch(0) == []
    assert q.get_nowait_batch(3) == [3, 4, 5]
    assert q.empty()


def test_put_batch_that_does_not_fit_puts_nothing(ray_start):
    q = Queue(maxsize=3)
    q.put(0)
    with pytest.raises(Full):
        q.put_nowait_batch([1, 2, 3])
    assert q.size() == 1
    q.put_nowait_batch([1, 2])
    assert q.full()
    assert q.get_nowait_batch(3) == [0, 1, 2]


def test_get_batch_larger_than_queue_takes_nothing(ray_start):
    q = Queue()
    q.put_nowait_batch(["a", "b"])
    with pytest.raises(Empty):
        q.get_nowait_batch(3)
    assert q.size() == 2
    assert q.get_nowait_batch(2) == ["a", "b"]


def test_batch_argument_checks(ray_start):
    q = Queue()
    with pytest.raises(TypeError):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError):
        q.get_nowait_batch("2")
    with pytest.raises(ValueError):
        q.get_nowait_batch(-1)


# ------------------------------------------------------------ sharing the queue


def test_queue_passed_to_a_task_that_puts(ray_start):
    q = Queue()
    assert solray.get(put_items.remote(q, list(range(5)))) == 5
    assert q.size() == 5
    assert q.get_nowait_batch(5) == [0, 1, 2, 3, 4]


def test_task_consumes_until_empty(ray_start):
    q = Queue(maxsize=100)
    for i in range(10):
        q.put(i)
    assert solray.get(get_until_empty.remote(q)) == list(range(10))
    assert q.empty()


def test_queue_passed_to_an_actor(ray_start):
    q = Queue()
    consumer = Consumer.remote(q)
    q.put_nowait_batch(["x", "y"])
    assert solray.get(consumer.take.remote(2)) == ["x", "y"]
    ref = consumer.take_async.remote()
    q.put("z")
    assert solray.get(ref) == "z"


def test_queue_survives_pickling(ray_start):
    q = Queue(maxsize=4)
    copy = cloudpickle.loads(cloudpickle.dumps(q))
    copy.put("via copy")
    assert copy.maxsize == 4
    assert q.get(timeout=5) == "via copy"


# ---------------------------------------------------------------------- async api


def test_async_put_and_get(ray_start):
    q = Queue(maxsize=1)

    async def main():
        await q.put_async(1)
        with pytest.raises(Full):
            await q.put_async(2, block=False)
        with pytest.raises(Full):
            await q.put_async(2, timeout=0.1)
        assert await q.get_async() == 1
        with pytest.raises(Empty):
            await q.get_async(block=False)
        with pytest.raises(Empty):
            await q.get_async(timeout=0.1)
        with pytest.raises(ValueError):
            await q.get_async(timeout=-1)

    asyncio.run(main())


# ---------------------------------------------------------------- options, shutdown


def test_actor_options_are_applied(ray_start):
    q = Queue(actor_options={"num_cpus": 0})
    q.put(1)
    assert q.get() == 1


def test_shutdown_graceful(ray_start):
    q = Queue()
    q.put(1)
    q.shutdown()
    assert q.actor is None
    q.shutdown()  # a second shutdown is a no-op


def test_shutdown_force_with_a_blocked_getter(ray_start):
    q = Queue()
    ref = get_items.remote(q, 1)  # blocks forever: nothing is ever put
    time.sleep(0.3)
    q.shutdown(force=True)
    assert q.actor is None
    with pytest.raises(RayError):
        solray.get(ref, timeout=30)
