"""The job manager: runs each submission's entrypoint as a subprocess of the head.

A submission moves PENDING (runtime environment being set up) -> RUNNING (entrypoint
started) -> SUCCEEDED / FAILED / STOPPED. Its ``JobInfo`` lives in the control service's
key-value store (written on every change, so it is durable in the head's SQLite file);
its output goes straight from the entrypoint into a log file on the head, which is kept
after the job ends. The entrypoint runs in its own process group with the cluster's
address and token in its environment, so ``solray.init()`` inside it connects with no
arguments. Stopping sends SIGTERM to the group, then SIGKILL after a grace period.

When a dashboard starts and finds jobs that an earlier head left PENDING or RUNNING, it
kills what is left of their processes and marks them FAILED with the reason: a job is
never silently lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import string
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from solray._private.control.client import ControlClient
from solray._private.runtime_env import packaging
from solray._private.runtime_env import pip as pip_env
from solray.job_submission.models import JobErrorType, JobInfo, JobStatus, JobSubmitRequest

logger = logging.getLogger(__name__)

# Same namespace and key prefix as Ray's job manager uses in its internal KV.
KV_NAMESPACE_JOB = "job"
JOB_KEY_PREFIX = "_ray_internal_job_info_"
# How long a stopped entrypoint gets between SIGTERM and SIGKILL (Ray's variable too).
STOP_GRACE_S = float(os.environ.get("SOLRAY_JOB_STOP_WAIT_TIME_S", os.environ.get("RAY_JOB_STOP_WAIT_TIME_S", 3)))
# The tail of the log that a FAILED job's message quotes.
FAILED_LOG_TAIL_CHARS = 20_000
TAIL_POLL_S = 0.1
SUPPORTED_RUNTIME_ENV_FIELDS = frozenset({"working_dir", "py_modules", "env_vars", "excludes", "config", "pip"})


class JobError(Exception):
    """A request the manager refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _now_ms() -> int:
    return int(time.time() * 1000)


def _new_submission_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "raysubmit_" + "".join(secrets.choice(alphabet) for _ in range(16))


@dataclass
class _Running:
    """What the manager holds for a job whose entrypoint it started."""

    proc: asyncio.subprocess.Process | None = None
    stop_requested: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    terminating: asyncio.Task | None = None


class JobManager:
    def __init__(self, control: ControlClient, token: str, session_dir: str, node_id: str | None = None):
        self.control = control
        self.token = token
        self.session_dir = session_dir
        self.node_id = node_id
        self.log_dir = os.path.join(session_dir, "logs")
        self.package_cache = packaging.cache_dir(session_dir)
        self._running: dict[str, _Running] = {}
        self._infos: dict[str, dict] = {}  # submission_id -> last written record (cache)
        self.version = 0  # grows with every change of a record in _infos
        self._all_loaded = False  # whether _infos holds every record in the KV store
        self._shutting_down = False
        self._reaper: asyncio.Task | None = None
        os.makedirs(self.log_dir, exist_ok=True)

    def start(self) -> None:
        """Adopt and reap the orphans of entrypoints (a shell that died before its children):
        many containers' PID 1 never reaps, which would leave them as zombies forever."""
        if _become_subreaper():
            self._reaper = asyncio.get_running_loop().create_task(self._reap_orphans())

    async def _reap_orphans(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            managed = {r.proc.pid for r in self._running.values() if r.proc is not None}
            while True:
                try:
                    info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:
                    info = None
                if info is None or info.si_pid in managed:
                    break  # nothing to reap, or asyncio's watcher will reap its own child
                try:
                    os.waitpid(info.si_pid, os.WNOHANG)
                except ChildProcessError:
                    break

    # ------------------------------------------------------------------ persistence
    @staticmethod
    def _key(submission_id: str) -> bytes:
        return (JOB_KEY_PREFIX + submission_id).encode()

    def _remember(self, sid: str, record: dict) -> None:
        self._infos[sid] = record
        self.version += 1  # listings built from older records are stale

    async def _put(self, sid: str, record: dict) -> None:
        self._remember(sid, record)
        await self.control.kv_put(KV_NAMESPACE_JOB, self._key(sid), json.dumps(record).encode(), True)
        run = self._running.get(sid)
        if run is not None:
            run.changed.set()
            run.changed = asyncio.Event()

    async def _get(self, sid: str) -> dict | None:
        raw = await self.control.kv_get(KV_NAMESPACE_JOB, self._key(sid))
        if raw is None:
            return None
        record = json.loads(raw)
        self._remember(sid, record)
        return record

    async def get_record(self, sid: str) -> dict | None:
        """The stored record: ``{"submission_id", "info": JobInfo json, "log_path", ...}``."""
        return await self._get(sid)

    async def list_records(self) -> list[dict]:
        """Every job record. This manager is the only writer of job records, so once it has
        read them all (at start) its cache is the truth: listing costs no round trips."""
        if not self._all_loaded:
            keys = await self.control.kv_keys(KV_NAMESPACE_JOB, JOB_KEY_PREFIX.encode())
            await asyncio.gather(*(self._get(k.decode()[len(JOB_KEY_PREFIX):]) for k in keys))
            self._all_loaded = True
        return sorted(self._infos.values(), key=lambda r: r["info"].get("start_time") or 0)

    async def recover(self) -> None:
        """Mark jobs that a previous head left unfinished FAILED, killing their leftovers."""
        for record in await self.list_records():
            info = JobInfo.from_json(record["info"])
            if info.status.is_terminal():
                continue
            _kill_leftover(record.get("pid"), record.get("pid_create_time"))
            info.status = JobStatus.FAILED
            info.error_type = JobErrorType.JOB_SUPERVISOR_ACTOR_DIED
            info.message = (
                f"Job was {record['info']['status']} when the dashboard supervising it stopped "
                "(its head node stopped or restarted, or the dashboard process died); its "
                "entrypoint process did not survive. Submit it again to rerun it."
            )
            info.end_time = _now_ms()
            record["info"] = info.to_json()
            await self._put(record["submission_id"], record)

    # ------------------------------------------------------------------ submit
    async def submit(self, req: JobSubmitRequest) -> str:
        sid = req.submission_id or req.job_id or _new_submission_id()
        runtime_env = dict(req.runtime_env or {})
        _validate_runtime_env(runtime_env)
        runtime_env = pip_env.normalize_runtime_env(runtime_env)  # a requirements file: on the head
        info = JobInfo(
            status=JobStatus.PENDING,
            entrypoint=req.entrypoint,
            start_time=_now_ms(),
            metadata=req.metadata or {},
            runtime_env=runtime_env,
            entrypoint_num_cpus=req.entrypoint_num_cpus,
            entrypoint_num_gpus=req.entrypoint_num_gpus,
            entrypoint_memory=req.entrypoint_memory,
            entrypoint_resources=req.entrypoint_resources,
            driver_node_id=self.node_id,
        )
        record = {
            "submission_id": sid,
            "info": info.to_json(),
            "log_path": os.path.join(self.log_dir, f"job-driver-{sid}.log"),
            "pid": None,
            "pid_create_time": None,
        }
        created = await self.control.kv_put(KV_NAMESPACE_JOB, self._key(sid), json.dumps(record).encode(), False)
        if not created:
            raise JobError(f"Job with submission_id {sid} already exists. Please use a different submission_id.")
        self._remember(sid, record)
        run = self._running[sid] = _Running()
        run.task = asyncio.get_running_loop().create_task(self._supervise(sid, record))
        return sid

    async def _update(self, sid: str, record: dict, **changes: Any) -> None:
        info = JobInfo.from_json(record["info"])
        for k, v in changes.items():
            setattr(info, k, v)
        if "status" in changes and "message" not in changes:
            info.message = None
            info.__post_init__()
        record["info"] = info.to_json()
        await self._put(sid, record)

    async def _supervise(self, sid: str, record: dict) -> None:
        run = self._running[sid]
        try:
            try:
                env, cwd = await self._prepare(record)
            except Exception as e:
                logger.exception("runtime_env setup failed for job %s", sid)
                await self._update(
                    sid, record, status=JobStatus.FAILED, end_time=_now_ms(),
                    error_type=JobErrorType.RUNTIME_ENV_SETUP_FAILURE,
                    message=f"runtime_env setup failed: {e}",
                )
                return
            if run.stop_requested:
                await self._update(sid, record, **self._stopped_status())
                return
            resources = _entrypoint_resources(record["info"])
            try:
                with open(record["log_path"], "ab") as log:
                    if resources:  # runs where its resources are, through an actor holding them
                        run.proc = await self._launch_with_resources(record, resources, env, cwd, log)
                    else:
                        run.proc = await asyncio.create_subprocess_shell(
                            record["info"]["entrypoint"],
                            stdin=asyncio.subprocess.DEVNULL,
                            stdout=log,
                            stderr=asyncio.subprocess.STDOUT,
                            cwd=cwd,
                            env=env,
                            start_new_session=True,
                        )
            except Exception as e:
                await self._update(
                    sid, record, status=JobStatus.FAILED, end_time=_now_ms(),
                    error_type=JobErrorType.JOB_ENTRYPOINT_COMMAND_START_ERROR,
                    message=f"Failed to start the job's entrypoint: {e}",
                )
                return
            record["pid"] = run.proc.pid
            try:
                record["pid_create_time"] = psutil.Process(run.proc.pid).create_time()
            except psutil.Error:
                pass
            if resources:
                node_id = await _started_on(run.proc)  # PENDING until placed and started
                if node_id is not None:
                    await self._update(sid, record, status=JobStatus.RUNNING, driver_node_id=node_id)
            else:
                await self._update(sid, record, status=JobStatus.RUNNING)
            code = await run.proc.wait()
            if run.terminating is not None:  # the whole process group must be gone first
                await run.terminating
            if run.stop_requested:
                await self._update(sid, record, **self._stopped_status(), driver_exit_code=code)
            elif code == 0:
                await self._update(sid, record, status=JobStatus.SUCCEEDED, end_time=_now_ms(), driver_exit_code=0)
            else:
                tail = _read_tail(record["log_path"], FAILED_LOG_TAIL_CHARS)
                reason = f"exit code {code}" if code > 0 else f"signal {-code} ({_signal_name(-code)})"
                await self._update(
                    sid, record, status=JobStatus.FAILED, end_time=_now_ms(), driver_exit_code=code,
                    error_type=JobErrorType.JOB_ENTRYPOINT_COMMAND_ERROR,
                    message=(
                        f"Job entrypoint command failed with {reason}, last available logs "
                        f"(truncated to {FAILED_LOG_TAIL_CHARS:,} chars):\n{tail}"
                    ),
                )
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the supervisor itself failed: never leave the job hanging
            logger.exception("supervising job %s failed", sid)
            try:
                await self._update(sid, record, status=JobStatus.FAILED, end_time=_now_ms(), message=f"Job supervisor failed: {e!r}")
            except Exception:
                logger.exception("could not record the failure of job %s", sid)
        finally:
            run.changed.set()
            self._running.pop(sid, None)

    async def _launch_with_resources(self, record: dict, resources: dict, env: dict, cwd: str | None, log):
        spec = {
            "entrypoint": record["info"]["entrypoint"],
            "submission_id": record["submission_id"],
            "resources": resources,
            "env": env,
            "cwd": cwd,
            "runtime_env": record["info"].get("runtime_env") or {},
            "address": self.control.address,
            "grace": STOP_GRACE_S,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "solray.dashboard.modules.job.entrypoint_actor",
            stdin=asyncio.subprocess.PIPE, stdout=log, stderr=asyncio.subprocess.PIPE,
            cwd=cwd, env=env, start_new_session=True,
        )
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
        return proc

    def _stopped_status(self) -> dict:
        if self._shutting_down:
            return {
                "status": JobStatus.FAILED,
                "end_time": _now_ms(),
                "error_type": JobErrorType.JOB_SUPERVISOR_ACTOR_DIED,
                "message": "The head node shut down while the job was running; its entrypoint was stopped.",
            }
        return {"status": JobStatus.STOPPED, "end_time": _now_ms()}

    async def _prepare(self, record: dict) -> tuple[dict, str | None]:
        """Resolve the runtime environment: the entrypoint's env vars and working folder."""
        runtime_env = dict(record["info"].get("runtime_env") or {})
        # Head-local folders become packages too: the job's tasks on other nodes fetch them.
        runtime_env = await packaging.upload_local_folders(runtime_env, self.control.kv_put)
        cwd = None
        working_dir = runtime_env.get("working_dir")
        if working_dir:
            cwd = await self._resolve_working_dir(working_dir)
        py_modules = [await self._resolve_working_dir(m) for m in runtime_env.get("py_modules") or ()]
        env = dict(os.environ)
        for k in ("SOLRAY_DASHBOARD_PORT",):
            env.pop(k, None)
        env.update({str(k): str(v) for k, v in (runtime_env.get("env_vars") or {}).items()})
        address = self.control.address
        env.update(
            RAY_ADDRESS=address,
            SOLRAY_ADDRESS=address,
            SOLRAY_TOKEN=self.token,
            SOLRAY_JOB_SUBMISSION_ID=record["submission_id"],
            RAY_JOB_SUBMISSION_ID=record["submission_id"],
            PYTHONUNBUFFERED="1",
        )
        # The job's drivers hand this runtime_env to their tasks and actors (package URIs:
        # each node unpacks them for its workers).
        driver_env = {k: v for k, v in runtime_env.items() if k in ("env_vars", "working_dir", "py_modules", "excludes")}
        paths = ([cwd] if cwd else []) + py_modules
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        # `python` in an entrypoint is the interpreter this cluster runs on, or that of the
        # job's pip environment (built here first; its tasks' workers use it too).
        env["PATH"] = os.pathsep.join(p for p in (os.path.dirname(sys.executable), env.get("PATH")) if p)
        if runtime_env.get("pip"):
            spec = runtime_env["pip"]
            log = os.path.join(self.log_dir, f"runtime_env_setup-{pip_env.env_hash(spec)}.log")
            try:
                env_dir = await asyncio.to_thread(pip_env.ensure, spec, pip_env.cache_root(self.session_dir), log)
            except pip_env.PipEnvError as e:
                raise RuntimeError(f"pip {spec['packages']}: {e}") from None
            env = pip_env.activate(env, env_dir)
            driver_env["pip"] = spec
        env["SOLRAY_JOB_RUNTIME_ENV"] = json.dumps(driver_env)
        return env, cwd

    async def _resolve_working_dir(self, uri: str) -> str:
        """A working_dir or py_module package, unpacked on the head once."""
        return await packaging.fetch_and_unpack(uri, self.control.kv_get, self.package_cache)

    # ------------------------------------------------------------------ stop / delete
    async def stop(self, sid: str) -> bool:
        """Ask a job to stop; True if it was still running (or pending)."""
        record = await self._get(sid)
        if record is None:
            raise JobError(f"Job {sid} does not exist", 404)
        if JobStatus(record["info"]["status"]).is_terminal():
            return False
        run = self._running.get(sid)
        if run is None:  # a record without a supervisor here: the head restarted under it
            return False
        self._stop_run(run)
        return True

    def _stop_run(self, run: _Running) -> None:
        run.stop_requested = True
        if run.proc is not None and run.terminating is None:
            run.terminating = asyncio.get_running_loop().create_task(self._terminate(run.proc.pid))

    @staticmethod
    async def _terminate(pgid: int) -> None:
        """SIGTERM the entrypoint's process group; SIGKILL what is left after the grace period."""
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while _group_alive(pgid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        _signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < deadline:  # SIGKILL takes effect
            await asyncio.sleep(0.01)

    async def delete(self, sid: str) -> bool:
        record = await self._get(sid)
        if record is None:
            raise JobError(f"Job {sid} does not exist", 404)
        status = JobStatus(record["info"]["status"])
        if not status.is_terminal():
            raise JobError(
                f"Attempted to delete job with id '{sid}', but it is in a non-terminal state {status}. "
                "Stop it first."
            )
        await self.control.kv_del(KV_NAMESPACE_JOB, self._key(sid))
        self._infos.pop(sid, None)
        self.version += 1
        return True

    # ------------------------------------------------------------------ logs
    async def logs(self, sid: str) -> str:
        record = await self._get(sid)
        if record is None:
            raise JobError(f"Job {sid} does not exist", 404)
        return await asyncio.to_thread(_read_all, record["log_path"])

    async def tail(self, sid: str):
        """Yield the log's new text as it is written, until the job ends and all is read."""
        record = await self._get(sid)
        if record is None:
            raise JobError(f"Job {sid} does not exist", 404)
        pos = 0
        while True:
            run = self._running.get(sid)
            event = run.changed if run is not None else None
            chunk = await asyncio.to_thread(_read_from, record["log_path"], pos)
            if chunk:
                pos += len(chunk)
                yield chunk.decode("utf-8", errors="replace")
                continue
            if run is None:
                record = self._infos.get(sid) or await self._get(sid)
                if record is None or JobStatus(record["info"]["status"]).is_terminal():
                    # One last read: output written just before the exit.
                    chunk = await asyncio.to_thread(_read_from, record["log_path"] if record else "", pos)
                    if chunk:
                        yield chunk.decode("utf-8", errors="replace")
                    return
            try:
                if event is not None:
                    await asyncio.wait_for(event.wait(), TAIL_POLL_S)
                else:
                    await asyncio.sleep(TAIL_POLL_S)
            except asyncio.TimeoutError:
                pass

    # ------------------------------------------------------------------ shutdown
    async def shutdown(self) -> None:
        """The head is going away: end every entrypoint it runs (jobs live with the cluster)."""
        self._shutting_down = True
        runs = list(self._running.values())
        for r in runs:
            self._stop_run(r)
        # Let the supervisors record the outcome while the control service is still up.
        tasks = [r.task for r in runs if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE_S + 5)


# ---------------------------------------------------------------------------- helpers
def _entrypoint_resources(info: dict) -> dict:
    """The resources a job's entrypoint asked for, as actor options (empty: none)."""
    out: dict = {}
    if info.get("entrypoint_num_cpus"):
        out["num_cpus"] = info["entrypoint_num_cpus"]
    if info.get("entrypoint_num_gpus"):
        out["num_gpus"] = info["entrypoint_num_gpus"]
    if info.get("entrypoint_memory"):
        out["memory"] = info["entrypoint_memory"]
    if info.get("entrypoint_resources"):
        out["resources"] = dict(info["entrypoint_resources"])
    return out


async def _started_on(proc: asyncio.subprocess.Process) -> str | None:
    """The node the launcher says the entrypoint started on; None if it exited first."""
    while True:
        line = await proc.stderr.readline()
        if not line:
            return None
        parts = line.decode(errors="replace").split()
        if len(parts) == 2 and parts[0] == "started":
            return parts[1]


def _validate_runtime_env(runtime_env: dict) -> None:
    env_vars = runtime_env.get("env_vars")
    if env_vars is not None and not (
        isinstance(env_vars, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items())
    ):
        raise TypeError("runtime_env['env_vars'] must be a dict of strings to strings")
    wd = runtime_env.get("working_dir")
    if wd is not None and not isinstance(wd, str):
        raise TypeError("runtime_env['working_dir'] must be a string")
    mods = runtime_env.get("py_modules")
    if mods is not None and not (isinstance(mods, list) and all(isinstance(m, str) for m in mods)):
        raise TypeError("runtime_env['py_modules'] must be a list of strings")
    unsupported = sorted(set(runtime_env) - SUPPORTED_RUNTIME_ENV_FIELDS)
    if unsupported:
        raise ValueError(
            f"runtime_env field(s) {unsupported} are not supported by this cluster's job manager "
            f"(supported: {sorted(SUPPORTED_RUNTIME_ENV_FIELDS)})."
        )


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _become_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        PR_SET_CHILD_SUBREAPER = 36
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies awaiting their reaper do not count)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue
    return False


def _kill_leftover(pid: int | None, create_time: float | None) -> None:
    """Kill the process group of a previous head's entrypoint, if that very process lives."""
    if not pid:
        return
    try:
        p = psutil.Process(pid)
        if create_time is not None and abs(p.create_time() - create_time) > 0.01:
            return  # the pid was reused by an unrelated process
    except psutil.Error:
        return
    _signal_group(pid, signal.SIGKILL)


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "unknown"


def _read_all(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _read_from(path: str, pos: int, limit: int = 1 << 20) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            return f.read(limit)
    except (FileNotFoundError, IsADirectoryError):
        return b""


def _read_tail(path: str, n: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
