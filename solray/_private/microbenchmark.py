"""Core microbenchmarks, named metric-for-metric after Ray's `ray microbenchmark`.

Every measurement takes the engine module (`ray` or `solray`) as an argument, so one file
measures both engines. `benchmarks/core.py` loads this file by path inside a venv where solray is
not installed, which is why nothing here imports solray at module level.

Remote functions and actor classes are defined inside functions on purpose: cloudpickle then ships
them by value, so a worker never has to import this module (it may not be importable there).
For the same reason their bodies use only builtins and the engine module from their closure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

Result = tuple[str, float, str]

# The direction of "better" follows from the unit, so a comparison never needs a per-metric table.
_HIGHER_IS_BETTER = {"/s", "GB/s", "bool"}
_LOWER_IS_BETTER = {"s", "MB"}

_SMALL_BATCH = 1000
_MB = 10**6
_GB = 10**9


def higher_is_better(unit: str) -> bool | None:
    """True/False for the direction in which `unit` improves; None where it has no direction."""
    if unit in _HIGHER_IS_BETTER:
        return True
    if unit in _LOWER_IS_BETTER:
        return False
    return None


@dataclass
class Settings:
    """Knobs of one run; the defaults keep a whole run under about two minutes on 2 cores."""

    seconds: float = 1.5  # timed loop per metric
    warmup: float = 0.25  # untimed loop first, so worker start-up is not measured as throughput
    idle_wait: float = 2.0  # how long after init() the idle memory is sampled
    timeout: float = 90.0  # per group: a hung engine must not hang the whole suite
    only: str | None = None


class BenchmarkTimeout(Exception):
    """A benchmark group ran past Settings.timeout."""


@dataclass
class _Context:
    ray: ModuleType
    settings: Settings
    init_started: float = 0.0  # wall clock (time.time) just before the in-process init()
    init_finished: float = 0.0  # perf_counter just after it
    defs: dict[str, Any] = field(default_factory=dict)

    def rate(self, fn: Callable[[], object], multiplier: float = 1.0) -> float:
        """Calls per second of `fn` times `multiplier`, after an untimed warm-up."""
        start = time.perf_counter()
        while True:
            fn()
            if time.perf_counter() - start >= self.settings.warmup:
                break
        count = 0
        start = time.perf_counter()
        while True:
            fn()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= self.settings.seconds:
                return multiplier * count / elapsed


@dataclass(frozen=True)
class _Group:
    """Metrics measured together because they share set-up (a cluster, an actor, an array)."""

    names: tuple[str, ...]
    run: Callable[[_Context], list[Result]]
    needs_cluster: bool = True


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    # SIGALRM is the only way to interrupt a blocking get() of an engine that hangs; it exists
    # only on Unix and only in the main thread, so elsewhere the group simply runs unbounded.
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise BenchmarkTimeout(f"timed out after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- remote definitions


def _definitions(ctx: _Context) -> dict[str, Any]:
    """Remote functions and actor classes, created once per run with the engine under test."""
    if ctx.defs:
        return ctx.defs
    ray = ctx.ray

    @ray.remote
    def small_value() -> bytes:
        return b"ok"

    @ray.remote
    def nbytes(arr: Any) -> int:
        return int(arr.nbytes)

    @ray.remote
    class Actor:
        def small_value(self) -> bytes:
            return b"ok"

    @ray.remote
    class AsyncActor:
        async def small_value(self) -> bytes:
            return b"ok"

    @ray.remote
    class Client:
        def small_value_batch(self, n: int) -> None:
            ray.get([small_value.remote() for _ in range(n)])

    @ray.remote
    def call_actors(actors: list[Any], n: int) -> None:
        ray.get([actors[i % len(actors)].small_value.remote() for i in range(n)])

    ctx.defs.update(
        small_value=small_value,
        nbytes=nbytes,
        Actor=Actor,
        AsyncActor=AsyncActor,
        Client=Client,
        call_actors=call_actors,
    )
    return ctx.defs


# --------------------------------------------------------------------------- cold start

# Runs in a fresh interpreter so that neither the engine's imports nor its processes are warm.
_COLD_INIT_SCRIPT = """
import importlib, json, sys, time
t0 = time.perf_counter()
mod = importlib.import_module(sys.argv[1])
t1 = time.perf_counter()
mod.init()
t2 = time.perf_counter()
mod.shutdown()
t3 = time.perf_counter()
print("@@COLD@@" + json.dumps({"import": t1 - t0, "init": t2 - t1, "shutdown": t3 - t2}))
"""


def _cold_start(ctx: _Context) -> list[Result]:
    proc = subprocess.run(
        [sys.executable, "-c", _COLD_INIT_SCRIPT, ctx.ray.__name__],
        capture_output=True,
        text=True,
        timeout=ctx.settings.timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("@@COLD@@"):
            t = json.loads(line[len("@@COLD@@") :])
            return [
                ("cold import", t["import"], "s"),
                ("cold init", t["init"], "s"),
                ("cold shutdown", t["shutdown"], "s"),
            ]
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    raise RuntimeError(f"cold init subprocess failed (rc={proc.returncode}): {' | '.join(tail)}")


# --------------------------------------------------------------------------- idle memory


def cluster_processes(engine: str, since: float) -> list[Any]:
    """Processes of the cluster this driver started, the driver excluded.

    That is its descendants, plus daemons that detached from it (double fork / setsid leaves them
    parented to init): processes created after `since`, parented to pid 1, whose name or command
    line mentions the engine, with their descendants. Requiring the pid-1 parent keeps out the
    processes of another cluster started meanwhile by some other driver on the same machine
    (a concurrent test run, say), which would otherwise match by name and start time.
    """
    import psutil

    me = psutil.Process()
    found = {p.pid: p for p in me.children(recursive=True)}
    for p in psutil.process_iter(["pid", "ppid", "name", "cmdline", "create_time"]):
        info = p.info
        if info["pid"] == me.pid or info["pid"] in found or info["ppid"] != 1:
            continue
        if (info["create_time"] or 0) < since - 1.0:
            continue
        text = " ".join([info["name"] or "", *(info["cmdline"] or [])]).lower()
        if engine.lower() in text:
            found[info["pid"]] = p
            try:
                found.update((c.pid, c) for c in p.children(recursive=True))
            except psutil.Error:
                pass
    return list(found.values())


def _idle_memory(ctx: _Context) -> list[Result]:
    import psutil

    remaining = ctx.settings.idle_wait - (time.perf_counter() - ctx.init_finished)
    if remaining > 0:
        time.sleep(remaining)
    rss = pss = 0
    count = 0
    for p in cluster_processes(ctx.ray.__name__, ctx.init_started):
        try:
            info = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        rss += info.rss
        # PSS splits shared pages among their users, so fork-server workers that share their
        # parent's pages are not counted once per worker as RSS counts them.
        pss += getattr(info, "pss", info.rss)
        count += 1
    driver = psutil.Process().memory_full_info()
    driver_pss = getattr(driver, "pss", driver.rss)
    return [
        ("idle memory (cluster processes)", rss / _MB, "MB"),
        ("idle memory (driver)", driver.rss / _MB, "MB"),
        ("idle memory (total)", (rss + driver.rss) / _MB, "MB"),
        ("idle memory pss (total)", (pss + driver_pss) / _MB, "MB"),
        ("idle processes", float(count), "count"),
    ]


# --------------------------------------------------------------------------- tasks


def _tasks(ctx: _Context) -> list[Result]:
    ray, d = ctx.ray, _definitions(ctx)
    small_value = d["small_value"]

    def batch() -> None:
        ray.get([small_value.remote() for _ in range(_SMALL_BATCH)])

    return [
        ("single client tasks sync", ctx.rate(lambda: ray.get(small_value.remote())), "/s"),
        ("single client tasks async", ctx.rate(batch, _SMALL_BATCH), "/s"),
        ("single client tasks and get batch", ctx.rate(batch), "/s"),
    ]


def _multi_client_tasks(ctx: _Context) -> list[Result]:
    ray, d = ctx.ray, _definitions(ctx)
    clients, per_client = 4, 500
    actors = [d["Client"].remote() for _ in range(clients)]

    def run() -> None:
        ray.get([a.small_value_batch.remote(per_client) for a in actors])

    value = ctx.rate(run, clients * per_client)
    _kill(ray, actors)
    return [("multi client tasks async", value, "/s")]


def _wait_1k(ctx: _Context) -> list[Result]:
    ray, d = ctx.ray, _definitions(ctx)
    small_value = d["small_value"]

    def run() -> None:
        not_ready = [small_value.remote() for _ in range(_SMALL_BATCH)]
        while not_ready:
            _, not_ready = ray.wait(not_ready)

    return [("single client wait 1k refs", ctx.rate(run), "/s")]


# --------------------------------------------------------------------------- actors


def _actor_calls(ctx: _Context) -> list[Result]:
    ray, d = ctx.ray, _definitions(ctx)
    out: list[Result] = []
    a = d["Actor"].remote()
    out.append(("1:1 actor calls sync", ctx.rate(lambda: ray.get(a.small_value.remote())), "/s"))
    out.append(("1:1 actor calls async", ctx.rate(_actor_batch(ray, a), _SMALL_BATCH), "/s"))
    c = d["Actor"].options(max_concurrency=16).remote()
    out.append(("1:1 actor calls concurrent", ctx.rate(_actor_batch(ray, c), _SMALL_BATCH), "/s"))
    _kill(ray, [a, c])
    return out


def _async_actor_calls(ctx: _Context) -> list[Result]:
    ray, d = ctx.ray, _definitions(ctx)
    a = d["AsyncActor"].remote()
    out = [
        ("1:1 async-actor calls sync", ctx.rate(lambda: ray.get(a.small_value.remote())), "/s"),
        ("1:1 async-actor calls async", ctx.rate(_actor_batch(ray, a), _SMALL_BATCH), "/s"),
    ]
    _kill(ray, [a])
    return out


def _n_to_n(ctx: _Context, cls_name: str, name: str) -> list[Result]:
    # Like Ray's: callers are tasks, each spreading its calls over all the actors.
    ray, d = ctx.ray, _definitions(ctx)
    n_actors = max(1, (os.cpu_count() or 2) // 2)
    callers, per_caller = 4, 500
    actors = [d[cls_name].remote() for _ in range(n_actors)]
    call_actors = d["call_actors"]

    def run() -> None:
        ray.get([call_actors.remote(actors, per_caller) for _ in range(callers)])

    value = ctx.rate(run, callers * per_caller)
    _kill(ray, actors)
    return [(name, value, "/s")]


def _actor_batch(ray: ModuleType, actor: Any) -> Callable[[], None]:
    def run() -> None:
        ray.get([actor.small_value.remote() for _ in range(_SMALL_BATCH)])

    return run


def _kill(ray: ModuleType, actors: list[Any]) -> None:
    # Actors from one group must not hold workers (and CPUs' worth of memory) during the next.
    for a in actors:
        try:
            ray.kill(a)
        except Exception:  # noqa: BLE001 - cleanup is best effort
            pass


# --------------------------------------------------------------------------- objects


def _small_objects(ctx: _Context) -> list[Result]:
    ray = ctx.ray
    ref = ray.put(0)
    return [
        ("single client put calls", ctx.rate(lambda: ray.put(0)), "/s"),
        ("single client get calls", ctx.rate(lambda: ray.get(ref)), "/s"),
    ]


def _large_objects(ctx: _Context, nbytes: int, label: str) -> list[Result]:
    import numpy as np

    ray = ctx.ray
    # Filled, not np.zeros: untouched calloc pages read as the shared zero page, which flatters
    # any copy made from them.
    arr = np.ones(nbytes // 8, dtype=np.float64)
    gb = nbytes / _GB
    put_rate = ctx.rate(lambda: ray.put(arr), gb)
    ref = ray.put(arr)
    got = ray.get(ref)
    zero_copy = is_zero_copy(got)
    del got
    get_rate = ctx.rate(lambda: ray.get(ref), gb)
    return [
        (f"single client put {label}", put_rate, "GB/s"),
        (f"single client get {label}", get_rate, "GB/s"),
        (f"single client get {label} zero-copy", 1.0 if zero_copy else 0.0, "bool"),
    ]


def is_zero_copy(arr: Any) -> bool:
    """Whether a NumPy array returned by get() reads the object store's memory in place.

    The array must not own its buffer (or be read-only), and where /proc is available the buffer
    must lie in a file mapping (shared memory) rather than anonymous heap: a copy into a private
    `bytes` also yields owndata=False, so the flags alone can be fooled.
    """
    if arr.flags.owndata and arr.flags.writeable:
        return False
    backed = _address_is_file_mapped(arr.__array_interface__["data"][0])
    return backed is not False


def _address_is_file_mapped(addr: int) -> bool | None:
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(maxsplit=5)
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if lo <= addr < hi:
            return len(parts) == 6 and parts[5].startswith("/")
    return False


def _object_containing_refs(ctx: _Context) -> list[Result]:
    ray = ctx.ray
    outer = ray.put([ray.put(0) for _ in range(10_000)])
    return [
        ("single client get object containing 10k refs", ctx.rate(lambda: ray.get(outer)), "/s")
    ]


def _large_args(ctx: _Context) -> list[Result]:
    import numpy as np

    ray, d = ctx.ray, _definitions(ctx)
    nbytes = d["nbytes"]
    arr = np.ones(100 * _MB // 8, dtype=np.float64)
    ref = ray.put(arr)
    out = [
        (
            "single client tasks with 100MB arg by ref",
            ctx.rate(lambda: ray.get(nbytes.remote(ref))),
            "/s",
        ),
        (
            "single client tasks with 100MB arg by value",
            ctx.rate(lambda: ray.get(nbytes.remote(arr))),
            "/s",
        ),
    ]
    return out


# --------------------------------------------------------------------------- registry

GROUPS: tuple[_Group, ...] = (
    _Group(("cold import", "cold init", "cold shutdown"), _cold_start, needs_cluster=False),
    _Group(
        (
            "idle memory (cluster processes)",
            "idle memory (driver)",
            "idle memory (total)",
            "idle memory pss (total)",
            "idle processes",
        ),
        _idle_memory,
    ),
    _Group(
        (
            "single client tasks sync",
            "single client tasks async",
            "single client tasks and get batch",
        ),
        _tasks,
    ),
    _Group(("multi client tasks async",), _multi_client_tasks),
    _Group(
        ("1:1 actor calls sync", "1:1 actor calls async", "1:1 actor calls concurrent"),
        _actor_calls,
    ),
    _Group(("1:1 async-actor calls sync", "1:1 async-actor calls async"), _async_actor_calls),
    _Group(
        ("n:n actor calls async",),
        lambda ctx: _n_to_n(ctx, "Actor", "n:n actor calls async"),
    ),
    _Group(
        ("n:n async-actor calls async",),
        lambda ctx: _n_to_n(ctx, "AsyncActor", "n:n async-actor calls async"),
    ),
    _Group(("single client put calls", "single client get calls"), _small_objects),
    _Group(
        ("single client put 100MB", "single client get 100MB", "single client get 100MB zero-copy"),
        lambda ctx: _large_objects(ctx, 100 * _MB, "100MB"),
    ),
    _Group(
        (
            "single client put gigabytes",
            "single client get gigabytes",
            "single client get gigabytes zero-copy",
        ),
        lambda ctx: _large_objects(ctx, _GB, "gigabytes"),
    ),
    _Group(("single client get object containing 10k refs",), _object_containing_refs),
    _Group(("single client wait 1k refs",), _wait_1k),
    _Group(
        (
            "single client tasks with 100MB arg by ref",
            "single client tasks with 100MB arg by value",
        ),
        _large_args,
    ),
)


def metric_names(only: str | None = None) -> list[str]:
    """All metric names this suite produces, filtered like run() filters them."""
    return [n for g in GROUPS for n in g.names if only is None or only in n]


def run_with(
    ray: ModuleType,
    settings: Settings | None = None,
    on_result: Callable[[Result], None] | None = None,
    on_error: Callable[[str, BaseException], None] | None = None,
) -> list[Result]:
    """Run the suite against engine module `ray`; a failing group is reported, not fatal."""
    settings = settings or Settings()
    only = settings.only
    groups = [g for g in GROUPS if only is None or any(only in n for n in g.names)]
    ctx = _Context(ray=ray, settings=settings)
    results: list[Result] = []

    def report(group: _Group, produced: list[Result]) -> None:
        for r in produced:
            if only is None or only in r[0]:
                results.append(r)
                if on_result:
                    on_result(r)

    def fail(group: _Group, exc: BaseException) -> None:
        if on_error:
            on_error(", ".join(n for n in group.names if only is None or only in n), exc)

    # Cold start first: a cluster already running in this driver would make it less cold.
    for group in [g for g in groups if not g.needs_cluster]:
        try:
            with _deadline(settings.timeout):
                report(group, group.run(ctx))
        except Exception as exc:  # noqa: BLE001 - one broken metric must not hide the others
            fail(group, exc)

    cluster_groups = [g for g in groups if g.needs_cluster]
    if not cluster_groups:
        return results
    ctx.init_started = time.time()
    try:
        with _deadline(settings.timeout):
            ray.init()
    except Exception as exc:  # noqa: BLE001 - an engine that cannot start still gets a report
        for group in cluster_groups:
            fail(group, exc)
        return results
    ctx.init_finished = time.perf_counter()
    try:
        for group in cluster_groups:
            try:
                with _deadline(settings.timeout):
                    report(group, group.run(ctx))
            except Exception as exc:  # noqa: BLE001 - one broken metric must not hide the others
                fail(group, exc)
    finally:
        ray.shutdown()
    return results


def run(only: str | None = None) -> list[tuple[str, float, str]]:
    """Run the suite on solray; `only` keeps the metrics whose name contains it."""
    import solray

    return run_with(solray, Settings(only=only))
