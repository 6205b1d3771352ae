"""Error paths: remote exceptions, unserializable values, cancellation."""

from __future__ import annotations

import os
import threading

import psutil
import pytest
from helpers import Gate, Mailbox, arrive_and_wait, post, wait_for

import solray as ray
from solray.exceptions import (
    GetTimeoutError,
    RayError,
    RayTaskError,
    TaskCancelledError,
)


class CustomError(Exception):
    def __init__(self, message, code=7):
        super().__init__(message)
        self.code = code


class ErrorWithRequiredArgs(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")
        self.a = a
        self.b = b


@ray.remote
def raise_it(exc):
    raise exc


@ray.remote
def divide(a, b):
    return a / b


# ---------------------------------------------------------------------------- remote exceptions


def test_remote_exception_has_both_types(ray_shared):
    with pytest.raises(ZeroDivisionError) as info:
        ray.get(divide.remote(1, 0))
    err = info.value
    assert isinstance(err, RayTaskError) and isinstance(err, ZeroDivisionError)
    assert isinstance(err, RayError)
    text = str(err)
    assert text.startswith("ray::divide() (pid=")
    assert text.count("ray::divide()") == 1
    assert "Traceback" in text and "test_errors.py" in text and "return a / b" in text
    assert "executor.py" not in text  # runtime frames are left out
    assert isinstance(err.cause, ZeroDivisionError)


def test_custom_exception_type_and_attributes(ray_shared):
    with pytest.raises(CustomError) as info:
        ray.get(raise_it.remote(CustomError("custom message", code=42)))
    assert isinstance(info.value, RayTaskError)
    assert info.value.code == 42
    assert "custom message" in str(info.value)
    try:
        ray.get(raise_it.remote(CustomError("again")))
    except RayTaskError as e:  # except clauses on either type work
        assert e.cause.code == 7


@ray.remote
def raise_required_args():
    raise ErrorWithRequiredArgs(1, 2)


def test_exception_with_required_init_args(ray_shared):
    # pickle cannot rebuild this exception by calling its class with its args
    with pytest.raises(ErrorWithRequiredArgs) as info:
        ray.get(raise_required_args.remote())
    assert (info.value.a, info.value.b) == (1, 2)
    assert "1-2" in str(info.value)


@ray.remote
def inner_fail():
    raise KeyError("deep")


@ray.remote
def middle():
    return ray.get(inner_fail.remote())


@ray.remote
def outer():
    return ray.get(middle.remote())


def test_chained_exception_keeps_the_original_type(ray_shared):
    with pytest.raises(KeyError) as info:
        ray.get(outer.remote())
    err = info.value
    assert isinstance(err, RayTaskError)
    assert isinstance(err.cause, KeyError) and not isinstance(err.cause, RayTaskError)
    text = str(err)
    assert "inner_fail" in text and "deep" in text


def test_failed_dependency_fails_the_dependent_task(ray_shared):
    with pytest.raises(ZeroDivisionError):
        ray.get(divide.remote(divide.remote(1, 0), 1))


def test_exception_in_actor_method(ray_shared):
    @ray.remote
    class Broken:
        def fail(self):
            raise IndexError("actor method failed")

    a = Broken.remote()
    with pytest.raises(IndexError, match="actor method failed") as info:
        ray.get(a.fail.remote())
    assert isinstance(info.value, RayTaskError)
    ray.kill(a)


def test_system_exit_in_task_is_an_error(ray_shared):
    @ray.remote(max_retries=0)
    def leave():
        raise SystemExit(3)

    with pytest.raises(RayError):
        ray.get(leave.remote())
    assert ray.get(divide.remote(4, 2)) == 2


# ---------------------------------------------------------------------------- serialization


def test_unserializable_argument_names_its_path(ray_shared):
    with pytest.raises(TypeError) as info:
        divide.remote({"lock": threading.Lock(), "ok": 1}, 1)
    assert "args[0]['lock']" in str(info.value)
    with pytest.raises(TypeError) as info:
        divide.remote(1, b=[1, threading.Lock()])
    assert "kwargs['b'][1]" in str(info.value)


def test_unserializable_closure_names_the_variable(ray_shared):
    lock = threading.Lock()

    def uses_lock():
        with lock:
            return 1

    with pytest.raises(TypeError) as info:
        ray.remote(uses_lock).remote()
    assert "lock" in str(info.value)


def test_unserializable_put(ray_shared):
    with pytest.raises(TypeError, match="lock"):
        ray.put({"a": [threading.Lock()]})


@ray.remote
def return_lock():
    return {"inner": threading.Lock()}


def test_unserializable_return_value(ray_shared):
    with pytest.raises(TypeError) as info:
        ray.get(return_lock.remote())
    assert isinstance(info.value, RayTaskError)
    assert "lock" in str(info.value)


def test_unserializable_exception(ray_shared):
    @ray.remote
    def raise_unpicklable():
        e = ValueError("holds a lock")
        e.lock = threading.Lock()
        raise e

    with pytest.raises(RayError) as info:
        ray.get(raise_unpicklable.remote())
    assert "holds a lock" in str(info.value)


# ---------------------------------------------------------------------------- cancel


@ray.remote
def blocker(address, mailbox=None):
    try:
        arrive_and_wait(address)
    except KeyboardInterrupt:
        if mailbox is not None:
            post(mailbox, f"interrupted {os.getpid()}")
        raise
    return "finished"


@ray.remote
def report_pid_and_block(address, mailbox):
    post(mailbox, str(os.getpid()))
    arrive_and_wait(address)
    return "finished"


def test_cancel_queued_task(ray_shared):
    with Gate() as gate:
        running = blocker.options(num_cpus=4).remote(gate.address)
        gate.wait_arrivals(1)
        queued = divide.options(num_cpus=4).remote(1, 1)
        ray.cancel(queued)
        with pytest.raises(TaskCancelledError):
            ray.get(queued, timeout=30)
        gate.release()
        assert ray.get(running) == "finished"


def test_cancel_running_task(ray_shared):
    mailbox = Mailbox()
    with Gate() as gate:
        ref = report_pid_and_block.remote(gate.address, mailbox.address)
        pid = int(mailbox.get())
        gate.wait_arrivals(1)
        ray.cancel(ref)
        with pytest.raises(TaskCancelledError):
            ray.get(ref, timeout=30)
    assert psutil.pid_exists(pid)  # a plain cancel keeps the worker
    # the worker is reusable afterwards
    assert ray.get([divide.remote(i, 1) for i in range(8)]) == list(range(8))
    mailbox.close()


def test_cancel_force_kills_the_worker(ray_shared):
    mailbox = Mailbox()
    with Gate() as gate:
        ref = report_pid_and_block.remote(gate.address, mailbox.address)
        pid = int(mailbox.get())
        gate.wait_arrivals(1)
        ray.cancel(ref, force=True)
        with pytest.raises(TaskCancelledError):
            ray.get(ref, timeout=30)
    wait_for(lambda: not _running(pid), what="the cancelled worker to exit")
    assert ray.get(divide.remote(6, 3)) == 2
    mailbox.close()


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_cancel_finished_task_is_a_no_op(ray_shared):
    ref = divide.remote(9, 3)
    assert ray.get(ref) == 3
    ray.cancel(ref)
    assert ray.get(ref) == 3


def test_cancel_wrong_type(ray_shared):
    with pytest.raises(TypeError):
        ray.cancel("not a ref")


@ray.remote
def parent(address, mailbox):
    child = blocker.remote(address, mailbox)
    return ray.get(child)


def test_recursive_cancel_cancels_children(ray_shared):
    mailbox = Mailbox()
    with Gate() as gate:
        ref = parent.remote(gate.address, mailbox.address)
        gate.wait_arrivals(1)  # the child runs
        ray.cancel(ref)
        with pytest.raises(TaskCancelledError):
            ray.get(ref, timeout=30)
        assert mailbox.get().startswith("interrupted")
    mailbox.close()


def test_non_recursive_cancel_leaves_children(ray_shared):
    mailbox = Mailbox()
    done = Mailbox()

    @ray.remote
    def parent_reporting(address, mailbox, done_address):
        child = blocker.remote(address, mailbox)
        try:
            return ray.get(child)
        except KeyboardInterrupt:
            post(done_address, "parent cancelled")
            # The child keeps running: wait for it, then report its result.
            post(done_address, ray.get(child))
            raise

    with Gate() as gate:
        ref = parent_reporting.remote(gate.address, mailbox.address, done.address)
        gate.wait_arrivals(1)
        ray.cancel(ref, recursive=False)
        assert done.get() == "parent cancelled"
        gate.release()
        assert done.get() == "finished"
        with pytest.raises(TaskCancelledError):
            ray.get(ref, timeout=30)
    mailbox.close()
    done.close()


def test_get_timeout_is_a_ray_error(ray_shared):
    with Gate() as gate:
        ref = blocker.remote(gate.address)
        with pytest.raises(GetTimeoutError) as info:
            ray.get(ref, timeout=0.1)
        assert isinstance(info.value, RayError)


def test_cancel_task_waiting_for_its_dependencies(ray_shared):
    with Gate() as gate:
        dep = blocker.remote(gate.address)
        waiting = divide.remote(dep, 1)
        gate.wait_arrivals(1)
        ray.cancel(waiting)
        with pytest.raises(TaskCancelledError):
            ray.get(waiting, timeout=10)  # without waiting for the dependency
        gate.release()
        assert ray.get(dep) == "finished"


@ray.remote(num_returns="streaming")
def gated_stream(address):
    yield 0
    yield 1
    arrive_and_wait(address)
    yield 2


def test_cancel_streaming_generator(ray_shared):
    with Gate() as gate:
        gen = gated_stream.remote(gate.address)
        assert ray.get(next(gen)) == 0
        assert ray.get(next(gen)) == 1
        gate.wait_arrivals(1)
        ray.cancel(gen)
        with pytest.raises((TaskCancelledError, StopIteration)):
            ray.get(next(gen), timeout=30)


@ray.remote(num_returns="dynamic")
def failing_dynamic():
    yield 1
    raise ValueError("dynamic failed")


def test_dynamic_generator_error(ray_shared):
    with pytest.raises(ValueError, match="dynamic failed"):
        ray.get(failing_dynamic.remote())


@ray.remote(max_calls=1)
def put_in_short_lived_worker():
    import numpy as np

    return os.getpid(), [ray.put("small"), ray.put(np.ones(1_000_000))]


def test_owner_died_error(ray_shared):
    pid, refs = ray.get(put_in_short_lived_worker.remote())
    wait_for(lambda: not _running(pid), what="the owner to exit")
    for ref in refs:
        with pytest.raises(ray.exceptions.OwnerDiedError):
            ray.get(ref, timeout=30)
