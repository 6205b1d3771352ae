"""Ray's log REST API, served from every node's own log folder.

    GET /api/v0/logs?node_id=&node_ip=&glob=     -> {"result": true, "data": {"result": {group: [file]}}}
    GET /api/v0/logs/{file,stream}?node_id=&node_ip=&filename=&actor_id=&task_id=&pid=
        &submission_id=&lines=&interval=&filter_ansi_code=    -> text/plain (chunked)

Without a node the head's files are meant. ``file`` answers the last ``lines`` lines (-1:
all) and ends; ``stream`` then follows the file until the client disconnects. Errors
answer before any byte of the log: 404 when the log does not exist, 400 for bad input.
"""

from __future__ import annotations

import logging
import re

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from solray.dashboard.modules.state.routes import error, ok
from solray.util.state.log_source import ANSI_ESCAPE, DEFAULT_LOG_LINES, LogNotFound, LogSource

logger = logging.getLogger(__name__)


class LogRoutes:
    def __init__(self, control, token: str):
        self.source = LogSource(control.request, token)

    def routes(self) -> list:
        return [
            Route("/api/v0/logs", self.list_logs, methods=["GET"]),
            Route("/api/v0/logs/{media_type}", self.get_log, methods=["GET"]),
        ]

    async def list_logs(self, request: Request) -> Response:
        q = request.query_params
        try:
            return ok(await self.source.list_logs(q.get("node_id") or None, q.get("node_ip") or None, q.get("glob") or "*"))
        except LogNotFound as e:
            return error(str(e), 404)
        except ValueError as e:
            return error(str(e), 400)
        except Exception as e:
            logger.exception("listing logs failed")
            return error(f"Failed to list logs: {type(e).__name__}: {e}", 503)

    async def get_log(self, request: Request) -> Response:
        q = request.query_params
        media_type = request.path_params["media_type"]
        try:
            if media_type not in ("file", "stream"):
                raise ValueError(f"Invalid media type {media_type!r}: use 'file' or 'stream'.")
            lines = int(q.get("lines", DEFAULT_LOG_LINES))
            interval = float(q["interval"]) if q.get("interval") else None
            if interval is not None and not 0.01 <= interval <= 60:
                raise ValueError("interval must be between 0.01 and 60 seconds")
            pid = int(q["pid"]) if q.get("pid") else None
            node, filename, span = await self.source.resolve(
                node_id=q.get("node_id") or None,
                node_ip=q.get("node_ip") or None,
                filename=q.get("filename") or None,
                actor_id=q.get("actor_id") or None,
                task_id=q.get("task_id") or None,
                pid=pid,
                submission_id=q.get("submission_id") or None,
            )
            chunks = self.source.stream(
                node, filename, lines, follow=media_type == "stream", interval=interval, span=span
            )
            first = await anext(chunks, b"")
        except LogNotFound as e:
            return PlainTextResponse(str(e), status_code=404)
        except ValueError as e:
            return PlainTextResponse(str(e), status_code=400)
        except Exception as e:
            logger.exception("reading a log failed")
            return PlainTextResponse(f"Failed to read the log: {type(e).__name__}: {e}", status_code=503)
        strip = q.get("filter_ansi_code", "").lower() == "true"

        async def body():
            try:
                chunk = first
                while True:
                    if chunk:
                        yield ANSI_ESCAPE.sub(b"", chunk) if strip else chunk
                    chunk = await anext(chunks, None)
                    if chunk is None:
                        return
            except Exception:  # the node went away mid-stream: end the response
                logger.exception("streaming %s ended", filename)
            finally:
                await chunks.aclose()

        download = q.get("download_filename") or "file.txt"
        return StreamingResponse(
            body(), media_type="text/plain",
            headers={"Content-Disposition": f'attachment; filename="{_safe_name(download)}"'},
        )


def _safe_name(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9._-]', "_", name)[:200] or "file.txt"
