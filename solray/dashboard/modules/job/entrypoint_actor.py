"""Entrypoints that ask for resources (``entrypoint_num_cpus/gpus/memory/resources``).

Such an entrypoint runs where those resources are, and holds them while it runs: the job
manager starts this module as a small *launcher* (a solray driver, on the head) that
creates an ``EntrypointSupervisor`` actor with the requested resources. The actor, on its
node, starts the entrypoint through a *guard* process and streams its output back; the
launcher writes it to the job's log on the head (so the Jobs API reads logs as for any
job) and exits with the entrypoint's exit status.

    job manager ──stdin: spec──▶ launcher (driver) ──actor──▶ supervisor (worker, on the
      node with the resources) ──▶ guard ──▶ sh -c ENTRYPOINT (its own process group)

Stopping: the job manager SIGTERMs the launcher, which asks the actor to stop; the guard
SIGTERMs the entrypoint's group and SIGKILLs it after the grace period. If the launcher
dies, its actor goes with it; the guard notices its parent's death (PR_SET_PDEATHSIG) and
kills the group, so no entrypoint outlives its job. The launcher tells the job manager on
its stderr when the entrypoint started (``started <node id>``): until then the job is
PENDING (for example while no node has the resources).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from solray._private.runtime_env import packaging
from solray._private.runtime_env import pip as pip_env

STARTED = "started"


# ---------------------------------------------------------------------------- the actor
class EntrypointSupervisor:
    """Runs one job's entrypoint on this node (an actor holding the entrypoint's resources)."""

    def __init__(self) -> None:
        self._guard: subprocess.Popen | None = None
        self._stop = False

    def run(self, spec: dict):
        """Stream ``{"started": node id}``, then output chunks (bytes), then ``{"exit": code}``."""
        import solray

        env, cwd = _node_env(spec)
        if self._stop:
            yield {"exit": -signal.SIGTERM}
            return
        self._guard = subprocess.Popen(
            [sys.executable, "-m", __name__, "--guard", str(os.getpid()), str(spec.get("grace", 3)), spec["entrypoint"]],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True,
        )
        yield {STARTED: solray.get_runtime_context().get_node_id(), "pid": self._guard.pid}
        fd = self._guard.stdout.fileno()
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            yield chunk
        yield {"exit": self._guard.wait()}

    def stop(self) -> None:
        self._stop = True
        if self._guard is not None and self._guard.poll() is None:
            self._guard.send_signal(signal.SIGTERM)  # the guard stops the entrypoint's group


def _node_env(spec: dict) -> tuple[dict, str | None]:
    """The entrypoint's environment and folder on this node: the job manager resolved them
    on the head; folders and virtualenvs that do not exist here are made here."""
    from solray._private.api import DRIVER_NODE_ENV
    from solray._private.worker import state

    env = dict(spec["env"])
    env[DRIVER_NODE_ENV] = state.get_core_worker().node_id  # its drivers attach to this node
    cwd = spec.get("cwd")
    runtime_env = spec.get("runtime_env") or {}
    packages = json.loads(env.get("SOLRAY_JOB_RUNTIME_ENV") or "{}")  # as package URIs
    if cwd and not os.path.isdir(cwd) and packages.get("working_dir"):
        cwd = _unpack_here(packages["working_dir"])
    here = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.isdir(p)]
    modules = [_unpack_here(uri) for uri in packages.get("py_modules") or ()]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(([cwd] if cwd else []) + modules + here))
    venv = env.get("VIRTUAL_ENV")
    if runtime_env.get("pip") and venv and not os.path.isdir(venv):
        session_dir = state.get_core_worker().session_dir
        built = pip_env.ensure(runtime_env["pip"], pip_env.cache_root(session_dir),
                               os.path.join(session_dir, "logs", f"runtime_env_setup-{pip_env.env_hash(runtime_env['pip'])}.log"))
        env["PATH"] = env.get("PATH", "").replace(os.path.join(venv, "bin"), os.path.join(built, "bin"))
        env["VIRTUAL_ENV"] = built
    return env, cwd


def _unpack_here(uri: str) -> str:
    from solray._private.worker import state

    worker = state.get_core_worker()
    fetch = packaging.fetch_and_unpack(
        uri, lambda ns, key: worker.control.request("kv_get", [ns, key]), packaging.cache_dir(worker.session_dir)
    )
    return worker.run_sync(fetch, 60)


# ---------------------------------------------------------------------------- the guard
def guard(parent_pid: int, grace: float, entrypoint: str) -> int:
    """Run ``entrypoint`` in its own process group; on SIGTERM (or the parent's death) stop
    the group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the line above
        return 1
    child = subprocess.Popen(entrypoint, shell=True, start_new_session=True)
    stopping = threading.Event()

    def on_term(signum, frame):
        if stopping.is_set():
            return
        stopping.set()
        _killpg(child.pid, signal.SIGTERM)

        def escalate():
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _group_alive(child.pid):
                time.sleep(0.05)
            _killpg(child.pid, signal.SIGKILL)

        threading.Thread(target=escalate, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    code = child.wait()
    if stopping.is_set():  # the whole group goes before we report
        deadline = time.monotonic() + grace + 5
        while _group_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return code


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _exit_like(code: int) -> None:
    """Exit with ``code`` as returned by ``wait`` (negative: killed by that signal)."""
    sys.stdout.flush()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)
        os._exit(128 - code)
    os._exit(code)


# ---------------------------------------------------------------------------- the launcher
def launch(spec: dict, control) -> int:
    """Place the supervisor actor with the entrypoint's resources; relay its output."""
    import solray

    # Our own driver is not the job's: the entrypoint's driver claims the submission.
    for key in ("SOLRAY_JOB_SUBMISSION_ID", "RAY_JOB_SUBMISSION_ID", "SOLRAY_JOB_RUNTIME_ENV"):
        os.environ.pop(key, None)
    from solray.util.state.source import INTERNAL_JOB_NAMESPACE

    solray.init(address=spec["address"], log_to_driver=False, namespace=INTERNAL_JOB_NAMESPACE,
                configure_logging=False)
    options: dict = {"max_concurrency": 2, "name": f"entrypoint-{spec['submission_id']}", "max_restarts": 0}
    res = spec["resources"]
    for key in ("num_cpus", "num_gpus", "memory", "resources"):
        if res.get(key):
            options[key] = res[key]
    options.setdefault("num_cpus", 0)
    # By its module's name (this file may run as __main__): workers import it by reference.
    from solray.dashboard.modules.job.entrypoint_actor import EntrypointSupervisor as Supervisor

    actor = solray.remote(Supervisor).options(**options).remote()

    def on_term(signum, frame):
        threading.Thread(target=lambda: actor.stop.remote(), daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    out = sys.stdout.buffer
    code = 1
    for ref in actor.run.remote(spec):
        item = solray.get(ref)
        if isinstance(item, bytes):
            out.write(item)
            out.flush()
        elif STARTED in item:
            control.write(f"{STARTED} {item[STARTED]}\n")
            control.flush()
        elif "exit" in item:
            code = item["exit"]
    solray.shutdown()
    return code


def main(argv: list[str]) -> None:
    if argv[:1] == ["--guard"]:
        _exit_like(guard(int(argv[1]), float(argv[2]), argv[3]))
    spec = json.loads(sys.stdin.read())
    control = os.fdopen(os.dup(2), "w")  # the job manager's channel; our own messages go to the log
    os.dup2(1, 2)
    try:
        code = launch(spec, control)
    except Exception as e:
        print(f"Could not run the entrypoint with resources {spec.get('resources')}: {type(e).__name__}: {e}", flush=True)
        code = 1
    _exit_like(code)


if __name__ == "__main__":
    main(sys.argv[1:])
