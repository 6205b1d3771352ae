"""``GET /metrics``: the cluster's metrics for Prometheus (``prometheus.py`` writes them).

Token auth applies as everywhere; a scraper sends ``Authorization: Bearer <token>``
(Prometheus' ``authorization: {credentials: ...}`` scrape option) or, where it cannot set
headers, ``/metrics?token=<token>``.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from solray.dashboard.modules.metrics.prometheus import CONTENT_TYPE, render
from solray.util.state.source import StateSource

logger = logging.getLogger(__name__)


class MetricsRoutes:
    def __init__(self, control):
        self.control = control
        self.source = StateSource(control.request)

    def routes(self) -> list:
        return [Route("/metrics", self.metrics, methods=["GET"])]

    async def jobs_by_status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for job in await self.source.job_rows():
            out[job["status"]] = out.get(job["status"], 0) + 1
        return out

    async def metrics(self, request: Request) -> Response:
        try:
            data = await self.control.request("get_metrics")
            jobs = await self.jobs_by_status()
        except Exception as e:
            logger.exception("collecting metrics failed")
            return PlainTextResponse(f"# collecting metrics failed: {type(e).__name__}: {e}\n", 503)
        return Response(render(data, jobs), media_type=CONTENT_TYPE)
