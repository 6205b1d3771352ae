"""Workers for tasks and actors with a ``pip`` runtime environment.

The zygote forks workers of the cluster's own interpreter; a pip environment needs the
interpreter of its virtualenv, so such workers start as ``<venv>/bin/python -m
solray._private.worker.spawn`` (an interpreter start, ~0.5 s, instead of a fork). The
environment is built first, once per node and spec: concurrent starts for one spec share
one build, and a failed build fails the leases waiting for it with pip's output.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from typing import TYPE_CHECKING

import msgpack

from solray._private.runtime_env import pip as pip_env

if TYPE_CHECKING:
    from solray._private.node.daemon import NodeDaemon
    from solray._private.node.records import WorkerRecord

logger = logging.getLogger(__name__)


class EnvWorkerSpawner:
    def __init__(self, daemon: NodeDaemon):
        self.daemon = daemon
        self.root = pip_env.cache_root(daemon.session_dir)
        self._builds: dict[str, asyncio.Future] = {}  # env hash -> env folder (being built)
        self._procs: set[asyncio.subprocess.Process] = set()

    def log_path(self, spec: dict) -> str:
        return os.path.join(self.daemon.session_dir, "logs", f"runtime_env_setup-{pip_env.env_hash(spec)}.log")

    def start(self, w: WorkerRecord, cfg: dict, spec: dict) -> None:
        asyncio.get_running_loop().create_task(self._start(w, cfg, spec))

    async def _env_dir(self, spec: dict) -> str:
        h = pip_env.env_hash(spec)
        fut = self._builds.get(h)
        if fut is None:
            fut = self._builds[h] = asyncio.ensure_future(
                asyncio.to_thread(pip_env.ensure, spec, self.root, self.log_path(spec))
            )
            # A failure is not remembered: the next start builds again (the error may pass).
            fut.add_done_callback(lambda f: self._builds.pop(h, None) if f.exception() else None)
        return await asyncio.shield(fut)

    async def _start(self, w: WorkerRecord, cfg: dict, spec: dict) -> None:
        try:
            env_dir = await self._env_dir(spec)
        except Exception as e:
            msg = f"runtime_env pip {spec['packages']} could not be set up on node {self.daemon.node_id}: {e}"
            logger.error("%s", msg)
            self.daemon.env_setup_failed(w, msg)
            return
        if w.state == "dead" or self.daemon.stopping:
            return
        env = {k: v for k, v in os.environ.items() if k != "SOLRAY_TOKEN"}
        env = pip_env.activate(env, env_dir)
        try:
            with open(self.log_path(spec), "ab") as err:  # what the interpreter says before logging starts
                proc = await asyncio.create_subprocess_exec(
                    pip_env.python_of(env_dir), "-m", "solray._private.worker.spawn",
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                    env=env, start_new_session=True,
                )
        except OSError as e:
            self.daemon.env_setup_failed(w, f"could not start a worker in the pip environment {env_dir}: {e}")
            return
        w.pid = proc.pid
        proc.stdin.write(msgpack.packb(cfg))
        proc.stdin.close()
        self._procs.add(proc)
        try:
            await proc.wait()  # reaps it; the daemon notices the exit by its connection or pid
        finally:
            self._procs.discard(proc)
