"""Entry point of a worker process (forked by the node's zygote)."""

from __future__ import annotations

import os
import signal
import sys

from solray._private.worker import logs, state
from solray._private.worker.core_worker import WORKER, CoreWorker
from solray._private.worker.executor import Executor


def worker_main(cfg: dict) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.update(cfg.get("env_vars") or {})
    # The driver's import path first, so modules next to the driver's script resolve.
    missing = [p for p in cfg.get("sys_path") or () if p not in sys.path]
    # ...except its site folders: in a worker of a pip runtime_env they come after the
    # virtualenv's own (its packages win over the base versions).
    site_dirs = [p for p in missing if os.path.basename(p) in ("site-packages", "dist-packages")]
    sys.path[:0] = [p for p in missing if p not in site_dirs]
    sys.path += site_dirs
    # runtime_env working_dir and py_modules (folders on this node, as the daemon unpacked
    # them): tasks run in the first and import from both, as Ray's do.
    runtime_env = cfg.get("runtime_env") or {}
    for folder in runtime_env.get("py_modules") or ():
        if os.path.isdir(folder) and folder not in sys.path:
            sys.path.insert(0, folder)
    working_dir = runtime_env.get("working_dir")
    if working_dir and os.path.isdir(working_dir):
        os.chdir(working_dir)
        if working_dir not in sys.path:
            sys.path.insert(0, working_dir)
    os.environ["SOLRAY_WORKER_ID"] = cfg["worker_id"]
    pid = os.getpid()
    current = {}
    log_path = os.path.join(cfg["session_dir"], "logs", f"worker-{cfg['worker_id'][:12]}-{pid}.log")
    logs.install(log_path, lambda: f"{current['w'].context.task_name or 'worker'} pid={pid}")
    worker = current["w"] = CoreWorker(
        mode=WORKER,
        token=cfg["token"],
        node_id=cfg["node_id"],
        node_ip=cfg["node_ip"],
        daemon_address=cfg["daemon_address"],
        control_address=cfg["control_address"],
        shm_dir=cfg["shm_dir"],
        session_dir=cfg["session_dir"],
        job_id=cfg["job_id"],
        namespace=cfg.get("namespace"),
        worker_id=cfg["worker_id"],
        driver_address=cfg.get("driver_address"),
        runtime_env=cfg.get("runtime_env"),
    )
    if cfg.get("log_to_driver", True) and worker.driver_address:
        logs.set_sender(lambda _=None: worker.schedule(lambda: _send_logs(worker)))
    state.set_core_worker(worker)
    worker.inherited_env_vars = dict(cfg.get("task_env_vars") or {})
    worker.inherited_pip = cfg.get("task_pip")
    worker.inherited_packages = cfg.get("task_packages")
    worker.executor = Executor(worker)
    signal.signal(signal.SIGINT, worker.executor.on_sigint)
    worker.on_daemon_lost = lambda: os._exit(1)
    try:
        worker.start()
    except Exception:
        os._exit(1)
    worker.executor.run_forever()
    os._exit(0)


def _send_logs(worker: CoreWorker) -> None:
    batch = logs.take_pending()
    if not batch:
        return

    async def send():
        try:
            conn = await worker.peer(worker.driver_address)
            conn.notify("logs", batch)
        except ConnectionError:
            pass  # the driver is gone; the log file keeps the output

    worker.loop.create_task(send())
