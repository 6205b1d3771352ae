"""Remote functions that need a cluster of their own: GPUs, infeasible demands, crashing
workers, a job-wide runtime_env, nesting deeper than the CPU count."""

from __future__ import annotations

import os

import pytest
from helpers import Gate, arrive_and_wait, wait_for

import solray as ray
from solray.exceptions import TaskCancelledError, WorkerCrashedError


@ray.remote
def assigned():
    return ray.get_runtime_context().get_assigned_resources()


@ray.remote
def add(a, b):
    return a + b


@ray.remote
def getenv(*names):
    return [os.environ.get(n) for n in names]


@ray.remote
def nested(depth):
    if depth == 0:
        return [os.getpid()]
    return [os.getpid()] + ray.get(nested.remote(depth - 1))


def _stderr_until(capfd, needle: str) -> str:
    """Collect the driver's stderr until it contains ``needle``."""
    seen = []

    def check():
        seen.append(capfd.readouterr().err)
        return needle in "".join(seen)

    wait_for(check, what=f"{needle!r} on stderr")
    return "".join(seen)


def test_infeasible_task_stays_pending_and_warns(ray_start, capfd):
    ref = assigned.options(num_gpus=1).remote()
    ready, not_ready = ray.wait([ref], timeout=0.3)
    assert ready == [] and not_ready == [ref]
    err = _stderr_until(capfd, "GPU")
    assert "GPU: 1" in err and "CPU: 2" in err  # the demand and the cluster's resources
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=30)


def test_infeasible_custom_resource_warns(ray_start, capfd):
    ref = assigned.options(resources={"tpu": 8}).remote()
    err = _stderr_until(capfd, "tpu")
    assert "tpu: 8" in err
    ray.cancel(ref)


@ray.remote(num_gpus=1)
def gpu_task():
    ctx = ray.get_runtime_context()
    return os.environ.get("CUDA_VISIBLE_DEVICES"), ctx.get_accelerator_ids(), ray.get_gpu_ids()


@pytest.mark.parametrize("ray_start_custom", [{"num_cpus": 2, "num_gpus": 2}], indirect=True)
def test_gpu_tasks_see_their_devices(ray_start_custom):
    assert ray.cluster_resources()["GPU"] == 2
    with Gate() as gate:
        # Two concurrent one-GPU tasks get different devices.
        refs = [gpu_gated.remote(gate.address) for _ in range(2)]
        gate.wait_arrivals(2)
        gate.release()
        results = ray.get(refs)
    devices = sorted(r[0] for r in results)
    assert devices == ["0", "1"]
    for visible, accel, gpu_ids in results:
        assert accel == {"GPU": [visible]}
        assert [str(g) for g in gpu_ids] == [visible]
    # a fractional GPU task also gets a device
    visible, accel, _ = ray.get(gpu_task.options(num_gpus=0.5).remote())
    assert visible in ("0", "1") and accel["GPU"] == [visible]


@ray.remote(num_gpus=1)
def gpu_gated(address):
    arrive_and_wait(address)
    return os.environ.get("CUDA_VISIBLE_DEVICES"), ray.get_runtime_context().get_accelerator_ids(), ray.get_gpu_ids()


@ray.remote
def crash_unless_marked(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return "survived"


def test_worker_killed_mid_task_is_retried(ray_start, tmp_path):
    marker = str(tmp_path / "attempted")
    assert ray.get(crash_unless_marked.options(max_retries=1).remote(marker)) == "survived"


def test_default_max_retries_retries(ray_start, tmp_path):
    marker = str(tmp_path / "attempted")
    assert ray.get(crash_unless_marked.remote(marker)) == "survived"


@ray.remote
def always_crash():
    os._exit(1)


def test_max_retries_zero_gives_worker_crashed(ray_start):
    with pytest.raises(WorkerCrashedError):
        ray.get(always_crash.options(max_retries=0).remote())
    with pytest.raises(WorkerCrashedError):
        ray.get(always_crash.options(max_retries=2).remote())
    # the cluster still works
    assert ray.get(add.remote(1, 1)) == 2


@pytest.mark.parametrize(
    "ray_start_custom",
    [{"num_cpus": 2, "runtime_env": {"env_vars": {"SOLRAY_JOB_VAR": "job", "SOLRAY_OVER": "job"}}}],
    indirect=True,
)
# ---------------------------------------------------------------------------- scheduling
def test_runtime_env_of_the_job(ray_start_custom):
    assert ray.get(getenv.remote("SOLRAY_JOB_VAR")) == ["job"]
    f = getenv.options(runtime_env={"env_vars": {"SOLRAY_OVER": "task"}})
    assert ray.get(f.remote("SOLRAY_JOB_VAR", "SOLRAY_OVER")) == ["job", "task"]
    assert "SOLRAY_JOB_VAR" not in os.environ  # the driver's own env is untouched


def test_nested_tasks_deeper_than_cpus(ray_start):
    # 2 CPUs, 6 levels: blocked parents lend their CPU to their children.
    assert len(ray.get(nested.remote(6))) == 7


@ray.remote(num_cpus=0.25)
def put_and_return_nested():
    return [ray.put("owned by a worker")], os.getpid()


@ray.remote(num_cpus=0.25)
def pid_when_released(gate_address):
    arrive_and_wait(gate_address)
    return os.getpid()


def test_idle_workers_that_own_objects_are_not_reaped(monkeypatch):
    """Idle workers beyond the CPU count are stopped after a while, oldest first, except
    those whose exit would lose objects they own (still referenced here)."""
    monkeypatch.setenv("SOLRAY_IDLE_WORKER_TIMEOUT_S", "0.3")
    ray.init(num_cpus=1)
    try:
        with Gate() as gate:  # three workers at once; the owner's goes idle first
            refs = [pid_when_released.remote(gate.address) for _ in range(2)]
            gate.wait_arrivals(2)
            nested, owner_pid = ray.get(put_and_return_nested.remote())
        others = set(ray.get(refs))
        assert owner_pid not in others

        def gone(pid):
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                return True

        # Idle beyond the CPU count: the owner (idle longest) and one other; the other goes.
        wait_for(lambda: any(gone(p) for p in others), what="an idle worker to be reaped")
        assert not gone(owner_pid)
        assert ray.get(nested[0]) == "owned by a worker"
    finally:
        ray.shutdown()
