"""Ray Serve's REST API on the dashboard (token auth applies, as on every endpoint).

    GET    /api/serve/applications/   -> the Serve instance's status (what the controller last
                                         published; ``{"applications": {}}`` when Serve is not running)
    PUT    /api/serve/applications/   <- a ``serve build`` config (JSON): deploy it, as ``serve deploy``
    DELETE /api/serve/applications/   -> shut Serve down, as ``serve shutdown``

The dashboard is not a driver, so PUT and DELETE run ``python -m solray.serve.scripts``
against this cluster; its error output becomes the 400 answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from solray.serve._internal.constants import KV_NAMESPACE, KV_STATUS_KEY

PATH = "/api/serve/applications/"
CLI_TIMEOUT_S = 120


class ServeRoutes:
    def __init__(self, control, token: str):
        self.control = control
        self.token = token

    def routes(self) -> list:
        return [
            Route(PATH, self.get_applications, methods=["GET"]),
            Route(PATH, self.put_applications, methods=["PUT"]),
            Route(PATH, self.delete_applications, methods=["DELETE"]),
        ]

    async def get_applications(self, request: Request) -> Response:
        raw = await self.control.kv_get(KV_NAMESPACE, KV_STATUS_KEY)
        status = json.loads(raw) if raw else {}
        apps = {
            name: {
                "name": name,
                "route_prefix": app.get("route_prefix"),
                "status": app["status"],
                "message": app.get("message", ""),
                "last_deployed_time_s": app.get("last_deployed_time_s"),
                "deployments": {
                    dep: {"name": dep, "status": d["status"], "message": d.get("message", ""),
                          "replica_states": d.get("replica_states", {})}
                    for dep, d in app.get("deployments", {}).items()
                },
            }
            for name, app in (status.get("applications") or {}).items()
        }
        return JSONResponse({
            "proxy_location": "HeadOnly",
            "http_options": status.get("http_options"),
            "proxies": {"head": "HEALTHY"} if status.get("proxy") else {},
            "applications": apps,
        })

    async def put_applications(self, request: Request) -> Response:
        try:
            config = json.loads(await request.body())
        except ValueError as e:
            return PlainTextResponse(f"The body must be a JSON Serve config: {e}", status_code=400)
        if not isinstance(config, dict) or not isinstance(config.get("applications"), list):
            return PlainTextResponse("The config must be an object with an 'applications' list.", status_code=400)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            json.dump(config, f)  # JSON is YAML
        try:
            return await self._cli(["deploy", f.name])
        finally:
            os.unlink(f.name)

    async def delete_applications(self, request: Request) -> Response:
        return await self._cli(["shutdown", "-y"])

    async def _cli(self, args: list[str]) -> Response:
        env = {**os.environ, "SOLRAY_TOKEN": self.token}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "solray.serve.scripts", *args, "--address", self.control.address,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
        except asyncio.TimeoutError:
            proc.kill()
            return PlainTextResponse(f"serve {args[0]} did not finish within {CLI_TIMEOUT_S}s.", status_code=500)
        if proc.returncode != 0:
            tail = "\n".join(err.decode(errors="replace").strip().splitlines()[-10:])
            return PlainTextResponse(f"serve {args[0]} failed:\n{tail}", status_code=400)
        return PlainTextResponse(out.decode(errors="replace"))
