"""Answering state queries from a cluster's control service.

``StateSource`` wraps one coroutine function ``request(method, payload)`` that talks to
the control service; the dashboard passes its long-lived client's, the driver-side API
its core worker's connection, the CLI a one-shot connection. Every query returns Ray's
``ListApiResponse`` / summary shapes as plain dicts (JSON-ready).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from solray.util.state import rows
from solray.util.state.common import DEFAULT_LIMIT, StateResource, SummaryResource, resource_of

Request = Callable[[str, Any], Awaitable[Any]]

KV_NAMESPACE_JOB = "job"  # the Jobs API's records (see solray.dashboard.modules.job.manager)
JOB_KEY_PREFIX = "_ray_internal_job_info_"
# Drivers the cluster runs for itself (the launchers of entrypoints with resources): not
# jobs of their own in listings.
INTERNAL_JOB_NAMESPACE = "_solray_job_entrypoints"


def visible_drivers(drivers: list[dict]) -> list[dict]:
    return [d for d in drivers if d.get("namespace") != INTERNAL_JOB_NAMESPACE]


class StateSource:
    def __init__(self, request: Request):
        self._request = request

    async def request(self, method: str, payload: Any = None) -> Any:
        return await self._request(method, payload)

    # ------------------------------------------------------------------ raw rows
    async def rows(
        self, resource: StateResource, timeout: float | None = None, limit: int | None = None
    ) -> tuple[list[dict], dict]:
        """The rows of a resource and what the query should know about them:
        ``{"total": int, "available": int, "errors": [str], "warnings": [str]}``.

        ``limit`` (tasks only) fetches just the newest ones; ``available`` then says how
        many there are in all (what an unfiltered query would have matched)."""
        meta: dict = {"total": None, "available": None, "errors": [], "warnings": []}
        if resource == StateResource.ACTORS:
            return rows.actor_rows(await self.request("state_actors")), meta
        if resource == StateResource.NODES:
            return rows.node_rows(await self.request("get_nodes")), meta
        if resource == StateResource.PLACEMENT_GROUPS:
            return rows.placement_group_rows(await self.request("placement_group_table", None)), meta
        if resource == StateResource.TASKS:
            answer = await self.request("list_tasks", {"limit": limit} if limit is not None else None)
            meta["total"] = answer.get("total")
            if limit is not None:
                meta["available"] = answer.get("available")
            if answer.get("dropped"):
                meta["warnings"].append(
                    f"{answer['dropped']} older tasks were dropped from the task table (it keeps the newest "
                    f"{answer.get('stored')}; SOLRAY_TASK_EVENTS_MAX_NUM_TASKS on the head)."
                )
            return rows.task_rows(answer["tasks"]), meta
        if resource == StateResource.WORKERS:
            answers = await self.request("query_nodes", {"method": "list_workers", "timeout": timeout})
            out, meta["errors"] = rows.worker_rows(answers)
            return out, meta
        if resource == StateResource.OBJECTS:
            answers = await self.request(
                "query_nodes", {"method": "list_objects", "payload": {"timeout": timeout}, "timeout": timeout}
            )
            out, meta["errors"], missing = rows.object_rows(answers)
            if missing:
                meta["total"] = len(out) + missing
            return out, meta
        if resource == StateResource.JOBS:
            return await self.job_rows(), meta
        raise ValueError(f"Listing {resource.value} is not supported.")

    async def job_rows(self) -> list[dict]:
        keys = await self.request("kv_keys", [KV_NAMESPACE_JOB, JOB_KEY_PREFIX.encode()])
        raws = await asyncio.gather(*(self.request("kv_get", [KV_NAMESPACE_JOB, k]) for k in keys))
        records = []
        for raw in raws:
            if raw is None:
                continue
            try:
                records.append(json.loads(raw))
            except ValueError:
                continue
        records.sort(key=lambda r: r["info"].get("start_time") or 0)
        return rows.job_rows(records, visible_drivers(await self.request("list_jobs")))

    # ------------------------------------------------------------------ queries
    async def list(
        self,
        resource: StateResource | str,
        *,
        filters: list | None = None,
        limit: int | None = DEFAULT_LIMIT,
        detail: bool = False,
        timeout: float | None = None,
        exclude_driver: bool = True,
    ) -> dict:
        resource = resource_of(resource)
        rows.validate_filters(resource, filters)  # bad filters fail before any work
        # Unfiltered task listings only need the newest ``limit`` tasks from the head.
        hint = limit if resource == StateResource.TASKS and not filters and limit is not None else None
        data, meta = await self.rows(resource, timeout, limit=hint)
        partial = ""
        if meta["errors"]:
            partial = f"Some of the cluster's nodes did not answer ({len(meta['errors'])}): " + "; ".join(meta["errors"])
        return rows.apply_query(
            resource, data, filters=filters, limit=limit, detail=detail,
            total=meta["total"], warnings=meta["warnings"], partial_failure=partial, available=meta["available"],
        )

    async def summary(self, resource: SummaryResource | str, timeout: float | None = None) -> dict:
        """Ray's ``SummaryApiResponse``: ``{"total", ..., "result": {"node_id_to_summary": {"cluster": ...}}}``."""
        resource = SummaryResource(resource.value if isinstance(resource, SummaryResource) else resource)
        data, meta = await self.rows(StateResource(resource.value), timeout)
        summarize = {
            SummaryResource.TASKS: rows.summarize_tasks,
            SummaryResource.ACTORS: rows.summarize_actors,
            SummaryResource.OBJECTS: rows.summarize_objects,
        }[resource]
        return {
            "total": len(data) if meta["total"] is None else meta["total"],
            "num_after_truncation": len(data),
            "num_filtered": len(data),
            "result": {"node_id_to_summary": {"cluster": summarize(data)}},
            "partial_failure_warning": "; ".join(meta["errors"]),
            "warnings": meta["warnings"] or None,
        }

    async def timeline(self, job_id: str | None = None) -> list[dict]:
        data, _ = await self.rows(StateResource.TASKS)
        if job_id:
            data = [t for t in data if t["job_id"] == job_id]
        return rows.timeline(data)
