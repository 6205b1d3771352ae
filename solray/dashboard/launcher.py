"""Starting the dashboard process from the head node process.

The dashboard is optional: without its packages (``pip install 'solray[default]'``) or
with its port taken, the head still runs and reports why the dashboard did not start.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

START_TIMEOUT_S = 30.0


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
