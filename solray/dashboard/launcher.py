"""Starting the dashboard process from the head node process.

The dashboard is optional: without its packages (``pip install 'solray[default]'``) or
with its port taken, the head still runs and reports why the dashboard did not start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time

START_TIMEOUT_S = 30.0
# A dashboard that keeps dying is left down (and says so) rather than restarted forever.
MAX_RESTARTS_PER_MINUTE = 5

logger = logging.getLogger(__name__)


class DashboardSupervisor:
    """Keeps the head's dashboard running: a dashboard process that exits without being
    asked to is started again on the same port (the Jobs API and UI come back; jobs it
    was supervising are marked FAILED with the reason, never silently lost)."""

    def __init__(self, **dashboard_args):
        self.args = dashboard_args
        self.proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._watcher: asyncio.Task | None = None

    async def start(self, wait: bool = True) -> dict:
        """Start the dashboard. ``wait=False`` (an embedded cluster: ``init()`` should not
        wait for it) returns its URL at once and reports a failure to start in the log."""
        if not wait:
            self._watcher = asyncio.get_running_loop().create_task(self._start_then_watch())
            return {"dashboard_url": f"http://{self.args['host']}:{self.args['port']}"}
        self.proc, info = await start_dashboard(**self.args)
        if self.proc is not None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        return info

    async def _start_then_watch(self) -> None:
        self.proc, info = await start_dashboard(**self.args)
        if self.proc is None:
            logger.error("%s", info.get("dashboard_error"))
            return
        await self._watch()

    async def _watch(self) -> None:
        restarts: list[float] = []
        while not self._stopping:
            code = await self.proc.wait()
            if self._stopping:
                return
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > MAX_RESTARTS_PER_MINUTE:
                logger.error("the dashboard exited (code %s) %d times in a minute; leaving it down", code, len(restarts))
                return
            logger.error("the dashboard exited unexpectedly (code %s); restarting it", code)
            proc, info = await start_dashboard(**self.args)
            if proc is None:
                logger.error("%s", info.get("dashboard_error"))
                await asyncio.sleep(1.0)
                continue
            self.proc = proc

    async def stop(self) -> None:
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
        await stop_dashboard(self.proc)


async def start_dashboard(
    *, host: str, port: int, control_address: str, session_dir: str, node_id: str | None, token: str
) -> tuple[asyncio.subprocess.Process | None, dict]:
    """Start the dashboard; return it and ``{"dashboard_url": ...}`` or ``{"dashboard_error": ...}``."""
    cmd = [
        sys.executable, "-m", "solray.dashboard.server",
        "--host", host, "--port", str(port),
        "--control-address", control_address,
        "--session-dir", session_dir,
        "--watch-stdin",
    ]
    if node_id:
        cmd += ["--node-id", node_id]
    log = os.path.join(session_dir, "logs", "dashboard.err")
    with open(log, "ab") as err:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,  # closes when the head dies: the dashboard follows
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=dict(os.environ, SOLRAY_TOKEN=token),
        )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
    except asyncio.TimeoutError:
        line = b""
    if line:
        ready = json.loads(line)
        return proc, {"dashboard_url": ready["dashboard_url"], "dashboard_pid": ready["pid"]}
    if proc.returncode is None:
        proc.kill()
    await proc.wait()
    tail = ""
    try:
        with open(log, "rb") as f:
            tail = f.read()[-2000:].decode(errors="replace").strip().splitlines()[-1]
    except (OSError, IndexError):
        pass
    if "ModuleNotFoundError" in tail:
        tail += " (the dashboard needs: pip install 'solray[default]')"
    return None, {"dashboard_error": f"The dashboard did not start on {host}:{port}: {tail or 'see ' + log}"}


async def stop_dashboard(proc: asyncio.subprocess.Process | None, timeout: float = 10.0) -> None:
    if proc is None or proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
