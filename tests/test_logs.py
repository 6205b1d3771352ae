"""Log files: ``solray logs``, ``solray.util.state.list_logs/get_log`` and the dashboard's
``/api/v0/logs`` API, by file, actor, task, job submission and worker pid; every node
serves its own files; names never leave the log folder; the token is required."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse

import pytest
from dashboard_helpers import DashboardHead, run_cli
from helpers import wait_for

import solray as ray
from solray.util.state import get_log, list_logs
from solray.util.state.common import RayStateApiException

pytest.importorskip("starlette", reason="the dashboard needs solray[default] (starlette, uvicorn)")


@ray.remote
class Talker:
    def say(self, text):
        print(text, flush=True)
        return os.getpid()


@ray.remote
def talk(text):
    print(text, flush=True)
    return ray.get_runtime_context().get_task_id()


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    h = DashboardHead(tmp_path_factory.mktemp("logs-head"))
    yield h
    h.stop()


@pytest.fixture(scope="module")
def workload(head):
    from solray.job_submission import JobSubmissionClient

    actor = Talker.remote()
    actor_pid = ray.get(actor.say.remote("actor-log-marker"))
    ray.get(talk.remote("an-earlier-task-on-that-worker"))
    task_id = ray.get(talk.remote("task-log-marker"))
    client = JobSubmissionClient(head.url, headers={"Authorization": f"Bearer {head.token}"})
    sid = client.submit_job(entrypoint="python -c \"print('job-line-1'); print('job-line-2'); print('job-line-3')\"")
    wait_for(lambda: client.get_job_status(sid) == "SUCCEEDED", 60, "the job to finish")
    return {"actor_id": actor._actor_id.hex(), "actor_pid": actor_pid, "task_id": task_id, "sid": sid,
            "node_id": ray.get_runtime_context().get_node_id()}


def _text(**kwargs) -> str:
    return "".join(get_log(**kwargs))


def test_list_logs_groups_files_of_the_head(head, workload):
    for address in (None, head.url):  # straight to the cluster, and through the dashboard
        groups = list_logs(address=address)
        assert "worker_out" in groups and "dashboard" in groups
        assert f"job-driver-{workload['sid']}.log" in groups["driver"]
        assert any(f.endswith(f"-{workload['actor_pid']}.log") for f in groups["worker_out"])
        only = list_logs(address=address, node_id=workload["node_id"], glob_filter="job-driver-*")
        assert list(only) == ["driver"]


def test_get_log_by_actor_task_job_pid_and_file(head, workload):
    for address in (None, head.url):
        assert "actor-log-marker" in _text(address=address, actor_id=workload["actor_id"])
        # Only what the task printed, not its worker's whole log.
        assert _text(address=address, task_id=workload["task_id"]) == "task-log-marker\n"
        assert "actor-log-marker" in _text(address=address, pid=workload["actor_pid"], node_id=workload["node_id"])
        assert _text(address=address, submission_id=workload["sid"], tail=2) == "job-line-2\njob-line-3\n"
        full = _text(address=address, filename=f"job-driver-{workload['sid']}.log", node_id=workload["node_id"])
        assert full == "job-line-1\njob-line-2\njob-line-3\n"
        assert b"job-line-1" in b"".join(get_log(address=address, submission_id=workload["sid"], encoding=None))
    with pytest.raises(RayStateApiException, match="not found"):
        _text(actor_id="ff" * 16)
    with pytest.raises(RayStateApiException, match="404"):
        _text(address=head.url, filename="no-such-file.log")


def test_names_never_leave_the_log_folder(head, workload):
    for bad in ("../../../etc/passwd", "/etc/passwd", "../current_cluster.json"):
        q = urllib.parse.urlencode({"filename": bad, "node_id": workload["node_id"]})
        status, body, _ = head.get(f"/api/v0/logs/file?{q}")
        assert status == 400, (bad, status, body)
        with pytest.raises(ValueError):
            _text(filename=bad)


def test_log_api_requires_the_token(head, workload):
    for path in ("/api/v0/logs", f"/api/v0/logs/file?submission_id={workload['sid']}", "/api/v0/logs/stream?filename=x"):
        assert head.get(path, token=None)[0] == 401
        assert head.get(path, token="wrong")[0] in (401, 403)
    status, body, headers = head.get(f"/api/v0/logs/file?submission_id={workload['sid']}")
    assert status == 200 and body == b"job-line-1\njob-line-2\njob-line-3\n"
    assert headers["content-type"].startswith("text/plain")


def test_cli_lists_prints_and_follows(head, workload):
    listing = run_cli(["logs"], head.env).stdout
    assert "worker_out:" in listing and f"job-driver-{workload['sid']}.log" in listing
    assert run_cli(["logs", "--job-id", workload["sid"], "--tail", "1"], head.env).stdout == "job-line-3\n"
    assert run_cli(["logs", "job", "--id", workload["sid"], "--tail", "-1"], head.env).stdout.startswith("job-line-1")
    assert "actor-log-marker" in run_cli(["logs", "actor", "--id", workload["actor_id"]], head.env).stdout
    assert "task-log-marker" in run_cli(["logs", "--task-id", workload["task_id"], "--address", head.url], head.env).stdout
    assert run_cli(["logs", f"job-driver-{workload['sid']}*"], head.env).stdout.endswith("job-line-3\n")
    missing = run_cli(["logs", "--actor-id", "ab" * 16], head.env, check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr

    # --follow prints what the actor writes after it started, until it is stopped.
    actor = Talker.remote()
    ray.get(actor.say.remote("before-follow"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "solray.cli.main", "logs", "--actor-id", actor._actor_id.hex(), "--follow",
         "--interval", "0.05"],
        env=head.env, stdout=subprocess.PIPE, text=True,
    )
    def read_until(marker: str) -> None:
        for _ in range(100):  # the worker may have run other tasks before: earlier lines come first
            line = proc.stdout.readline()
            if marker in line:
                return
            assert line, f"the output ended before {marker!r}"
        raise AssertionError(f"no {marker!r} in the first 100 lines")

    try:
        read_until("before-follow")
        ray.get(actor.say.remote("after-follow"))
        read_until("after-follow")
    finally:
        proc.kill()
        proc.wait()
