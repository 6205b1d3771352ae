"""Ray's state REST API, so ``ray list``/``ray.util.state`` (and ours) can ask the dashboard.

    GET /api/v0/{actors,jobs,nodes,placement_groups,tasks,objects,workers}
        ?limit=&timeout=&detail=&exclude_driver=&filter_keys=&filter_predicates=&filter_values=
        -> {"result": true, "msg": "", "data": {"result": ListApiResponse}}
    GET /api/v0/{tasks,actors,objects}/summarize  -> {"data": {"result": SummaryApiResponse}}
    GET /api/v0/tasks/timeline?job_id=            -> Chrome trace events (JSON list)
    GET /api/v0/runtime_envs, /api/v0/cluster_events -> empty lists (not tracked)

Filters repeat ``filter_keys``/``filter_predicates``/``filter_values`` in step, as Ray's
client sends them. Bad requests answer 400 with ``{"result": false, "msg": ...}``.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from solray.util.state.common import (
    DEFAULT_LIMIT,
    DEFAULT_RPC_TIMEOUT,
    MAX_LIMIT_FROM_API_SERVER,
    SCHEMAS,
    StateResource,
    SummaryResource,
)
from solray.util.state.source import StateSource

logger = logging.getLogger(__name__)

UNTRACKED = ("runtime_envs", "cluster_events")


def ok(result) -> Response:
    return JSONResponse({"result": True, "msg": "", "data": {"result": result}})


def error(message: str, status: int) -> Response:
    return JSONResponse({"result": False, "msg": message, "data": {}}, status_code=status)


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes")


def parse_timeout(value: str | None) -> float:
    """A query's ``timeout`` in seconds: positive and finite, at most 10 minutes."""
    timeout = float(value) if value not in (None, "") else float(DEFAULT_RPC_TIMEOUT)
    if not 0 < timeout < float("inf"):
        raise ValueError("timeout must be a positive number of seconds")
    return min(timeout, 600.0)


def parse_list_options(request: Request) -> dict:
    q = request.query_params
    keys, preds, values = q.getlist("filter_keys"), q.getlist("filter_predicates"), q.getlist("filter_values")
    if not (len(keys) == len(preds) == len(values)):
        raise ValueError("filter_keys, filter_predicates and filter_values must come in equal numbers")
    limit = int(q.get("limit", DEFAULT_LIMIT))
    if limit < 0:
        raise ValueError("limit must be >= 0")
    if limit > MAX_LIMIT_FROM_API_SERVER:  # as Ray's server says
        raise ValueError(f"Given limit {limit} exceeds the supported limit {MAX_LIMIT_FROM_API_SERVER}. Use a lower limit.")
    return {
        "filters": list(zip(keys, preds, values, strict=True)),
        "limit": limit,
        "timeout": parse_timeout(q.get("timeout")),
        "detail": _flag(q.get("detail"), False),
        "exclude_driver": _flag(q.get("exclude_driver"), True),
    }


class StateRoutes:
    def __init__(self, control):
        self.source = StateSource(control.request)

    def routes(self) -> list:
        out = [
            Route("/api/v0/tasks/timeline", self.timeline, methods=["GET"]),
            Route("/api/v0/{resource}/summarize", self.summarize, methods=["GET"]),
        ]
        for resource in SCHEMAS:
            out.append(Route(f"/api/v0/{resource.value}", self._lister(resource), methods=["GET"]))
        for name in UNTRACKED:
            out.append(Route(f"/api/v0/{name}", self.untracked, methods=["GET"]))
        return out

    def _lister(self, resource: StateResource):
        async def handler(request: Request) -> Response:
            try:
                options = parse_list_options(request)
            except ValueError as e:
                return error(f"Invalid request: {e}", 400)
            try:
                return ok(await self.source.list(resource, **options))
            except ValueError as e:
                return error(str(e), 400)
            except Exception as e:
                logger.exception("listing %s failed", resource.value)
                return error(f"Failed to list {resource.value}: {type(e).__name__}: {e}", 500)

        return handler

    async def summarize(self, request: Request) -> Response:
        name = request.path_params["resource"]
        try:
            resource = SummaryResource(name)
        except ValueError:
            return error(f"Cannot summarize {name!r}; supported: tasks, actors, objects", 404)
        try:
            timeout = parse_timeout(request.query_params.get("timeout"))
        except ValueError as e:
            return error(f"Invalid request: {e}", 400)
        try:
            return ok(await self.source.summary(resource, timeout=timeout))
        except Exception as e:
            logger.exception("summarizing %s failed", name)
            return error(f"Failed to summarize {name}: {type(e).__name__}: {e}", 500)

    async def timeline(self, request: Request) -> Response:
        try:
            return JSONResponse(await self.source.timeline(request.query_params.get("job_id") or None))
        except Exception as e:
            logger.exception("timeline failed")
            return error(f"Failed to build the timeline: {type(e).__name__}: {e}", 500)

    async def untracked(self, request: Request) -> Response:
        return ok({"total": 0, "num_after_truncation": 0, "num_filtered": 0, "result": [],
                   "partial_failure_warning": "", "warnings": None})
