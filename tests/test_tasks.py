"""Remote functions: decoration, every task option, retries, worker reuse, concurrency.

Real clusters and processes throughout. Tests that only run tasks share one 4-CPU cluster
(``ray_shared``, with ``custom: 2``); tests that need special ``init`` arguments or that
kill workers get their own.
"""

from __future__ import annotations

import asyncio
import os

import psutil
import pytest
from helpers import Gate, arrive_and_wait, wait_for

import solray as ray
from solray.exceptions import RayTaskError

# ---------------------------------------------------------------------------- decoration


@ray.remote
def add(a, b=10):
    return a + b


@ray.remote(num_cpus=1, max_retries=0)
def with_options(x):
    return x * 2


def test_remote_without_and_with_options(ray_shared):
    assert ray.get(add.remote(1)) == 11
    assert ray.get(add.remote(1, b=2)) == 3
    assert ray.get(with_options.remote(21)) == 42
    assert ray.get(add.options(num_cpus=0.5).remote(5, 5)) == 10
    # options() does not change the function itself
    assert ray.get(with_options.options(name="renamed").remote(1)) == 2


def test_remote_on_lambda_and_nested_function(ray_shared):
    def local(x):
        return x + 100

    assert ray.get(ray.remote(local).remote(1)) == 101
    assert ray.get(ray.remote(lambda: "lam").remote()) == "lam"


def test_direct_call_raises_type_error(ray_shared):
    with pytest.raises(TypeError, match=r"\.remote\(\)"):
        add(1)


@pytest.mark.parametrize(
    "opts",
    [
        {"num_cpus": -1},
        {"num_gpus": -1},
        {"memory": -5},
        {"num_returns": -1},
        {"max_retries": -2},
        {"max_calls": -1},
        {"resources": {"custom": -1}},
        {"resources": {"CPU": 1}},
        {"scheduling_strategy": "NOWHERE"},
    ],
)
def test_bad_option_values_fail_at_decoration(opts):
    with pytest.raises(ValueError):
        ray.remote(**opts)(lambda: None)
    with pytest.raises(ValueError):
        add.options(**opts)


@pytest.mark.parametrize(
    "opts",
    [
        {"not_an_option": 1},
        {"max_restarts": 1},  # an actor option, not a task option
    ],
)
def test_unknown_options_fail_at_decoration(opts):
    with pytest.raises((ValueError, TypeError), match=next(iter(opts))):
        ray.remote(**opts)(lambda: None)
    with pytest.raises((ValueError, TypeError), match=next(iter(opts))):
        add.options(**opts)


@pytest.mark.parametrize(
    "opts",
    [
        {"retry_exceptions": "yes"},
        {"retry_exceptions": [int]},
        {"resources": ["custom"]},
        {"runtime_env": "FOO=1"},
        {"name": 3},
    ],
)
def test_wrong_option_types(opts):
    with pytest.raises((ValueError, TypeError)):
        ray.remote(**opts)(lambda: None)


def test_positional_decorator_argument_is_rejected():
    with pytest.raises(TypeError):
        ray.remote(1)


# ---------------------------------------------------------------------------- resources


@ray.remote
def assigned():
    ctx = ray.get_runtime_context()
    return ctx.get_assigned_resources()


def test_num_cpus_are_assigned(ray_shared):
    assert ray.get(assigned.remote())["CPU"] == 1
    assert ray.get(assigned.options(num_cpus=4).remote())["CPU"] == 4
    assert ray.get(assigned.options(num_cpus=0.5).remote())["CPU"] == 0.5


def test_zero_cpu_task_runs(ray_shared):
    res = ray.get(assigned.options(num_cpus=0).remote())
    assert res.get("CPU", 0) == 0


def test_custom_resources_and_memory(ray_shared):
    res = ray.get(assigned.options(resources={"custom": 2}).remote())
    assert res["custom"] == 2
    res = ray.get(assigned.options(memory=100 * 2**20).remote())
    assert res["memory"] == 100 * 2**20


def test_tasks_wait_for_resources(ray_shared):
    """Two tasks that each need all 4 CPUs never overlap: the second waits for the first."""
    with Gate() as gate:
        first = hold.options(num_cpus=4).remote(gate.address)
        gate.wait_arrivals(1)
        second = hold.options(num_cpus=4).remote(None)
        ready, _ = ray.wait([second], timeout=0.5)
        assert ready == []
        gate.release()
        assert ray.get([first, second]) == ["held", "held"]


@ray.remote
def hold(address):
    if address is not None:
        arrive_and_wait(address)
    return "held"


# ---------------------------------------------------------------------------- num_returns


@ray.remote(num_returns=3)
def three():
    return 1, 2, 3


@ray.remote(num_returns=0)
def nothing():
    return None


def test_num_returns(ray_shared):
    refs = three.remote()
    assert isinstance(refs, list) and len(refs) == 3
    assert ray.get(refs) == [1, 2, 3]
    assert nothing.remote() is None
    a, b = add.options(num_returns=2).remote([1], [2])
    assert ray.get([a, b]) == [1, 2]


def test_num_returns_mismatch_is_an_error(ray_shared):
    refs = add.options(num_returns=2).remote(1, 2)  # returns a single int
    with pytest.raises(RayTaskError) as info:
        ray.get(refs[0])
    assert "num_returns" in str(info.value)


@ray.remote(num_returns="dynamic")
def dynamic_gen(n):
    for i in range(n):
        yield i * 10


def test_num_returns_dynamic(ray_shared):
    gen_ref = dynamic_gen.remote(4)
    gen = ray.get(gen_ref)
    refs = list(gen)
    assert len(refs) == 4
    assert ray.get(refs) == [0, 10, 20, 30]


@ray.remote(num_returns="streaming")
def stream(n, fail_at=None):
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"failed at {i}")
        yield i


def test_num_returns_streaming(ray_shared):
    assert [ray.get(r) for r in stream.remote(5)] == [0, 1, 2, 3, 4]
    assert list(stream.remote(0)) == []


def test_streaming_error_mid_stream(ray_shared):
    gen = stream.remote(5, fail_at=2)
    assert ray.get(next(gen)) == 0
    assert ray.get(next(gen)) == 1
    with pytest.raises(ValueError, match="failed at 2"):
        ray.get(next(gen))
    with pytest.raises(StopIteration):
        next(gen)


def test_streaming_async_iteration(ray_shared):
    async def consume():
        out = []
        async for ref in stream.remote(4):
            out.append(await ref)
        return out

    assert asyncio.run(consume()) == [0, 1, 2, 3]

    async def consume_failing():
        out = []
        with pytest.raises(ValueError):
            async for ref in stream.remote(3, fail_at=1):
                out.append(await ref)
        return out

    assert asyncio.run(consume_failing()) == [0]


@ray.remote(num_returns="streaming")
def big_stream(n):
    import numpy as np

    for i in range(n):
        yield np.full(200_000, i, dtype=np.uint8)


def test_streaming_large_items(ray_shared):
    values = [ray.get(r) for r in big_stream.remote(3)]
    assert [int(v[0]) for v in values] == [0, 1, 2]
    assert all(v.nbytes == 200_000 for v in values)


# ---------------------------------------------------------------------------- retries


@ray.remote
def fail_n_times(counter_path, n, exc_type):
    with open(counter_path, "a+") as f:
        f.seek(0)
        attempts = len(f.read())
        f.write("x")
    if attempts < n:
        raise exc_type(f"attempt {attempts}")
    return attempts


def test_retry_exceptions_true(ray_shared, tmp_path):
    path = str(tmp_path / "count")
    assert ray.get(fail_n_times.options(retry_exceptions=True, max_retries=3).remote(path, 2, ValueError)) == 2


def test_no_retry_of_app_errors_by_default(ray_shared, tmp_path):
    path = str(tmp_path / "count")
    with pytest.raises(ValueError, match="attempt 0"):
        ray.get(fail_n_times.options(max_retries=3).remote(path, 1, ValueError))
    assert open(path).read() == "x"


def test_retry_exceptions_list(ray_shared, tmp_path):
    path = str(tmp_path / "a")
    f = fail_n_times.options(retry_exceptions=[KeyError], max_retries=2)
    assert ray.get(f.remote(path, 1, KeyError)) == 1
    path = str(tmp_path / "b")
    with pytest.raises(ValueError):
        ray.get(f.remote(path, 1, ValueError))  # not in the list: no retry
    assert open(path).read() == "x"


def test_retry_exceptions_exhausted(ray_shared, tmp_path):
    path = str(tmp_path / "count")
    with pytest.raises(ValueError, match="attempt 2"):
        ray.get(fail_n_times.options(retry_exceptions=True, max_retries=2).remote(path, 10, ValueError))
    assert open(path).read() == "xxx"


# ---------------------------------------------------------------------------- max_calls, name


@ray.remote
def my_pid():
    return os.getpid()


def test_max_calls_restarts_worker(ray_shared):
    f = my_pid.options(max_calls=1)
    pids = [ray.get(f.remote()) for _ in range(3)]
    assert len(set(pids)) == 3
    # each worker exits after its call
    wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), what="max_calls workers to exit")
    f2 = my_pid.options(max_calls=2)
    pids = ray.get([f2.remote() for _ in range(12)])
    assert max(pids.count(p) for p in pids) <= 2


def test_workers_are_reused_without_max_calls(ray_shared):
    f = my_pid.options(num_cpus=4)
    pids = {ray.get(f.remote()) for _ in range(5)}
    assert len(pids) == 1


@ray.remote
def task_name():
    return ray.get_runtime_context().get_task_name()


@ray.remote
def raise_value_error():
    raise ValueError("named failure")


def test_name_option(ray_shared):
    assert ray.get(task_name.remote()) == "task_name"
    assert ray.get(task_name.options(name="custom-name").remote()) == "custom-name"
    with pytest.raises(ValueError) as info:
        ray.get(raise_value_error.options(name="special_task").remote())
    assert "special_task" in str(info.value)


# ---------------------------------------------------------------------------- runtime_env


@ray.remote
def getenv(*names):
    return [os.environ.get(n) for n in names]


def test_runtime_env_env_vars_for_a_task(ray_shared):
    f = getenv.options(runtime_env={"env_vars": {"SOLRAY_TEST_A": "1", "SOLRAY_TEST_B": "b"}})
    assert ray.get(f.remote("SOLRAY_TEST_A", "SOLRAY_TEST_B")) == ["1", "b"]
    # a task without the env does not see it (no leaking through reused workers)
    assert ray.get([getenv.remote("SOLRAY_TEST_A") for _ in range(8)]) == [[None]] * 8
    g = getenv.options(runtime_env={"env_vars": {"SOLRAY_TEST_A": "2"}})
    assert ray.get(g.remote("SOLRAY_TEST_A")) == ["2"]



@ray.remote
def env_and_child_env(name):
    return os.environ.get(name), ray.get(getenv.remote(name))[0]


@ray.remote
class EnvActor:
    def child_env(self, name):
        return ray.get(getenv.remote(name))[0]


def test_runtime_env_is_inherited_by_children(ray_shared):
    f = env_and_child_env.options(runtime_env={"env_vars": {"SOLRAY_INHERIT": "parent"}})
    assert ray.get(f.remote("SOLRAY_INHERIT")) == ("parent", "parent")
    actor = EnvActor.options(runtime_env={"env_vars": {"SOLRAY_INHERIT": "actor"}}).remote()
    assert ray.get(actor.child_env.remote("SOLRAY_INHERIT")) == "actor"
    ray.kill(actor)

    @ray.remote
    def parent_overriding():
        g = getenv.options(runtime_env={"env_vars": {"SOLRAY_OWN": "child"}})
        return ray.get(g.remote("SOLRAY_INHERIT", "SOLRAY_OWN"))

    h = parent_overriding.options(runtime_env={"env_vars": {"SOLRAY_INHERIT": "p", "SOLRAY_OWN": "p"}})
    assert ray.get(h.remote()) == ["p", "child"]  # env_vars merge, the child's win


def test_scheduling_strategies(ray_shared):
    for strategy in ("DEFAULT", "SPREAD"):
        refs = [add.options(scheduling_strategy=strategy).remote(i, 1) for i in range(10)]
        assert ray.get(refs) == list(range(1, 11))


# ---------------------------------------------------------------------------- concurrency


def test_many_tasks_in_flight(ray_shared):
    refs = [add.remote(i, i) for i in range(1000)]
    assert ray.get(refs) == [2 * i for i in range(1000)]


@ray.remote
def nested(depth):
    if depth == 0:
        return [os.getpid()]
    return [os.getpid()] + ray.get(nested.remote(depth - 1))


def test_nested_tasks_four_levels(ray_shared):
    pids = ray.get(nested.remote(4))
    assert len(pids) == 5


@ray.remote
def fan_out(n):
    return sum(ray.get([add.remote(i, 0) for i in range(n)]))


def test_tasks_submitting_many_tasks(ray_shared):
    assert ray.get([fan_out.remote(50) for _ in range(4)]) == [sum(range(50))] * 4


@ray.remote
class Accumulator:
    def __init__(self):
        self.total = 0

    def add(self, x):
        self.total += x
        return self.total

    def call_task(self, x):
        return ray.get(add.remote(x, 1))


@ray.remote
def use_actor(acc, x):
    return ray.get(acc.add.remote(x))


def test_tasks_submit_to_actors_and_back(ray_shared):
    acc = Accumulator.remote()
    results = ray.get([use_actor.remote(acc, 1) for _ in range(10)])
    assert sorted(results) == list(range(1, 11))
    assert ray.get(acc.call_task.remote(41)) == 42
    ray.kill(acc)


def test_task_id_differs_per_task(ray_shared):
    @ray.remote
    def tid():
        return ray.get_runtime_context().get_task_id()

    ids = ray.get([tid.remote() for _ in range(5)])
    assert len(set(ids)) == 5 and all(ids)
    assert ray.get_runtime_context().get_task_id() is None


@ray.remote
def return_child_ref(x):
    return add.remote(x, 1)


def test_task_returning_a_ref(ray_shared):
    inner = ray.get(return_child_ref.remote(1))
    assert isinstance(inner, ray.ObjectRef)
    assert ray.get(inner) == 2


@ray.remote(num_returns=2)
def big_and_small():
    import numpy as np

    return np.ones(500_000, dtype=np.uint8), "small"


def test_num_returns_mixed_sizes(ray_shared):
    big, small = big_and_small.remote()
    assert ray.get(small) == "small"
    assert ray.get(big).nbytes == 500_000


def test_zero_cpu_task_runs_while_cpus_are_busy(ray_shared):
    with Gate() as gate:
        busy = [hold.options(num_cpus=4).remote(gate.address)]
        gate.wait_arrivals(1)
        assert ray.get(add.options(num_cpus=0).remote(1, 1), timeout=30) == 2
        gate.release()
        ray.get(busy)


def test_submitting_from_many_threads(ray_shared):
    from concurrent.futures import ThreadPoolExecutor

    def work(t):
        refs = [add.remote(t, i) for i in range(100)]
        return ray.get(refs) == [t + i for i in range(100)]

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(8)))


@ray.remote
def call_back(actor, x):
    return ray.get(actor.inc.remote(x))


@ray.remote
class Reentrant:
    def __init__(self):
        self.n = 0

    async def inc(self, x):
        self.n += x
        return self.n

    async def roundtrip(self, me, x):
        # actor -> task -> the same actor, while this call is still running
        return await call_back.remote(me, x)


def test_actor_task_actor_roundtrip(ray_shared):
    actor = Reentrant.remote()
    assert ray.get(actor.roundtrip.remote(actor, 5), timeout=60) == 5
    assert sorted(ray.get([actor.roundtrip.remote(actor, 1) for _ in range(5)], timeout=60)) == [6, 7, 8, 9, 10]
    assert ray.get(actor.inc.remote(0)) == 10
    ray.kill(actor)
