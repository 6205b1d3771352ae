"""Finding and reading a cluster's log files (``solray logs``, ``/api/v0/logs``).

Each node daemon serves the files of its own ``logs`` folder (``list_logs``/``read_log``);
this asks the control service which node holds what and reads from that node's daemon.
A log is named by file (on a node, the head by default) or by what wrote it: an actor or
a task (the log of the worker that ran it), a worker's pid on a node, or a job
submission (its driver's output, on the head).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from solray._private.rpc.connection import Connection, connect
from solray.util.state.common import StateResource
from solray.util.state.source import StateSource

Request = Callable[[str, Any], Awaitable[Any]]

ANSI_ESCAPE = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
DEFAULT_LOG_LINES = 1000  # Ray's default for the REST API
FOLLOW_INTERVAL_S = 0.25
KV_NAMESPACE_JOB = "job"
JOB_KEY_PREFIX = "_ray_internal_job_info_"


class LogNotFound(LookupError):
    """No such node, actor, task, job or file (HTTP 404)."""


class LogSource:
    def __init__(self, request: Request, token: str):
        self.state = StateSource(request)
        self.token = token
        self._daemons: dict[str, Connection] = {}

    def close(self) -> None:
        for conn in self._daemons.values():
            conn.close()
        self._daemons.clear()

    # ------------------------------------------------------------------ nodes
    async def node(self, node_id: str | None = None, node_ip: str | None = None) -> dict:
        """A live node by id (or unique id prefix) or IP; the head node when neither is given."""
        nodes = [n for n in await self.state.request("get_nodes") if n.get("alive")]
        if node_id:
            found = [n for n in nodes if n["node_id"] == node_id] or [n for n in nodes if n["node_id"].startswith(node_id)]
            if len(found) != 1:
                raise LogNotFound(f"No live node with id {node_id!r}.")
            return found[0]
        if node_ip:
            found = [n for n in nodes if n["node_ip"] == node_ip]
            if not found:
                raise LogNotFound(f"No live node at {node_ip!r}.")
            return sorted(found, key=lambda n: not n.get("is_head"))[0]
        heads = [n for n in nodes if n.get("is_head")] or nodes
        if not heads:
            raise LogNotFound("The cluster has no live nodes.")
        return heads[0]

    async def _daemon(self, node: dict) -> Connection:
        conn = self._daemons.get(node["node_id"])
        if conn is None or conn.closed:
            host, port = node["address"].rsplit(":", 1)
            conn = self._daemons[node["node_id"]] = await connect(host, int(port), self.token, name="logs")
        return conn

    async def _ask(self, node: dict, method: str, payload: Any) -> Any:
        from solray._private.rpc.connection import RpcError

        conn = await self._daemon(node)
        try:
            return await conn.request(method, payload)
        except RpcError as e:
            message = str(e).split(": ", 1)[-1]
            if e.remote_type in ("FileNotFoundError", "LookupError"):
                raise LogNotFound(message) from None
            if e.remote_type in ("ValueError", "TypeError"):
                raise ValueError(message) from None
            raise

    # ------------------------------------------------------------------ listing
    async def list_logs(self, node_id: str | None = None, node_ip: str | None = None, glob: str | None = None) -> dict:
        node = await self.node(node_id, node_ip)
        return await self._ask(node, "list_logs", glob or "*")

    # ------------------------------------------------------------------ resolving
    async def resolve(
        self,
        *,
        node_id: str | None = None,
        node_ip: str | None = None,
        filename: str | None = None,
        actor_id: str | None = None,
        task_id: str | None = None,
        pid: int | None = None,
        submission_id: str | None = None,
    ) -> tuple[dict, str, tuple[int, int] | None]:
        """(node, file name, byte span) of the log the options name; the span, for a
        finished task, is the part of its worker's log that the task wrote."""
        if filename:
            return await self.node(node_id, node_ip), filename, None
        if actor_id:
            rows = await self._rows(StateResource.ACTORS, "actor_id", actor_id)
            if not rows:
                raise LogNotFound(f"Actor {actor_id} not found.")
            a = rows[0]
            if not a.get("node_id") or not a.get("pid"):
                raise LogNotFound(f"Actor {actor_id} has not been placed on a node yet (state {a.get('state')}).")
            node = await self.node(a["node_id"])
            return node, await self._worker_file(node, a["pid"], f"actor {actor_id}"), None
        if task_id:
            rows = await self._rows(StateResource.TASKS, "task_id", task_id)
            if not rows:
                raise LogNotFound(f"Task {task_id} not found.")
            t = max(rows, key=lambda r: r.get("attempt_number") or 0)
            if not t.get("node_id") or not t.get("worker_pid"):
                raise LogNotFound(f"Task {task_id} has not run on a worker yet (state {t.get('state')}).")
            node = await self.node(t["node_id"])
            info = t.get("task_log_info") or {}
            span = (info["stdout_start"], info["stdout_end"]) if "stdout_start" in info else None
            return node, await self._worker_file(node, t["worker_pid"], f"task {task_id}"), span
        if submission_id:
            raw = await self.state.request("kv_get", [KV_NAMESPACE_JOB, (JOB_KEY_PREFIX + submission_id).encode()])
            if raw is None:
                raise LogNotFound(f"Job {submission_id} not found.")
            record = json.loads(raw)
            driver_node = record["info"].get("driver_node_id")
            node = await self.node(driver_node) if driver_node else await self.node()
            return node, f"job-driver-{submission_id}.log", None
        if pid is not None:
            node = await self.node(node_id, node_ip)
            return node, await self._worker_file(node, int(pid), f"pid {pid}"), None
        raise ValueError("Name a log: a filename, actor_id, task_id, submission_id, or pid with node_id.")

    async def _rows(self, resource: StateResource, key: str, value: str) -> list[dict]:
        answer = await self.state.list(resource, filters=[(key, "=", value)], limit=None, detail=True)
        return answer["result"]

    async def _read_span(self, node: dict, filename: str, span: tuple[int, int], lines: int) -> bytes:
        start, end = span
        parts, offset = [], start
        while offset < end:
            part = await self._ask(node, "read_log", {"filename": filename, "offset": offset, "max_bytes": end - offset})
            if not part["data"]:
                break
            parts.append(part["data"])
            offset = part["offset"]
        data = b"".join(parts)
        if lines >= 0:
            kept = data.splitlines(keepends=True)[-lines:] if lines else []
            data = b"".join(kept)
        return data

    async def _worker_file(self, node: dict, pid: int, what: str) -> str:
        found = await self._ask(node, "list_logs", f"worker-*-{int(pid)}.log")
        files = [f for group in found.values() for f in group]
        if not files:
            raise LogNotFound(f"No log file of the worker (pid {pid}) of {what} on node {node['node_id']}.")
        return files[-1]

    # ------------------------------------------------------------------ reading
    async def stream(
        self,
        node: dict,
        filename: str,
        lines: int = DEFAULT_LOG_LINES,
        follow: bool = False,
        interval: float | None = None,
        span: tuple[int, int] | None = None,
    ) -> AsyncIterator[bytes]:
        """The last ``lines`` lines of a file (all for ``lines < 0``), then with ``follow``
        what is appended to it, until the caller stops iterating. With ``span`` (a
        finished task's part of its worker's log): the last ``lines`` lines of that part."""
        if span is not None:
            yield await self._read_span(node, filename, span, lines)
            return
        first = await self._ask(node, "read_log", {"filename": filename, "lines": int(lines)})
        if first["data"]:
            yield first["data"]
        offset = first["offset"]
        while offset < first["size"]:  # the rest of a long tail
            part = await self._ask(node, "read_log", {"filename": filename, "offset": offset})
            if not part["data"]:
                break
            offset = part["offset"]
            yield part["data"]
        while follow:
            await asyncio.sleep(interval or FOLLOW_INTERVAL_S)
            while True:
                part = await self._ask(node, "read_log", {"filename": filename, "offset": offset})
                if part["size"] < offset:  # truncated or replaced: start over
                    offset = 0
                    continue
                if not part["data"]:
                    break
                offset = part["offset"]
                yield part["data"]

