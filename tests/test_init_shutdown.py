"""init / shutdown of the embedded local cluster, auto-init, the object store's limit, and
task output reaching the driver. Every test starts (and stops) its own cluster."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap

import numpy as np
import psutil
import pytest
from helpers import wait_for

import solray as ray
from solray._private.worker import state
from solray.exceptions import ObjectStoreFullError


@pytest.fixture(autouse=True)
def _no_cluster_left():
    if ray.is_initialized():
        ray.shutdown()
    yield
    if ray.is_initialized():
        ray.shutdown()


@ray.remote
def square(x):
    return x * x


def test_init_returns_context():
    assert not ray.is_initialized()
    ctx = ray.init(num_cpus=1)
    assert ray.is_initialized()
    assert ctx.address and ":" in ctx.address
    assert ctx["address"] == ctx.address
    assert hasattr(ctx, "dashboard_url")
    assert ctx.address_info["address"] == ctx.address
    assert os.path.isdir(ctx.address_info["session_dir"])
    assert ray.cluster_resources()["CPU"] == 1
    assert ray.get(square.remote(3)) == 9
    ray.shutdown()
    assert not ray.is_initialized()


def test_init_as_context_manager():
    with ray.init(num_cpus=1):
        assert ray.get(square.remote(4)) == 16
    assert not ray.is_initialized()


def test_api_before_init_auto_initializes():
    assert not ray.is_initialized()
    ref = ray.put(5)
    assert ray.is_initialized()
    assert ray.get(ref) == 5
    assert ray.get(square.remote(5)) == 25


def test_init_twice():
    ray.init(num_cpus=1)
    with pytest.raises(RuntimeError, match="ignore_reinit_error"):
        ray.init(num_cpus=1)
    ctx = ray.init(num_cpus=1, ignore_reinit_error=True)
    assert ctx.address
    assert ray.get(square.remote(2)) == 4


def test_init_rejects_bad_arguments():
    with pytest.raises(ValueError):
        ray.init(num_cpus=-1)
    with pytest.raises(TypeError):
        ray.init(no_such_argument=1)
    assert not ray.is_initialized()


def test_init_resources_and_namespace():
    ray.init(num_cpus=3, num_gpus=0, resources={"special": 5}, namespace="ns1")
    res = ray.cluster_resources()
    assert res["CPU"] == 3 and res["special"] == 5 and "GPU" not in res
    assert ray.get_runtime_context().namespace == "ns1"
    assert ray.available_resources()["CPU"] <= 3


def test_shutdown_stops_every_process_and_removes_shm():
    ray.init(num_cpus=2)
    worker = state.get_core_worker()
    shm_dir = worker.shm_dir
    assert ray.get([square.remote(i) for i in range(4)]) == [0, 1, 4, 9]
    ref = ray.put(np.zeros(1_000_000, dtype=np.uint8))
    assert os.listdir(shm_dir)
    started = psutil.Process().children(recursive=True)
    assert len(started) >= 3  # head (control + daemon), zygote, workers
    del ref
    ray.shutdown()
    wait_for(lambda: not [p for p in started if _alive(p)], what="cluster processes to exit")
    assert not os.path.exists(shm_dir)
    # a new cluster starts fine afterwards
    ray.init(num_cpus=1)
    assert ray.get(square.remote(6)) == 36


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_object_store_full():
    ray.init(num_cpus=1, object_store_memory=30 * 2**20)
    # An object larger than the whole store can never fit.
    with pytest.raises(ObjectStoreFullError, match="object store"):
        ray.put(np.zeros(40 * 2**20, dtype=np.uint8))
    # Objects that fit one at a time all stay readable (older ones may be spilled).
    refs = [ray.put(np.full(20 * 2**20, i, dtype=np.uint8)) for i in range(3)]
    for i, ref in enumerate(refs):
        value = ray.get(ref)
        assert value.nbytes == 20 * 2**20 and int(value[-1]) == i
        del value
    del refs
    gc.collect()
    assert ray.get(ray.put(np.zeros(25 * 2**20, dtype=np.uint8))).nbytes == 25 * 2**20


def test_object_store_full_in_a_task_return():
    ray.init(num_cpus=1, object_store_memory=10 * 2**20)

    @ray.remote
    def too_big():
        return np.zeros(20 * 2**20, dtype=np.uint8)

    with pytest.raises(ObjectStoreFullError):
        ray.get(too_big.remote())


# ---------------------------------------------------------------------------- output


DRIVER = textwrap.dedent(
    """
    import sys
    import solray as ray

    ray.init(num_cpus=1)

    @ray.remote
    def shout(i):
        import logging
        import os
        print("hello from task", i)
        print("to stderr", i, file=sys.stderr)
        logging.getLogger("user.module").warning("logged warning %d", i)
        return os.getpid()

    @ray.remote
    class Talker:
        def talk(self):
            import os
            print("hello from actor")
            return os.getpid()

    pid = ray.get(shout.remote(1))
    a = Talker.remote()
    apid = ray.get(a.talk.remote())
    # One write per line: the driver prints worker output from another thread.
    sys.stdout.write(f"PIDS {pid} {apid}\\n")
    sys.stdout.write(f"SESSION {ray.get_runtime_context().gcs_address}\\n")
    import glob, os
    session = ray._private.api._cluster["info"]["session_dir"]
    names = [os.path.basename(f) for f in glob.glob(os.path.join(session, 'logs', 'worker-*.log'))]
    sys.stdout.write(f"LOGS {' '.join(names)}\\n")
    sys.stdout.flush()
    ray.shutdown()
    """
)


def test_task_output_reaches_the_driver(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    pid_line = [line for line in out.splitlines() if line.startswith("PIDS")][0]
    pid, apid = pid_line.split()[1:]
    assert f"(shout pid={pid}) hello from task 1" in out
    assert f"(shout pid={pid}) to stderr 1" in proc.stderr
    assert f"(shout pid={pid}) logged warning 1" in proc.stderr
    assert f"(Talker pid={apid}) hello from actor" in out
    logs = [line for line in out.splitlines() if line.startswith("LOGS")][0].split()[1:]
    # Each worker keeps a log file (the actor may have reused the task's worker).
    assert {f"-{pid}.log", f"-{apid}.log"} <= {name[name.rindex("-"):] for name in logs}


def test_worker_logs_are_kept_in_files():
    ctx = ray.init(num_cpus=1, log_to_driver=False)

    @ray.remote
    def write_line():
        print("line for the log file")
        sys.stdout.flush()
        return os.getpid()

    pid = ray.get(write_line.remote())
    logs_dir = os.path.join(ctx.address_info["session_dir"], "logs")

    def found():
        for name in os.listdir(logs_dir):
            if name.endswith(f"-{pid}.log"):
                with open(os.path.join(logs_dir, name)) as f:
                    return "line for the log file" in f.read()
        return False

    wait_for(found, what="the worker's log file")


def test_driver_script_next_to_a_helper_module(tmp_path):
    """A task may use a module that sits next to the driver's script (Ray ships sys.path)."""
    (tmp_path / "mylib.py").write_text("def triple(x):\n    return 3 * x\n")
    (tmp_path / "main.py").write_text(
        textwrap.dedent(
            """
            import solray as ray
            import mylib

            @ray.remote
            def use(x):
                return mylib.triple(x)

            ray.init(num_cpus=1)
            print("RESULT", ray.get(ray.remote(mylib.triple).remote(2)), ray.get(use.remote(3)))
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "main.py"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "RESULT 6 9" in proc.stdout


def test_remote_before_init_auto_initializes():
    assert not ray.is_initialized()
    assert ray.get(square.remote(7)) == 49
    assert ray.is_initialized()


def test_a_local_cluster_serves_its_dashboard_when_asked():
    import urllib.request

    from helpers import wait_for

    ctx = ray.init(num_cpus=1, include_dashboard=True, dashboard_port=None)
    try:
        url = ctx.dashboard_url
        assert url.startswith("http://127.0.0.1:")
        token = ray._private.api._cluster["info"]["token"]

        def answers() -> bool:
            req = urllib.request.Request(url + "/api/version", headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_for(answers, 30, "the dashboard to answer")
    finally:
        ray.shutdown()
    assert ray.init(num_cpus=1).dashboard_url == ""  # SOLRAY_INCLUDE_DASHBOARD=0 (set for the tests)
    ray.shutdown()
