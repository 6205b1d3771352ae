"""The Jobs API end to end: a real head (``solray start --head``) with its dashboard, driven
by our SDK, our CLI, raw HTTP (auth), and Ray's own ``JobSubmissionClient``.

One head serves the module (starting one costs about a second); tests that kill or restart
a head start their own.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile

import psutil
import pytest
from helpers import wait_for

pytest.importorskip("starlette", reason="the dashboard needs solray[default] (starlette, uvicorn)")
pytest.importorskip("uvicorn", reason="the dashboard needs solray[default] (starlette, uvicorn)")

from solray.exceptions import AuthenticationError  # noqa: E402
from solray.job_submission import JobStatus, JobSubmissionClient, JobType  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RAY_VERSION = "2.60.0"

SCRIPT = """\
import os
import solray as ray
import helper_mod

@ray.remote
def hello_world():
    # Runs in a worker: sees the job's env_vars, working_dir (cwd) and modules in it.
    return f"hello world {os.environ.get('GREETING')} {open('data.txt').read().strip()} {helper_mod.X}"

ray.init()
print(ray.get(hello_world.remote()))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _solray(args: list[str], env: dict, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    # Output goes through files, not pipes: `solray start` leaves node processes that keep
    # its stderr open, so reading a pipe to its end would wait for them.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "solray.cli.main", *args], env=env, stdout=out, stderr=err, timeout=timeout
        )
        out.seek(0)
        err.seek(0)
        proc.stdout, proc.stderr = out.read(), err.read()
    if check and proc.returncode != 0:
        raise AssertionError(f"solray {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOLRAY_", "RAY_"))}
    return {**env, **extra}


class Head:
    """A head started with ``solray start --head`` under its own SOLRAY_TMPDIR."""

    def __init__(self, tmp, storage: str | None = None):
        self.tmp = str(tmp)
        self.env = _clean_env(SOLRAY_TMPDIR=self.tmp, SOLRAY_JOB_STOP_WAIT_TIME_S="1")
        self.storage = storage or os.path.join(self.tmp, "control.sqlite")
        self.start()

    def start(self) -> None:
        self.dashboard_port = _free_port()
        _solray(
            ["start", "--head", "--port", "0", "--dashboard-port", str(self.dashboard_port),
             "--num-cpus", "2", "--storage", self.storage],
            self.env,
        )
        with open(os.path.join(self.tmp, "current_cluster.json")) as f:
            self.info = json.load(f)
        self.url = self.info["dashboard_url"]
        self.token = self.info["token"]
        assert self.url == f"http://127.0.0.1:{self.dashboard_port}"

    def client(self) -> JobSubmissionClient:
        return JobSubmissionClient(self.url, headers={"Authorization": f"Bearer {self.token}"})

    def stop(self) -> None:
        _solray(["stop"], self.env, check=False)


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    h = Head(tmp_path_factory.mktemp("jobs-head"))
    yield h
    h.stop()


@pytest.fixture
def client(head) -> JobSubmissionClient:
    return head.client()


def _follow(client: JobSubmissionClient, sid: str) -> str:
    """All of a job's output, read through the log stream, which ends when the job does."""

    async def collect() -> str:
        return "".join([chunk async for chunk in client.tail_job_logs(sid)])

    return asyncio.run(collect())


def _wait_status(client, sid: str, statuses, timeout: float = 30) -> JobStatus:
    return wait_for(lambda: (s := client.get_job_status(sid)) in statuses and s, timeout, f"job {sid} in {statuses}")


def _make_working_dir(path) -> str:
    path.mkdir()
    (path / "script.py").write_text(SCRIPT)
    (path / "data.txt").write_text("filedata\n")
    (path / "helper_mod.py").write_text('X = "from-module"\n')
    (path / "big.bin").write_bytes(b"x" * 1000)
    return str(path)


# ------------------------------------------------------------------ SDK
def test_submit_runs_a_solray_program_with_working_dir_and_env_vars(client, tmp_path):
    wd = _make_working_dir(tmp_path / "wd")
    sid = client.submit_job(
        entrypoint="python script.py",
        runtime_env={"working_dir": wd, "env_vars": {"GREETING": "hi"}, "excludes": ["big.bin"]},
        metadata={"owner": "test"},
    )
    assert sid.startswith("raysubmit_")
    out = _follow(client, sid)
    assert "hello world hi filedata from-module" in out
    info = client.get_job_info(sid)
    assert info.status == JobStatus.SUCCEEDED and client.get_job_status(sid) == "SUCCEEDED"
    assert info.type == JobType.SUBMISSION and info.submission_id == sid
    assert info.message == "Job finished successfully."
    assert info.driver_exit_code == 0
    assert info.metadata == {"owner": "test"}
    assert info.runtime_env["working_dir"].startswith("gcs://_ray_pkg_")
    assert info.start_time <= info.end_time
    # The driver that `solray.init()` started inside the job is linked to the submission.
    assert info.job_id and info.driver_info is not None and info.driver_info.id == info.job_id
    # Logs stay readable after the job ended.
    assert "hello world hi" in client.get_job_logs(sid)


def test_same_working_dir_is_uploaded_once(client, tmp_path):
    from solray._private.runtime_env import packaging

    wd = _make_working_dir(tmp_path / "wd")
    uri, _ = packaging.package_local_path(wd)
    _, name = packaging.parse_uri(uri)
    status, _ = client._request("GET", f"/api/packages/gcs/{name}")
    assert status == 404
    sid = client.submit_job(entrypoint="python -c 'print(open(\"data.txt\").read())'", runtime_env={"working_dir": wd})
    assert "filedata" in _follow(client, sid)
    assert client._request("GET", f"/api/packages/gcs/{name}")[0] == 200
    assert client.get_job_info(sid).runtime_env["working_dir"] == uri  # content hash: same name again


def test_working_dir_as_zip_file(client, tmp_path):
    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("main.py", "print('from the zip')\n")
    sid = client.submit_job(entrypoint="python main.py", runtime_env={"working_dir": str(archive)})
    assert "from the zip" in _follow(client, sid)
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED


def test_failed_job_reports_exit_code_and_log_tail(client):
    sid = client.submit_job(entrypoint="python -c \"import sys; print('boom-output'); sys.exit(3)\"")
    _follow(client, sid)
    info = client.get_job_info(sid)
    assert info.status == JobStatus.FAILED
    assert info.driver_exit_code == 3
    assert info.error_type == "JOB_ENTRYPOINT_COMMAND_ERROR"
    assert "exit code 3" in info.message and "boom-output" in info.message


def test_bad_runtime_env_package_fails_setup(client):
    sid = client.submit_job(entrypoint="echo never", runtime_env={"working_dir": "gcs://_ray_pkg_missing.zip"})
    _follow(client, sid)
    info = client.get_job_info(sid)
    assert info.status == JobStatus.FAILED and info.error_type == "RUNTIME_ENV_SETUP_FAILURE"
    assert "never uploaded" in info.message


def test_job_with_pip_runtime_env(client, tmp_path):
    """The entrypoint and the job's tasks run in the pip environment; a bad spec fails the
    job at setup with pip's output in its message."""
    from wheel_helpers import build_wheel, pip_spec

    wheels = str(tmp_path / "wheels")
    build_wheel(wheels, "solray_jobpkg", "1.0", "VALUE = 'from-the-wheel'\n")
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "main.py").write_text(
        "import solray as ray, solray_jobpkg\n"
        "@ray.remote\n"
        "def f():\n"
        "    import solray_jobpkg\n"
        "    return solray_jobpkg.VALUE\n"
        "ray.init()\n"
        "print('driver', solray_jobpkg.VALUE, 'task', ray.get(f.remote()))\n"
    )
    sid = client.submit_job(
        entrypoint="python main.py",
        runtime_env={"working_dir": str(tmp_path / "wd"), "pip": pip_spec(wheels, "solray_jobpkg")},
    )
    out = _follow(client, sid)
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED, out
    assert "driver from-the-wheel task from-the-wheel" in out
    assert client.get_job_info(sid).runtime_env["pip"]["packages"] == ["solray_jobpkg"]

    sid = client.submit_job(entrypoint="echo never", runtime_env={"pip": pip_spec(wheels, "no_such_package_xyz")})
    _follow(client, sid)
    info = client.get_job_info(sid)
    assert info.status == JobStatus.FAILED and info.error_type == "RUNTIME_ENV_SETUP_FAILURE"
    assert "no_such_package_xyz" in info.message and "No matching distribution" in info.message


def test_entrypoint_resources_are_held_while_it_runs(client, tmp_path):
    """An entrypoint with resources runs through an actor that holds them: the cluster
    shows them in use while the job runs, and they come back after."""
    script = tmp_path / "entry.py"
    script.write_text(
        "import os, solray as ray\n"
        "ray.init()\n"
        "print('available-cpus', ray.available_resources().get('CPU'), flush=True)\n"
        "print('job-id-env', os.environ.get('SOLRAY_JOB_SUBMISSION_ID'), flush=True)\n"
        "print('task', ray.get(ray.remote(lambda: 'ran').remote()))\n"
    )
    sid = client.submit_job(entrypoint=f"python {script}", entrypoint_num_cpus=1)
    out = _follow(client, sid)
    info = client.get_job_info(sid)
    assert info.status == JobStatus.SUCCEEDED, out
    assert "available-cpus 1.0" in out  # 2 CPUs, 1 held by the entrypoint
    assert f"job-id-env {sid}" in out and "task ran" in out
    assert info.entrypoint_num_cpus == 1 and info.driver_node_id
    # The entrypoint's own driver is the job's; the launcher's driver is not listed.
    assert info.job_id and info.driver_info is not None
    assert not [j for j in client.list_jobs() if "entrypoint_actor" in (j.entrypoint or "")]


def test_entrypoint_waiting_for_resources_stays_pending_then_stops(client, tmp_path):
    marker = tmp_path / "ran"
    sid = client.submit_job(entrypoint=f"touch {marker}", entrypoint_resources={"no_such_resource": 1})
    assert client.get_job_status(sid) == JobStatus.PENDING
    assert client.stop_job(sid)
    _wait_status(client, sid, {JobStatus.STOPPED})
    assert not marker.exists()


def test_stopping_an_entrypoint_with_resources_kills_its_processes(client, tmp_path):
    pid_file = tmp_path / "pid"
    sid = client.submit_job(
        entrypoint=f"python -c \"import os, time; open('{pid_file}', 'w').write(str(os.getpid())); time.sleep(600)\"",
        entrypoint_num_cpus=0.5,
    )
    _wait_status(client, sid, {JobStatus.RUNNING})
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30, "the entrypoint's pid"))
    assert client.stop_job(sid)
    _wait_status(client, sid, {JobStatus.STOPPED})
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 15,
             "the entrypoint to be gone")


def test_stop_escalates_to_sigkill_then_delete(client, tmp_path):
    # The entrypoint ignores SIGTERM: the stop escalates to SIGKILL after the grace period.
    pid_file = tmp_path / "pid"
    sid = client.submit_job(
        entrypoint=(
            "python -c \"import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"open('{pid_file}', 'w').write(str(os.getpid())); print('ready', flush=True); time.sleep(600)\""
        ),
        submission_id="stop-me",
    )
    assert sid == "stop-me"
    wait_for(lambda: "ready" in client.get_job_logs(sid), 30, "the job to start")
    assert client.get_job_status(sid) == JobStatus.RUNNING
    with pytest.raises(RuntimeError, match="non-terminal"):
        client.delete_job(sid)
    assert client.stop_job(sid) is True
    assert _wait_status(client, sid, {JobStatus.STOPPED}) == JobStatus.STOPPED
    # SIGTERM was ignored; SIGKILL was not. (The dashboard adopts and reaps the orphan.)
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    wait_for(lambda: not psutil.pid_exists(pid), 10, "the killed entrypoint to be reaped")
    info = client.get_job_info(sid)
    assert info.message == "Job was intentionally stopped." and info.driver_exit_code < 0
    assert client.stop_job(sid) is False  # already over
    assert client.delete_job(sid) is True
    with pytest.raises(RuntimeError, match="404"):
        client.get_job_info(sid)
    assert sid not in [j.submission_id for j in client.list_jobs()]


def test_duplicate_submission_id_is_refused(client):
    client.submit_job(entrypoint="true", submission_id="dup-id")
    with pytest.raises(RuntimeError, match="already exists"):
        client.submit_job(entrypoint="true", submission_id="dup-id")
    with pytest.raises(RuntimeError, match="400"):
        client.submit_job(entrypoint="true", runtime_env={"env_vars": {"A": 1}})
    with pytest.raises(RuntimeError, match="404"):
        client.stop_job("no-such-job")


def test_list_jobs_has_submissions_and_plain_drivers(head, client, tmp_path):
    sid = client.submit_job(entrypoint="echo listed")
    _follow(client, sid)
    # A driver started by hand (not through the Jobs API) is listed as a DRIVER job.
    script = tmp_path / "driver.py"
    script.write_text("import solray as ray\nray.init(address='auto')\nprint(ray.cluster_resources()['CPU'])\n")
    subprocess.run([sys.executable, str(script)], env=head.env, check=True, timeout=60, capture_output=True)
    jobs = client.list_jobs()
    subs = {j.submission_id: j for j in jobs if j.type == JobType.SUBMISSION}
    assert subs[sid].status == JobStatus.SUCCEEDED and subs[sid].entrypoint == "echo listed"
    drivers = [j for j in jobs if j.type == JobType.DRIVER]
    assert any(str(script) in j.entrypoint for j in drivers)
    d = next(j for j in drivers if str(script) in j.entrypoint)
    assert client.get_job_info(d.job_id).type == JobType.DRIVER
    with pytest.raises(RuntimeError, match="submission type"):
        client.stop_job(d.job_id)


# ------------------------------------------------------------------ auth
def _http(url: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_every_endpoint_requires_the_token(head, client, tmp_path):
    marker = tmp_path / "ran"
    body = json.dumps({"entrypoint": f"touch {marker}"}).encode()
    before = len(client.list_jobs())
    for method, path, data in [
        ("GET", "/api/version", None),
        ("GET", "/api/jobs/", None),
        ("POST", "/api/jobs/", body),
        ("GET", "/api/jobs/x", None),
        ("GET", "/api/jobs/x/logs", None),
        ("POST", "/api/jobs/x/stop", None),
        ("DELETE", "/api/jobs/x", None),
        ("GET", "/api/packages/gcs/_ray_pkg_a.zip", None),
        ("PUT", "/api/packages/gcs/_ray_pkg_a.zip", b"zip"),
    ]:
        assert _http(head.url + path, method, body=data) == 401, path
        assert _http(head.url + path, method, {"Authorization": "Bearer wrong"}, data) == 403, path
        assert _http(head.url + path, method, {"X-Ray-Authorization": "Bearer wrong"}, data) == 403, path
    # The right token, in any of the accepted places, gets through.
    assert _http(head.url + "/api/version", headers={"Authorization": f"Bearer {head.token}"}) == 200
    assert _http(head.url + "/api/version", headers={"X-Ray-Authorization": f"Bearer {head.token}"}) == 200
    assert _http(head.url + "/api/version", headers={"Cookie": f"ray-authentication-token={head.token}"}) == 200
    assert len(client.list_jobs()) == before and not marker.exists()  # nothing ran
    with pytest.raises(AuthenticationError):
        JobSubmissionClient(head.url, headers={"Authorization": "Bearer wrong"})


def test_log_stream_requires_the_token(head, client):
    websockets = pytest.importorskip("websockets")
    sid = client.submit_job(entrypoint="echo streamed")

    async def connect(headers):
        url = head.url.replace("http", "ws", 1) + f"/api/jobs/{sid}/logs/tail"
        async with websockets.connect(url, additional_headers=headers) as ws:
            return "".join([m async for m in ws])

    with pytest.raises(websockets.InvalidStatus) as e:
        asyncio.run(connect({}))
    assert e.value.response.status_code == 401
    with pytest.raises(websockets.InvalidStatus) as e:
        asyncio.run(connect({"Authorization": "Bearer wrong"}))
    assert e.value.response.status_code == 403
    assert "streamed" in asyncio.run(connect({"Authorization": f"Bearer {head.token}"}))
    with pytest.raises(RuntimeError, match="404"):
        _follow(client, "no-such-job")


def test_dashboard_binds_loopback_only(head):
    conns = [c for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == head.dashboard_port]
    assert conns and all(c.laddr.ip == "127.0.0.1" for c in conns)


# ------------------------------------------------------------------ CLI
def test_cli_submit_logs_status_list_delete(head, tmp_path):
    wd = _make_working_dir(tmp_path / "wd")
    # No token given: the CLI finds it in this machine's cluster file, the address in RAY_ADDRESS.
    env = {**head.env, "RAY_ADDRESS": head.url}
    out = _solray(
        ["job", "submit", "--submission-id", "cli-job", "--working-dir", wd,
         "--runtime-env-json", json.dumps({"env_vars": {"GREETING": "cli"}}), "--", "python", "script.py"],
        env,
    ).stdout
    assert "Job 'cli-job' submitted successfully" in out
    assert "hello world cli filedata from-module" in out and "succeeded" in out
    assert "hello world cli" in _solray(["job", "logs", "cli-job"], env).stdout
    assert "hello world cli" in _solray(["job", "logs", "--follow", "cli-job"], env).stdout
    assert "SUCCEEDED" in _solray(["job", "status", "cli-job"], env).stdout
    assert "cli-job" in _solray(["job", "list", "--address", head.url], head.env).stdout
    assert "deleted successfully" in _solray(["job", "delete", "cli-job"], env).stdout
    failed = _solray(["job", "submit", "--", "python", "-c", "raise SystemExit(2)"], env, check=False)
    assert failed.returncode == 1
    # Without any token the head refuses: a clear error, not a traceback.
    no_token = _solray(
        ["job", "list", "--address", head.url],
        _clean_env(SOLRAY_TMPDIR=str(tmp_path / "elsewhere"), XDG_CONFIG_HOME=str(tmp_path / "no-config")), check=False,
    )
    assert no_token.returncode != 0 and "Authorization" in no_token.stderr


def test_cli_no_wait_then_stop(head):
    env = {**head.env, "RAY_JOB_HEADERS": json.dumps({"Authorization": f"Bearer {head.token}"})}
    out = _solray(
        ["job", "submit", "--address", head.url, "--no-wait", "--submission-id", "cli-sleeper", "--",
         "python", "-c", "import time; print('up', flush=True); time.sleep(600)"],
        env,
    ).stdout
    assert "Tailing logs" not in out
    client = head.client()
    wait_for(lambda: "up" in client.get_job_logs("cli-sleeper"), 30, "the job to start")
    out = _solray(["job", "stop", "--address", head.url, "cli-sleeper"], env).stdout
    assert "Status: STOPPED" in out


# ------------------------------------------------------------------ head restart
def test_head_restart_marks_running_jobs_failed(tmp_path):
    h = Head(tmp_path / "restart")
    try:
        client = h.client()
        pid_file = tmp_path / "entrypoint.pid"
        sid = client.submit_job(
            entrypoint=(
                f"python -c \"import os, time; open('{pid_file}', 'w').write(str(os.getpid())); "
                "print('running', flush=True); time.sleep(600)\""
            )
        )
        wait_for(lambda: "running" in client.get_job_logs(sid), 30, "the job to start")
        entry_pid = int(pid_file.read_text())
        # The head dies without a chance to clean up...
        os.kill(h.info["pid"], signal.SIGKILL)
        # ...its dashboard notices and ends the job's processes (jobs live with their cluster).
        wait_for(lambda: not psutil.pid_exists(entry_pid), 30, "the entrypoint to be killed")
        h.stop()
        h.start()  # same storage file: the new head finds the job's record
        info = h.client().get_job_info(sid)
        assert info.status == JobStatus.FAILED
        assert "head node stopped or restarted" in info.message.replace("\n", " ")
        assert info.error_type == "JOB_SUPERVISOR_ACTOR_DIED"
        assert "running" in h.client().get_job_logs(sid)  # the log of the lost run is kept
    finally:
        h.stop()


def test_entrypoint_with_resources_runs_on_another_node_in_its_working_dir(tmp_path):
    h = Head(tmp_path / "two-nodes")
    try:
        _solray(["start", f"--address={h.info['control_address']}", "--node-ip-address=127.0.0.2",
                 "--num-cpus=1", '--resources={"far": 1}'], h.env)
        wd = tmp_path / "wd"
        wd.mkdir()
        (wd / "far_helper.py").write_text("WHERE = 'from the uploaded working_dir'\n")
        (wd / "main.py").write_text(
            "import far_helper, solray as ray\n"
            "ray.init()\n"
            "@ray.remote(resources={'far': 0.5})\n"
            "def task():\n"
            "    import far_helper\n"
            "    return far_helper.WHERE\n"
            "print('NODE', ray.get_runtime_context().get_node_id(), ray.get(task.remote()))\n"
        )
        client = h.client()
        sid = client.submit_job(entrypoint="python main.py", runtime_env={"working_dir": str(wd)},
                                entrypoint_resources={"far": 0.5})
        status = _wait_status(client, sid, {JobStatus.SUCCEEDED, JobStatus.FAILED}, 60)
        logs = client.get_job_logs(sid)
        assert status == JobStatus.SUCCEEDED, logs
        far_node = client.get_job_info(sid).driver_node_id
        assert far_node != h.info["node_id"]
        assert f"NODE {far_node} from the uploaded working_dir" in logs
    finally:
        h.stop()


def test_a_dashboard_that_dies_is_restarted_and_says_what_it_lost(tmp_path):
    h = Head(tmp_path / "dash")
    try:
        client = h.client()
        done = client.submit_job(entrypoint="echo finished-before")
        _wait_status(client, done, {JobStatus.SUCCEEDED})
        running = client.submit_job(entrypoint="python -c \"import time; print('up', flush=True); time.sleep(600)\"")
        wait_for(lambda: "up" in client.get_job_logs(running), 30, "the job to start")
        os.kill(h.info["dashboard_pid"], signal.SIGKILL)

        def answers() -> bool:
            try:
                return client.get_job_status(done) == JobStatus.SUCCEEDED
            except Exception:  # noqa: BLE001 - down until the new dashboard listens
                return False

        wait_for(answers, 30, "a new dashboard on the same port")
        info = client.get_job_info(running)
        assert info.status == JobStatus.FAILED and "dashboard process died" in info.message
        assert "finished-before" in client.get_job_logs(done)
    finally:
        h.stop()


# ------------------------------------------------------------------ Ray's own client
def _ray_python() -> str:
    """A venv with ray==2.60.0 and its Jobs SDK dependencies (cached, git-ignored)."""
    venv = os.environ.get("SOLRAY_RAY_VENV") or os.path.join(REPO, ".venv-ray")
    py = os.path.join(venv, "bin", "python")
    probe = f"import ray, aiohttp, pydantic, requests; assert ray.__version__ == {RAY_VERSION!r}"
    if os.path.exists(py) and subprocess.run([py, "-c", probe], capture_output=True, timeout=120).returncode == 0:
        return py
    try:
        if not os.path.exists(py):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True, timeout=120)
        subprocess.run(
            [py, "-m", "pip", "install", "-q", f"ray=={RAY_VERSION}", "aiohttp", "pydantic", "requests"],
            check=True, capture_output=True, timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        out = getattr(e, "stderr", b"") or b""
        pytest.skip(f"could not install ray=={RAY_VERSION} into {venv}: {e} {out.decode(errors='replace')[-500:]}")
    return py


RAY_CLIENT_SCRIPT = """\
import asyncio, sys, time
from ray.job_submission import JobStatus, JobSubmissionClient

url, token, wd = sys.argv[1:4]
client = JobSubmissionClient(url, headers={"Authorization": "Bearer " + token})
sid = client.submit_job(
    entrypoint="python script.py", runtime_env={"working_dir": wd, "env_vars": {"GREETING": "ray"}},
    metadata={"via": "ray"},
)

async def follow():
    return "".join([chunk async for chunk in client.tail_job_logs(sid)])

out = asyncio.run(follow())
assert "hello world ray filedata from-module" in out, out
info = client.get_job_info(sid)
assert info.status == JobStatus.SUCCEEDED, info
assert info.metadata == {"via": "ray"} and info.driver_info is not None, info
assert "hello world ray" in client.get_job_logs(sid)

sleeper = client.submit_job(entrypoint="sleep 600", submission_id="ray-sleeper")
deadline = time.time() + 30
while client.get_job_status(sleeper) != JobStatus.RUNNING:
    assert time.time() < deadline
    time.sleep(0.05)
assert client.stop_job(sleeper) is True
while not client.get_job_status(sleeper).is_terminal():
    assert time.time() < deadline
    time.sleep(0.05)
assert client.get_job_status(sleeper) == JobStatus.STOPPED
assert client.delete_job(sleeper) is True
ids = [j.submission_id for j in client.list_jobs()]
assert sid in ids and sleeper not in ids, ids

# Without the token Ray's client gets its clear authentication error.
from ray.exceptions import AuthenticationError
try:
    JobSubmissionClient(url)
except AuthenticationError:
    print("RAY-CLIENT-OK")
"""


@pytest.mark.timeout(1200)
def test_rays_own_client_drives_our_head(head, tmp_path):
    py = _ray_python()
    wd = _make_working_dir(tmp_path / "wd")
    env = _clean_env()
    out = subprocess.run(
        [py, "-c", RAY_CLIENT_SCRIPT, head.url, head.token, wd], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "RAY-CLIENT-OK" in out.stdout, out.stdout + out.stderr
    # Ray's token-auth mode sends the same header, so its CLI works with just RAY_AUTH_TOKEN.
    ray_cli = os.path.join(os.path.dirname(py), "ray")
    out = subprocess.run(
        [ray_cli, "job", "submit", "--address", head.url, "--", "echo", "via-ray-cli"],
        env={**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": head.token},
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0 and "via-ray-cli" in out.stdout, out.stdout + out.stderr


# ------------------------------------------------------------------ packaging (no cluster)
def test_packaging_hash_excludes_and_safe_unpack(tmp_path):
    from solray._private.runtime_env import packaging

    wd = tmp_path / "wd"
    (wd / "sub").mkdir(parents=True)
    (wd / "a.py").write_text("a")
    (wd / "sub" / "b.txt").write_text("b")
    (wd / "__pycache__").mkdir()
    (wd / "__pycache__" / "x.pyc").write_text("junk")
    (wd / "skip.log").write_text("log")
    (wd / ".gitignore").write_text("*.log\n")
    uri1, data = packaging.package_local_path(str(wd))
    assert uri1 == packaging.package_local_path(str(wd))[0]  # deterministic
    names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert names == {"a.py", "sub/b.txt", ".gitignore"}
    uri2, _ = packaging.package_local_path(str(wd), excludes=["sub/"])
    assert uri2 != uri1
    (wd / "a.py").write_text("changed")
    assert packaging.package_local_path(str(wd))[0] != uri1
    out = packaging.unpack(data, str(tmp_path / "cache"), uri1)
    assert open(os.path.join(out, "sub", "b.txt")).read() == "b"
    assert packaging.unpack(b"not used: cached", str(tmp_path / "cache"), uri1) == out
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        packaging.unpack(evil.getvalue(), str(tmp_path / "cache"), "gcs://_ray_pkg_evil.zip")
    assert not (tmp_path / "escape.txt").exists()
    monkey = packaging.MAX_PACKAGE_BYTES
    try:
        packaging.MAX_PACKAGE_BYTES = 10
        with pytest.raises(packaging.PackageTooLargeError, match="excludes"):
            packaging.package_local_path(str(wd))
    finally:
        packaging.MAX_PACKAGE_BYTES = monkey


def test_jobs_inside_a_job_find_the_cluster(head, client, tmp_path):
    """Inside a job, RAY_ADDRESS is the cluster's address: a client there needs no arguments."""
    script = tmp_path / "nested.py"
    script.write_text(
        "from solray.job_submission import JobSubmissionClient\n"
        "c = JobSubmissionClient()\n"
        "print('inner-url', c.get_address(), len(c.list_jobs()) > 0)\n"
    )
    sid = client.submit_job(entrypoint=f"python {script}")
    out = _follow(client, sid)
    assert f"inner-url {head.url} True" in out, out
