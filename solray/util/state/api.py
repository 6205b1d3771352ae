"""The state API's functions (Ray's ``ray.util.state``): list, get and summarize what a
cluster runs.

Where the answer comes from, by ``address``:
  * omitted, in a process that called ``solray.init()``: the driver's own connection to
    the control service (its pending task events are sent first, so a task it just ran
    is listed);
  * ``http://...`` / ``https://...``: the dashboard's ``/api/v0/*`` REST API, with the
    cluster token (``SOLRAY_TOKEN``/``SOLRAY_AUTH_TOKEN``, or the local cluster file for
    that dashboard);
  * ``"auto"``, ``"host:port"`` (or ``RAY_ADDRESS``/``SOLRAY_ADDRESS``, else ``"auto"``):
    a direct connection to that cluster's control service.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import Any

from solray.util.state.common import (
    DEFAULT_LIMIT,
    DEFAULT_RPC_TIMEOUT,
    ID_COLUMNS,
    MAX_LIMIT_FROM_API_SERVER,
    SCHEMAS,
    ActorState,
    JobState,
    NodeState,
    ObjectState,
    PlacementGroupState,
    RayStateApiException,
    StateResource,
    SummaryResource,
    TaskState,
    WorkerState,
    resource_of,
)
from solray.util.state.source import StateSource


# ---------------------------------------------------------------------------- transports
def _run(coro):
    """Run a coroutine to completion from sync code, even under a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def go():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    t = threading.Thread(target=go, name="solray-state-api")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class _ControlTransport:
    """Queries through the control service: the driver's connection, or a one-shot one."""

    def __init__(self, address: str | None):
        self._address = address

    def call(self, make, timeout: float) -> Any:
        """``make(source)`` -> coroutine; run it against the control service."""
        from solray._private.worker import state as worker_state

        worker = worker_state.get_core_worker(required=False)
        if self._address is None and worker is not None:
            async def go():
                worker.task_events.flush()  # our own latest task states first
                return await make(StateSource(lambda m, p: worker.control.request(m, p)))

            return worker.run_sync(go(), timeout)
        from solray._private import cluster_files
        from solray._private.control.client import ControlClient

        address = self._address or os.environ.get("SOLRAY_ADDRESS") or os.environ.get("RAY_ADDRESS") or "auto"
        info = cluster_files.resolve(address)

        async def go_remote():
            client = ControlClient(info["control_address"], info["token"], timeout=timeout)
            try:
                return await make(StateSource(client.request))
            except OSError as e:
                raise ConnectionError(f"Could not connect to the solray cluster at {info['control_address']}: {e}") from e
            finally:
                client.close()

        return _run(asyncio.wait_for(go_remote(), timeout))

    def list(self, resource: StateResource, options: dict) -> dict:
        timeout = options.get("timeout") or DEFAULT_RPC_TIMEOUT
        return self.call(lambda s: s.list(resource, **options), timeout)

    def summary(self, resource: SummaryResource, timeout: float) -> dict:
        return self.call(lambda s: s.summary(resource, timeout=timeout), timeout)

    def timeline(self, job_id: str | None, timeout: float) -> list:
        return self.call(lambda s: s.timeline(job_id), timeout)


class StateApiClient:
    """The dashboard's state REST API (``GET /api/v0/<resource>``), as Ray's client calls it."""

    def __init__(self, address: str | None = None, cookies: dict | None = None, headers: dict | None = None):
        from solray.job_submission.sdk import auth_headers, resolve_address

        self._address = resolve_address(address)
        self._headers = auth_headers(self._address, headers, cookies)

    def _get(self, path: str, params: list[tuple[str, Any]], timeout: float) -> Any:
        query = urllib.parse.urlencode([(k, str(v).lower() if isinstance(v, bool) else v) for k, v in params])
        req = urllib.request.Request(f"{self._address}{path}?{query}", headers=self._headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            if e.code in (401, 403):
                from solray.exceptions import AuthenticationError

                raise AuthenticationError(
                    f"The state API at {self._address} refused the request ({e.code}): {text}\n"
                    "Set SOLRAY_TOKEN to the cluster's token or pass headers={'Authorization': 'Bearer <token>'}."
                ) from None
            try:
                msg = json.loads(text).get("msg") or text
            except ValueError:
                msg = text
            raise RayStateApiException(f"Failed to make request to {self._address}{path}: {e.code} {msg}") from None
        except (urllib.error.URLError, OSError) as e:
            raise ConnectionError(f"Failed to connect to the state API at {self._address}: {e}") from e
        answer = json.loads(body)
        if answer.get("result") is False:
            raise RayStateApiException(f"API server internal error: {answer.get('msg')}")
        return answer["data"]["result"]

    def list(self, resource: StateResource, options: dict) -> dict:
        params: list[tuple[str, Any]] = [
            ("limit", options.get("limit") if options.get("limit") is not None else MAX_LIMIT_FROM_API_SERVER),
            ("timeout", int(options.get("timeout") or DEFAULT_RPC_TIMEOUT)),
            ("detail", bool(options.get("detail"))),
            ("exclude_driver", bool(options.get("exclude_driver", True))),
        ]
        for key, predicate, value in options.get("filters") or ():
            params += [("filter_keys", key), ("filter_predicates", predicate), ("filter_values", value)]
        return self._get(f"/api/v0/{resource.value}", params, options.get("timeout") or DEFAULT_RPC_TIMEOUT)

    def summary(self, resource: SummaryResource, timeout: float) -> dict:
        return self._get(f"/api/v0/{resource.value}/summarize", [("timeout", int(timeout))], timeout)

    def timeline(self, job_id: str | None, timeout: float) -> list:
        req = urllib.request.Request(
            f"{self._address}/api/v0/tasks/timeline?" + urllib.parse.urlencode({"job_id": job_id or ""}),
            headers=self._headers,
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())


def _transport(address: str | None):
    if address and address.startswith(("http://", "https://")):
        return StateApiClient(address)
    return _ControlTransport(address)


# ---------------------------------------------------------------------------- the API
def _to_state(resource: StateResource, row: dict):
    return SCHEMAS[resource].from_dict(row)


def _check_response(resource: StateResource, response: dict, raise_on_missing_output: bool, explain: bool) -> None:
    partial = response.get("partial_failure_warning")
    truncated = response["total"] > response["num_after_truncation"]
    if raise_on_missing_output and partial:
        raise RayStateApiException(
            f"Failed to retrieve all {resource.value} from the cluster: {partial}. Pass "
            "raise_on_missing_output=False to get what was retrieved."
        )
    if raise_on_missing_output and truncated and resource != StateResource.TASKS:
        raise RayStateApiException(
            f"Failed to retrieve all {response['total']} {resource.value} from the cluster: only "
            f"{response['num_after_truncation']} were returned. Pass raise_on_missing_output=False "
            "to get what was retrieved."
        )
    if explain or truncated:
        for w in response.get("warnings") or ():
            warnings.warn(w, stacklevel=3)
    if explain and response["num_filtered"] > len(response["result"]):
        warnings.warn(
            f"Limit last {len(response['result'])} entries (Total {response['num_filtered']}). Use filters "
            "to reduce the amount of data to return or a higher limit to see all data.",
            stacklevel=3,
        )


def _list(
    resource: StateResource | str,
    address: str | None,
    filters: list | None,
    limit: int,
    timeout: int,
    detail: bool,
    raise_on_missing_output: bool,
    _explain: bool,
    exclude_driver: bool = True,
) -> list:
    resource = resource_of(resource)
    if filters is not None and not isinstance(filters, (list, tuple)):
        raise TypeError(f"filters must be a list of (key, predicate, value) tuples, got {type(filters).__name__}")
    options = {
        "filters": [tuple(f) for f in filters or ()],
        "limit": limit,
        "detail": detail,
        "timeout": timeout,
        "exclude_driver": exclude_driver,
    }
    from solray.util.state.rows import validate_filters

    validate_filters(resource, options["filters"])
    response = _transport(address).list(resource, options)
    _check_response(resource, response, raise_on_missing_output, _explain)
    return [_to_state(resource, r) for r in response["result"]]


def list_actors(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
                timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
                _explain: bool = False) -> list[ActorState]:
    """Actors in the cluster, e.g. ``list_actors(filters=[("state", "=", "ALIVE")])``."""
    return _list(StateResource.ACTORS, address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def list_placement_groups(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
                          timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False,
                          raise_on_missing_output: bool = True, _explain: bool = False) -> list[PlacementGroupState]:
    return _list(StateResource.PLACEMENT_GROUPS, address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def list_nodes(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
               timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
               _explain: bool = False) -> list[NodeState]:
    return _list(StateResource.NODES, address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def list_jobs(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
              timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
              _explain: bool = False) -> list[JobState]:
    return _list(StateResource.JOBS, address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def list_workers(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
                 timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
                 _explain: bool = False) -> list[WorkerState]:
    return _list(StateResource.WORKERS, address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def list_tasks(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
               timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
               _explain: bool = False) -> list[TaskState]:
    """Recent tasks (the control service keeps the newest 10,000), e.g.
    ``list_tasks(filters=[("state", "=", "FAILED")], detail=True)``."""
    return _list(StateResource.TASKS, address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def list_objects(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
                 timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
                 _explain: bool = False) -> list[ObjectState]:
    """Objects their owners hold references to, across every process of the cluster."""
    return _list(StateResource.OBJECTS, address, filters, limit, timeout, detail, raise_on_missing_output, _explain)


def _get_one(resource: StateResource, id: str, address: str | None, timeout: int, _explain: bool):
    if not isinstance(id, str):
        raise TypeError(f"the id must be a hex string, got {type(id).__name__}")
    found = _list(resource, address, [(ID_COLUMNS[resource], "=", id)], None, timeout, True, False, _explain)
    return found


def get_actor(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
              _explain: bool = False) -> ActorState | None:
    found = _get_one(StateResource.ACTORS, id, address, timeout, _explain)
    return found[0] if found else None


def get_node(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
             _explain: bool = False) -> NodeState | None:
    found = _get_one(StateResource.NODES, id, address, timeout, _explain)
    return found[0] if found else None


def get_placement_group(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
                        _explain: bool = False) -> PlacementGroupState | None:
    found = _get_one(StateResource.PLACEMENT_GROUPS, id, address, timeout, _explain)
    return found[0] if found else None


def get_worker(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
               _explain: bool = False) -> WorkerState | None:
    found = _get_one(StateResource.WORKERS, id, address, timeout, _explain)
    return found[0] if found else None


def get_task(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
             _explain: bool = False) -> TaskState | None:
    """A task by id (hex); the table keeps one entry per task with its latest attempt."""
    found = _get_one(StateResource.TASKS, id, address, timeout, _explain)
    return found[0] if found else None


def get_objects(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
                _explain: bool = False) -> list[ObjectState]:
    return _get_one(StateResource.OBJECTS, id, address, timeout, _explain)


def get_job(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
            _explain: bool = False) -> JobState | None:
    """A job by submission id or (driver) job id."""
    jobs = _list(StateResource.JOBS, address, None, None, timeout, True, False, _explain)
    for job in jobs:
        if id in (job.submission_id, job.job_id):
            return job
    return None


def _summary(resource: SummaryResource, address: str | None, timeout: int, raise_on_missing_output: bool,
             _explain: bool) -> dict:
    response = _transport(address).summary(resource, timeout)
    if raise_on_missing_output and response.get("partial_failure_warning"):
        raise RayStateApiException(
            f"Failed to retrieve all {resource.value} from the cluster: {response['partial_failure_warning']}"
        )
    if _explain:
        for w in response.get("warnings") or ():
            warnings.warn(w, stacklevel=3)
    return response["result"]["node_id_to_summary"]


def summarize_tasks(address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
                    raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    """``{"cluster": {"summary": {name: {"func_or_class_name", "type", "state_counts"}}, "total_tasks", ...}}``."""
    return _summary(SummaryResource.TASKS, address, timeout, raise_on_missing_output, _explain)


def summarize_actors(address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
                     raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    """``{"cluster": {"summary": {class_name: {"class_name", "state_counts"}}, "total_actors", ...}}``."""
    return _summary(SummaryResource.ACTORS, address, timeout, raise_on_missing_output, _explain)


def summarize_objects(address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
                      raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    return _summary(SummaryResource.OBJECTS, address, timeout, raise_on_missing_output, _explain)


def timeline(address: str | None = None, job_id: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT) -> list[dict]:
    """Chrome trace events of the tasks that ran (``solray timeline`` writes them to a file)."""
    return _transport(address).timeline(job_id, timeout)
