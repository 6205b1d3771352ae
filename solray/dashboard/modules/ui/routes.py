"""The web UI: one static page (``static/index.html``: HTML, CSS and JS, no build step, no
CDN) that polls the JSON APIs, plus the one summary the page needs that no Ray API has.

    GET /                      the page (open: it holds no data; it asks for the token)
    GET /api/solray/overview   nodes with resources used/total, object store and host
                               memory/CPU, tasks/actors/placement groups by state (token)
"""

from __future__ import annotations

import logging
import os

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

logger = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
OPEN_PATHS = frozenset({"/", "/index.html", "/favicon.ico"})


class UiRoutes:
    def __init__(self, control, session_name: str):
        self.control = control
        self.session_name = session_name

    def routes(self) -> list:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/index.html", self.index, methods=["GET"]),
            Route("/favicon.ico", self.favicon, methods=["GET"]),
            Route("/api/solray/overview", self.overview, methods=["GET"]),
        ]

    async def index(self, request: Request) -> Response:
        with open(os.path.join(STATIC_DIR, "index.html"), encoding="utf-8") as f:
            page = f.read()
        # No framing by other sites, no inline content from elsewhere: the page only talks to us.
        return HTMLResponse(
            page,
            headers={
                "Cache-Control": "no-cache",
                "X-Frame-Options": "DENY",
                "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
            },
        )

    async def favicon(self, request: Request) -> Response:
        return Response(status_code=204)

    async def overview(self, request: Request) -> Response:
        try:
            data = await self.control.request("get_metrics")
        except Exception as e:
            logger.exception("overview failed")
            return JSONResponse({"error": f"{type(e).__name__}: {e}"}, status_code=503)
        cluster = data["cluster"]
        totals: dict[str, float] = {}
        available: dict[str, float] = {}
        for n in cluster["nodes"]:
            if not n["alive"]:
                continue
            for k, v in n["total"].items():
                if not k.startswith("node:"):
                    totals[k] = totals.get(k, 0.0) + v
                    available[k] = available.get(k, 0.0) + n["available"].get(k, 0.0)
        return JSONResponse(
            {
                "session_name": self.session_name,
                "nodes": cluster["nodes"],
                "resources_total": totals,
                "resources_available": available,
                "object_store_used": sum(n["object_store_used"] or 0 for n in cluster["nodes"] if n["alive"]),
                "object_store_memory": sum(n["object_store_memory"] or 0 for n in cluster["nodes"] if n["alive"]),
                "tasks": cluster["tasks"],
                "actors": cluster["actors"],
                "placement_groups": cluster["placement_groups"],
            }
        )
