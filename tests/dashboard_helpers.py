"""A real head with its dashboard for the state API, metrics and web UI tests.

``DashboardHead`` runs ``solray start --head`` under a folder of its own (``SOLRAY_TMPDIR``)
and connects this test process to it as a driver, so tests see the same cluster through
the driver-side API, the dashboard's HTTP API, the CLI and a browser.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import solray


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOLRAY_", "RAY_"))}
    return {**env, **extra}


def run_cli(args: list[str], env: dict, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    # Files, not pipes: `solray start` leaves node processes holding its output open.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run([sys.executable, "-m", "solray.cli.main", *args], env=env, stdout=out, stderr=err,
                              timeout=timeout)
        out.seek(0)
        err.seek(0)
        proc.stdout, proc.stderr = out.read(), err.read()
    if check and proc.returncode != 0:
        raise AssertionError(f"solray {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


class DashboardHead:
    def __init__(self, tmp: str, num_cpus: int = 2, connect: bool = True):
        self.tmp = str(tmp)
        self.env = clean_env(SOLRAY_TMPDIR=self.tmp)
        port = free_port()
        run_cli(["start", "--head", "--port", "0", "--dashboard-port", str(port), "--num-cpus", str(num_cpus)], self.env)
        with open(os.path.join(self.tmp, "current_cluster.json")) as f:
            self.info = json.load(f)
        self.url = self.info["dashboard_url"]
        self.token = self.info["token"]
        self.address = self.info["control_address"]
        self._saved_tmpdir = os.environ.get("SOLRAY_TMPDIR")
        os.environ["SOLRAY_TMPDIR"] = self.tmp  # `address="auto"` and tokens resolve to this head
        if connect:
            solray.init(address=self.address)

    def get(self, path: str, token: str | None = "default", timeout: float = 30) -> tuple[int, bytes, dict]:
        """GET a dashboard path: (status, body, headers); ``token=None`` sends none."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        req = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def get_json(self, path: str):
        status, body, _ = self.get(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def stop(self) -> None:
        if solray.is_initialized():
            solray.shutdown()
        run_cli(["stop"], self.env, check=False)
        if self._saved_tmpdir is None:
            os.environ.pop("SOLRAY_TMPDIR", None)
        else:
            os.environ["SOLRAY_TMPDIR"] = self._saved_tmpdir
