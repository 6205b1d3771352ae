"""Tests for finding the unpicklable parts of task arguments (no runtime needed)."""

from __future__ import annotations

import functools
import io
import socket
import threading
from collections import namedtuple

import pytest

from solray._private.serialization.inspect import (
    FailureTuple,
    describe_unserializable,
    find_unserializable,
    inspect_serializability,
)

MODULE_LOCK = threading.Lock()


@pytest.fixture
def sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    yield s
    s.close()


class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.host = "db.local"
        self.sock = sock


class Holder:
    def __init__(self, **attrs) -> None:
        self.__dict__.update(attrs)


class Slotted:
    __slots__ = ("name", "__guard")

    def __init__(self) -> None:
        self.name = "s"
        self.__guard = threading.Lock()


def paths(failures) -> list[str]:
    return [f.path for f in failures]


# ---------------------------------------------------------------- picklable objects


@pytest.mark.parametrize(
    "obj",
    [1, "x", [1, 2, {"a": (3, 4)}], {"k": {1, 2}}, Holder(a=1, b=[2]), lambda x: x + 1],
)
def test_picklable_object_reports_success(obj):
    out = io.StringIO()
    ok, failures = inspect_serializability(obj, name="thing", print_file=out)
    assert ok is True
    assert failures == set()
    assert "thing serializes" in out.getvalue()
    assert find_unserializable(obj) == []


def test_describe_on_picklable_object_says_so():
    msg = describe_unserializable([1, 2], "args")
    assert "args (type list)" in msg
    assert "without error" in msg


# ------------------------------------------------------------------------- leaves


def test_lock_alone_is_its_own_leaf():
    lock = threading.Lock()
    ok, failures = inspect_serializability(lock, name="lock", print_file=io.StringIO())
    assert ok is False
    assert len(failures) == 1
    (failure,) = failures
    assert isinstance(failure, FailureTuple)
    assert failure.obj is lock
    assert failure.path == "lock"
    assert failure.parent is None
    assert "_thread.lock" in failure.error


def test_describe_top_level_argument():
    msg = describe_unserializable(threading.Lock(), "kwargs['x']")
    assert msg.startswith("kwargs['x'] (type lock) cannot be serialized: ")
    assert "cannot pickle '_thread.lock' object" in msg
    assert "\n" not in msg


def test_socket_nested_in_dict_in_second_positional_arg(sock):
    args = (1, {"conn": Conn(sock), "retries": 3})
    failures = find_unserializable(args, "args")
    assert paths(failures) == ["args[1]['conn'].sock"]
    (failure,) = failures
    assert failure.obj is sock
    assert failure.name == "sock"
    assert isinstance(failure.parent, Conn)
    assert "socket" in failure.error

    msg = describe_unserializable(args, "args")
    assert "args[1]['conn'].sock (type socket" in msg
    assert "cannot pickle 'socket' object" in msg
    assert "\n" not in msg


def test_nested_containers_report_every_leaf_with_its_path():
    lock_a, lock_b = threading.Lock(), threading.RLock()
    obj = {"ok": [1, 2], "bad": [0, (lock_a, "x")], "deeper": {"z": [lock_b]}}
    failures = find_unserializable(obj, "cfg")
    assert sorted(paths(failures)) == ["cfg['bad'][1][0]", "cfg['deeper']['z'][0]"]
    leaves = {id(f.obj) for f in failures}
    assert leaves == {id(lock_a), id(lock_b)}


def test_sets_dict_keys_and_namedtuples():
    lock = threading.Lock()
    assert paths(find_unserializable({"s": {1, lock}}, "v"))[0].startswith("v['s'] <item ")
    assert paths(find_unserializable({lock: 1}, "v"))[0].startswith("v <key ")
    Point = namedtuple("Point", ["x", "guard"])
    assert paths(find_unserializable(Point(1, lock), "p")) == ["p.guard"]


def test_object_with_unpicklable_attribute():
    holder = Holder(name="h", inner=Holder(lock=threading.Lock(), n=1))
    ok, failures = inspect_serializability(holder, name="h", print_file=io.StringIO())
    assert ok is False
    assert paths(failures) == ["h.inner.lock"]


def test_slots_including_private_names():
    failures = find_unserializable(Slotted(), "s")
    assert paths(failures) == ["s._Slotted__guard"]


def test_same_leaf_reached_twice_is_reported_once():
    lock = threading.Lock()
    failures = find_unserializable([lock, {"again": lock}], "x")
    assert paths(failures) == ["x[0]"]


def test_reference_cycle_does_not_loop():
    cyc: list = [1]
    cyc.append(cyc)
    cyc.append(threading.Lock())
    assert paths(find_unserializable(cyc, "c")) == ["c[2]"]


def test_depth_limits_the_descent():
    obj = {"a": {"b": {"c": threading.Lock()}}}
    assert paths(find_unserializable(obj, "o", depth=1)) == ["o['a']"]
    assert paths(find_unserializable(obj, "o", depth=3)) == ["o['a']['b']['c']"]
    ok, failures = inspect_serializability(obj, name="o", depth=2, print_file=io.StringIO())
    assert not ok
    assert paths(failures) == ["o['a']['b']"]


def test_many_leaves_are_capped():
    locks = [threading.Lock() for _ in range(100)]
    failures = find_unserializable(locks, "l", max_failures=5)
    assert len(failures) == 5
    assert "possibly more" in describe_unserializable(locks, "l")


# ----------------------------------------------------------------------- closures


def test_closure_variable():
    lock = threading.Lock()

    def uses_lock():
        with lock:
            return 1

    failures = find_unserializable(uses_lock, "f")
    assert paths(failures) == ["f <closure var 'lock'>"]
    assert next(iter(failures)).obj is lock
    msg = describe_unserializable(uses_lock, "f")
    assert "<closure var 'lock'>" in msg


def test_closure_inside_an_argument(sock):
    def make():
        conn = Conn(sock)

        def task():
            return conn.host

        return task

    failures = find_unserializable((make(),), "args")
    assert paths(failures) == ["args[0] <closure var 'conn'>.sock"]


def test_global_referenced_by_function_pickled_by_value():
    # Defined in a local scope, so cloudpickle pickles it (and its globals) by value.
    def uses_global():
        return MODULE_LOCK.locked()

    ok, failures = inspect_serializability(uses_global, print_file=io.StringIO())
    assert ok is False
    assert paths(failures) == ["uses_global <global 'MODULE_LOCK'>"]


def test_default_argument_and_partial():
    lock = threading.Lock()

    def with_default(x, guard=lock):
        return x

    assert paths(find_unserializable(with_default, "f")) == ["f <default 'guard'>"]
    part = functools.partial(print, 1, sep=lock)
    assert paths(find_unserializable(part, "p")) == ["p.keywords['sep']"]


def test_bound_method_of_object_holding_a_lock():
    holder = Holder(lock=threading.Lock())

    class Worker:
        def __init__(self):
            self.state = holder

        def run(self):
            return 1

    failures = find_unserializable(Worker().run, "m")
    assert paths(failures) == ["m.__self__.state.lock"]


def test_report_is_printed_to_print_file(sock):
    out = io.StringIO()
    ok, _ = inspect_serializability({"conn": Conn(sock)}, name="cfg", print_file=out)
    text = out.getvalue()
    assert not ok
    assert "cfg (type dict) does NOT serialize" in text
    assert "cfg['conn'].sock (type socket)" in text


def test_default_name_uses_function_name():
    lock = threading.Lock()

    def my_task():
        return lock

    out = io.StringIO()
    inspect_serializability(my_task, print_file=out)
    assert "my_task <closure var 'lock'>" in out.getvalue()
