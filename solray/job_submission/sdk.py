"""``JobSubmissionClient``: submit and watch jobs over the dashboard's Jobs REST API.

Speaks the same REST API as Ray's client (so it also drives a Ray cluster). Plain HTTP
calls use the standard library; following logs uses a WebSocket (the ``websockets``
package of ``solray[default]``), or polling where that package is missing.

Authentication: every request carries ``Authorization: Bearer <token>``. The token is
the one in ``headers=`` if given, else ``SOLRAY_TOKEN``/``SOLRAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN``,
else the token of a cluster started on this machine whose dashboard is at ``address``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

from solray._private.runtime_env import packaging
from solray._private.runtime_env import pip as pip_env
from solray.exceptions import AuthenticationError
from solray.job_submission.models import JobDetails, JobStatus

DEFAULT_DASHBOARD_ADDRESS = "http://127.0.0.1:8265"


# ---------------------------------------------------------------------------- addresses
def _cluster_infos() -> list[dict]:
    from solray._private import cluster_files

    root = cluster_files.root()
    out = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if name.startswith("cluster-") and name.endswith(".json") or name == "current_cluster.json":
            try:
                with open(os.path.join(root, name)) as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                continue
    return out


def _dashboard_from_control(control_address: str) -> str | None:
    """The dashboard URL of the cluster whose control service is at ``control_address``."""
    for info in _cluster_infos():
        if info.get("control_address") == control_address and info.get("dashboard_url"):
            return info["dashboard_url"]
    try:
        from solray._private import cluster_files
        from solray._private.api import query_control
        from solray.dashboard.server import KV_KEY_URL, KV_NAMESPACE_DASHBOARD

        token = cluster_files.resolve(control_address)["token"]
        url = query_control(control_address, token, "kv_get", [KV_NAMESPACE_DASHBOARD, KV_KEY_URL], timeout=3)
        return url.decode() if url else None
    except Exception:
        return None


def resolve_address(address: str | None) -> str:
    """The dashboard's HTTP URL for a URL, a cluster (control) address, or ``"auto"``.

    ``address`` wins; else ``RAY_API_SERVER_ADDRESS``, ``SOLRAY_ADDRESS``, ``RAY_ADDRESS``;
    else the cluster started on this machine, else ``http://127.0.0.1:8265``.
    """
    if not address:
        address = (
            os.environ.get("RAY_API_SERVER_ADDRESS")
            or os.environ.get("SOLRAY_ADDRESS")
            or os.environ.get("RAY_ADDRESS")
        )
    if not address or address == "auto":
        current = [i for i in _cluster_infos() if i.get("dashboard_url")]
        if current:
            return current[-1]["dashboard_url"] if address == "auto" else _current_dashboard(current)
        if address == "auto":
            raise ConnectionError("Could not find a running solray cluster with a dashboard on this machine.")
        return DEFAULT_DASHBOARD_ADDRESS
    if address.startswith(("http://", "https://")):
        return address.rstrip("/")
    for prefix in ("ray://", "solray://"):
        address = address.removeprefix(prefix)
    return _dashboard_from_control(address) or f"http://{address}"


def _current_dashboard(infos: list[dict]) -> str:
    from solray._private import cluster_files

    try:
        with open(os.path.join(cluster_files.root(), "current_cluster.json")) as f:
            url = json.load(f).get("dashboard_url")
            if url:
                return url
    except (OSError, ValueError):
        pass
    return infos[-1]["dashboard_url"]


def auth_headers(address: str, headers: dict | None, cookies: dict | None) -> dict[str, str]:
    """Request headers for the dashboard at ``address``: the caller's, plus the cluster token
    (from the environment or this machine's token files) unless they carry one already."""
    out = {str(k): str(v) for k, v in (headers or {}).items()}
    if not any(k.lower() in ("authorization", "x-ray-authorization") for k in out):
        token = (
            os.environ.get("SOLRAY_TOKEN")
            or os.environ.get("SOLRAY_AUTH_TOKEN")
            or os.environ.get("RAY_AUTH_TOKEN")
            or _local_token_for(address)
        )
        if token:
            out["Authorization"] = f"Bearer {token}"
    if cookies:
        out["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return out


def _local_token_for(url: str) -> str | None:
    for info in _cluster_infos():
        if info.get("dashboard_url", "").rstrip("/") == url and info.get("token"):
            return info["token"]
    from solray._private import cluster_files

    return cluster_files.stored_token(dashboard_url=url)  # what a head of this user stored


# ---------------------------------------------------------------------------- client
class JobSubmissionClient:
    """A client of a cluster's Jobs API (Ray's ``ray.job_submission.JobSubmissionClient``)."""

    def __init__(
        self,
        address: str | None = None,
        create_cluster_if_needed: bool = False,
        cookies: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        verify: str | bool | None = True,
    ):
        for name, v in (("cookies", cookies), ("metadata", metadata), ("headers", headers)):
            if v is not None and not isinstance(v, dict):
                raise TypeError(f"{name} must be a dict, got {type(v)}")
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be a string, got {type(address)}")
        self._address = resolve_address(address)
        self._cookies = dict(cookies or {})
        self._default_metadata = dict(metadata or {})
        self._headers = auth_headers(self._address, headers, self._cookies)
        self._ssl = _ssl_context(verify)
        self._server_version: dict | None = None
        self._check_connection()

    # ------------------------------------------------------------------ HTTP
    def _request(self, method: str, path: str, *, json_data: Any = None, data: bytes | None = None) -> tuple[int, bytes]:
        headers = dict(self._headers)
        if json_data is not None:
            data = json.dumps(json_data).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self._address + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60, context=self._ssl) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            raise ConnectionError(f"Failed to connect to the Jobs API at {self._address}: {e}") from e
        if status in (401, 403):
            raise AuthenticationError(
                f"The Jobs API at {self._address} refused the request ({status}): {body.decode(errors='replace')}\n"
                "Pass headers={'Authorization': 'Bearer <token>'} or set SOLRAY_TOKEN to the cluster's token."
            )
        return status, body

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = self._request(method, path, **kwargs)
        if status != 200:
            raise RuntimeError(f"Request failed with status code {status}: {body.decode(errors='replace')}.")
        return json.loads(body) if body else None

    def _check_connection(self) -> None:
        self._server_version = self._json("GET", "/api/version")

    def get_version(self) -> str:
        return self._json("GET", "/api/version")["version"]

    def get_address(self) -> str:
        return self._address

    # ------------------------------------------------------------------ packages
    def _upload_if_needed(self, path: str, excludes: list[str] | None, include_parent_dir: bool = False) -> str:
        uri, data = packaging.package_local_path(path, excludes, include_parent_dir=include_parent_dir)
        _, name = packaging.parse_uri(uri)
        status, body = self._request("GET", f"/api/packages/{packaging.GCS_PROTOCOL}/{name}")
        if status == 404:
            self._json("PUT", f"/api/packages/{packaging.GCS_PROTOCOL}/{name}", data=data)
        elif status != 200:
            raise RuntimeError(f"Request failed with status code {status}: {body.decode(errors='replace')}.")
        return uri

    def _upload_runtime_env(self, runtime_env: dict) -> dict:
        # A pip requirements file is read here, where it is (as Ray's client does).
        runtime_env = pip_env.normalize_runtime_env(runtime_env) or {}
        excludes = runtime_env.get("excludes")
        wd = runtime_env.get("working_dir")
        if wd is not None:
            wd = os.fspath(wd)
            if not packaging.is_package_uri(wd):
                runtime_env["working_dir"] = self._upload_if_needed(wd, excludes)
        if runtime_env.get("py_modules"):
            runtime_env["py_modules"] = [
                m if packaging.is_package_uri(os.fspath(m)) else self._upload_if_needed(os.fspath(m), excludes, True)
                for m in runtime_env["py_modules"]
            ]
        return runtime_env

    # ------------------------------------------------------------------ jobs
    def submit_job(
        self,
        *,
        entrypoint: str,
        job_id: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        submission_id: str | None = None,
        entrypoint_num_cpus: int | float | None = None,
        entrypoint_num_gpus: int | float | None = None,
        entrypoint_memory: int | None = None,
        entrypoint_resources: dict[str, float] | None = None,
        entrypoint_label_selector: dict[str, str] | None = None,
    ) -> str:
        """Submit a job; return its submission id at once (the job runs asynchronously)."""
        runtime_env = self._upload_runtime_env(copy.deepcopy(runtime_env or {}))
        body = {
            "entrypoint": entrypoint,
            "submission_id": submission_id or job_id,
            "runtime_env": runtime_env,
            "metadata": {**(metadata or {}), **self._default_metadata},
            "entrypoint_num_cpus": entrypoint_num_cpus,
            "entrypoint_num_gpus": entrypoint_num_gpus,
            "entrypoint_memory": entrypoint_memory,
            "entrypoint_resources": entrypoint_resources,
            "entrypoint_label_selector": entrypoint_label_selector,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return self._json("POST", "/api/jobs/", json_data=body)["submission_id"]

    def stop_job(self, job_id: str) -> bool:
        """Ask a job to stop (SIGTERM, then SIGKILL); True if it was running."""
        return self._json("POST", f"/api/jobs/{_quote(job_id)}/stop")["stopped"]

    def delete_job(self, job_id: str) -> bool:
        """Delete a finished job's record (its log file stays on the head)."""
        return self._json("DELETE", f"/api/jobs/{_quote(job_id)}")["deleted"]

    def get_job_info(self, job_id: str) -> JobDetails:
        return JobDetails.from_json(self._json("GET", f"/api/jobs/{_quote(job_id)}"))

    def list_jobs(self) -> list[JobDetails]:
        return [JobDetails.from_json(d) for d in self._json("GET", "/api/jobs/")]

    def get_job_status(self, job_id: str) -> JobStatus:
        return self.get_job_info(job_id).status

    def get_job_logs(self, job_id: str) -> str:
        return self._json("GET", f"/api/jobs/{_quote(job_id)}/logs")["logs"]

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """Yield chunks of the job's output as it is written, until the job ends."""
        try:
            import websockets
        except ImportError:
            async for chunk in self._poll_logs(job_id):
                yield chunk
            return
        url = "ws" + self._address[len("http"):] + f"/api/jobs/{_quote(job_id)}/logs/tail"
        kwargs: dict[str, Any] = {"additional_headers": self._headers, "max_size": None}
        if url.startswith("wss://"):
            kwargs["ssl"] = self._ssl or True
        try:
            async with websockets.connect(url, **kwargs) as ws:
                async for message in ws:
                    yield message if isinstance(message, str) else message.decode(errors="replace")
        except websockets.InvalidStatus as e:
            code = e.response.status_code
            if code in (401, 403):
                raise AuthenticationError(f"The Jobs API at {self._address} refused the log stream ({code}).") from None
            raise RuntimeError(f"Could not follow the logs of job {job_id}: HTTP {code}.") from None
        except websockets.ConnectionClosedError as e:
            raise RuntimeError(f"The log stream of job {job_id} closed unexpectedly: {e}") from None

    async def _poll_logs(self, job_id: str) -> AsyncIterator[str]:
        seen = 0
        while True:
            status = await asyncio.to_thread(self.get_job_status, job_id)
            logs = await asyncio.to_thread(self.get_job_logs, job_id)
            if len(logs) > seen:
                yield logs[seen:]
                seen = len(logs)
            if status.is_terminal():
                return
            await asyncio.sleep(0.5)


def _quote(job_id: str) -> str:
    return urllib.parse.quote(str(job_id), safe="")


def _ssl_context(verify: str | bool | None) -> ssl.SSLContext | None:
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        if os.path.isfile(verify):
            return ssl.create_default_context(cafile=verify)
        raise FileNotFoundError(f"Path to CA certificates: '{verify}', does not exist.")
    return None
