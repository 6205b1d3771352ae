"""Ray's Jobs REST API: same paths, status codes and JSON shapes, so Ray's own
``JobSubmissionClient`` and ``ray job`` CLI work against a solray head unchanged.

    GET    /api/version                           {"version", "ray_version", ...}
    GET    /api/packages/{protocol}/{name}        200 if uploaded, else 404
    PUT    /api/packages/{protocol}/{name}        upload a working_dir package (zip bytes)
    POST   /api/jobs/                             submit -> {"job_id", "submission_id"}
    GET    /api/jobs/                             [JobDetails...]
    GET    /api/jobs/{id}                         JobDetails
    GET    /api/jobs/{id}/logs                    {"logs": str}
    WS     /api/jobs/{id}/logs/tail               text frames of new output until the job ends
    POST   /api/jobs/{id}/stop                    {"stopped": bool}
    DELETE /api/jobs/{id}                         {"deleted": bool}

``{id}`` is a submission id or a driver's job id (hex), as in Ray.
"""

from __future__ import annotations

import logging
import traceback

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from solray._private.runtime_env import packaging
from solray.dashboard.modules.job.manager import JobError, JobManager
from solray.job_submission.models import (
    API_VERSION,
    RAY_COMPAT_VERSION,
    DriverInfo,
    JobDetails,
    JobInfo,
    JobStatus,
    JobSubmitRequest,
    JobType,
)
from solray.util.state.source import visible_drivers

logger = logging.getLogger(__name__)


def _job_hex(job_id: int) -> str:
    return int(job_id).to_bytes(4, "little").hex()


class JobRoutes:
    def __init__(self, manager: JobManager, session_name: str):
        self.manager = manager
        self.control = manager.control
        self.session_name = session_name
        self._listing: tuple[int, list, bytes] | None = None  # (records version, drivers, body)

    def routes(self) -> list:
        return [
            Route("/api/version", self.version, methods=["GET"]),
            Route("/api/packages/{protocol}/{package_name}", self.get_package, methods=["GET"]),
            Route("/api/packages/{protocol}/{package_name}", self.put_package, methods=["PUT"]),
            Route("/api/jobs/", self.submit, methods=["POST"]),
            Route("/api/jobs/", self.list_jobs, methods=["GET"]),
            Route("/api/jobs/{job_id}", self.get_job, methods=["GET"]),
            Route("/api/jobs/{job_id}", self.delete_job, methods=["DELETE"]),
            Route("/api/jobs/{job_id}/logs", self.get_logs, methods=["GET"]),
            Route("/api/jobs/{job_id}/stop", self.stop_job, methods=["POST"]),
            WebSocketRoute("/api/jobs/{job_id}/logs/tail", self.tail_logs),
        ]

    # ------------------------------------------------------------------ version
    async def version(self, request: Request) -> Response:
        from solray._version import __version__

        return JSONResponse(
            {
                "version": API_VERSION,
                "ray_version": RAY_COMPAT_VERSION,
                "ray_commit": "solray",
                "session_name": self.session_name,
                "solray_version": __version__,
            }
        )

    # ------------------------------------------------------------------ packages
    @staticmethod
    def _package_uri(request: Request) -> str:
        protocol = request.path_params["protocol"]
        name = request.path_params["package_name"]
        uri = f"{protocol}://{name}"
        packaging.parse_uri(uri)
        if protocol != packaging.GCS_PROTOCOL or not name.endswith(".zip"):
            raise ValueError(f"Only gcs://<name>.zip packages can be uploaded, got {uri}.")
        return uri

    async def get_package(self, request: Request) -> Response:
        try:
            uri = self._package_uri(request)
        except ValueError as e:
            return PlainTextResponse(str(e), 400)
        keys = await self.control.kv_keys(packaging.KV_NAMESPACE_PACKAGES, uri.encode())
        if uri.encode() not in keys:
            return PlainTextResponse(f"Package {uri} does not exist", 404)
        return Response(status_code=200)

    async def put_package(self, request: Request) -> Response:
        try:
            uri = self._package_uri(request)
        except ValueError as e:
            return PlainTextResponse(str(e), 400)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > packaging.MAX_PACKAGE_BYTES:
            return PlainTextResponse(_too_large(int(declared)), 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > packaging.MAX_PACKAGE_BYTES:
                return PlainTextResponse(_too_large(len(body)), 413)
        await self.control.kv_put(packaging.KV_NAMESPACE_PACKAGES, uri.encode(), bytes(body), True)
        return Response(status_code=200)

    # ------------------------------------------------------------------ jobs
    async def submit(self, request: Request) -> Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise TypeError("the request body must be a JSON object")
            body = {k: v for k, v in body.items() if v is not None}
            req = JobSubmitRequest(**body)
            sid = await self.manager.submit(req)
        except JobError as e:
            return PlainTextResponse(str(e), e.status)
        except (TypeError, ValueError) as e:
            return PlainTextResponse(f"Invalid job submission: {e}", 400)
        except Exception:
            logger.exception("job submission failed")
            return PlainTextResponse(traceback.format_exc(), 500)
        return JSONResponse({"job_id": sid, "submission_id": sid})

    async def _driver_jobs(self) -> list[dict]:
        try:
            return visible_drivers(await self.control.request("list_jobs"))
        except Exception:
            logger.exception("could not list driver jobs")
            return []

    @staticmethod
    def _driver_info(job: dict) -> DriverInfo:
        ip = (job.get("driver_address") or "127.0.0.1").rsplit(":", 1)[0]
        return DriverInfo(id=_job_hex(job["job_id"]), node_ip_address=ip, pid=str(job.get("pid") or ""))

    def _submission_details(self, record: dict, drivers: list[dict]) -> JobDetails:
        info = JobInfo.from_json(record["info"])
        sid = record["submission_id"]
        mine = [d for d in drivers if d.get("submission_id") == sid]
        driver = max(mine, key=lambda d: d["job_id"]) if mine else None
        return JobDetails(
            type=JobType.SUBMISSION,
            submission_id=sid,
            job_id=_job_hex(driver["job_id"]) if driver else None,
            driver_info=self._driver_info(driver) if driver else None,
            **{k: v for k, v in info.to_json().items()},
        )

    def _driver_details(self, job: dict) -> JobDetails:
        status = {"RUNNING": JobStatus.RUNNING, "SUCCEEDED": JobStatus.SUCCEEDED}.get(job.get("status"), JobStatus.FAILED)
        ms = lambda t: int(t * 1000) if t else None  # noqa: E731
        return JobDetails(
            type=JobType.DRIVER,
            job_id=_job_hex(job["job_id"]),
            driver_info=self._driver_info(job),
            status=status,
            entrypoint=job.get("entrypoint") or "",
            message=None,
            start_time=ms(job.get("start_time")),
            end_time=ms(job.get("end_time")),
            metadata={},
            runtime_env=job.get("runtime_env") or {},
        )

    async def _find(self, job_id: str) -> tuple[JobDetails | None, dict | None]:
        """(details, submission record or None) for a submission id or driver job id."""
        record = await self.manager.get_record(job_id)
        drivers = await self._driver_jobs()
        if record is not None:
            return self._submission_details(record, drivers), record
        for d in drivers:
            if _job_hex(d["job_id"]) == job_id:
                if d.get("submission_id"):
                    record = await self.manager.get_record(d["submission_id"])
                    if record is not None:
                        return self._submission_details(record, drivers), record
                return self._driver_details(d), None
        return None, None

    async def list_jobs(self, request: Request) -> Response:
        records = await self.manager.list_records()
        drivers = await self._driver_jobs()
        # Dashboards poll this: the body is rebuilt only when a record or a driver changed.
        cached = self._listing
        if cached is not None and cached[0] == self.manager.version and cached[1] == drivers:
            return Response(cached[2], media_type="application/json")
        version = self.manager.version
        submitted = {r["submission_id"] for r in records}
        out = [self._submission_details(r, drivers).to_json() for r in records]
        out += [self._driver_details(d).to_json() for d in drivers if d.get("submission_id") not in submitted]
        response = JSONResponse(out)
        self._listing = (version, drivers, response.body)
        return response

    async def get_job(self, request: Request) -> Response:
        details, _ = await self._find(request.path_params["job_id"])
        if details is None:
            return _missing(request)
        return JSONResponse(details.to_json())

    async def _submission_or_error(self, request: Request, verb: str) -> tuple[str | None, Response | None]:
        details, record = await self._find(request.path_params["job_id"])
        if details is None:
            return None, _missing(request)
        if record is None:
            return None, PlainTextResponse(f"Can only {verb} submission type jobs", 400)
        return record["submission_id"], None

    async def get_logs(self, request: Request) -> Response:
        sid, err = await self._submission_or_error(request, "get logs of")
        if err:
            return err
        return JSONResponse({"logs": await self.manager.logs(sid)})

    async def stop_job(self, request: Request) -> Response:
        sid, err = await self._submission_or_error(request, "stop")
        if err:
            return err
        try:
            return JSONResponse({"stopped": await self.manager.stop(sid)})
        except JobError as e:
            return PlainTextResponse(str(e), e.status)

    async def delete_job(self, request: Request) -> Response:
        sid, err = await self._submission_or_error(request, "delete")
        if err:
            return err
        try:
            return JSONResponse({"deleted": await self.manager.delete(sid)})
        except JobError as e:
            return PlainTextResponse(str(e), e.status)

    async def tail_logs(self, ws: WebSocket) -> None:
        details, record = await self._find(ws.path_params["job_id"])
        if record is None:
            # Refuse the handshake with Ray's HTTP answer (404, or 400 for a driver job).
            response = (
                PlainTextResponse(f"Job {ws.path_params['job_id']} does not exist", 404)
                if details is None
                else PlainTextResponse("Can only get logs of submission type jobs", 400)
            )
            try:
                await ws.send_denial_response(response)
            except RuntimeError:  # a server without the denial-response extension
                await ws.close(code=1008, reason="no such submission job")
            return
        await ws.accept()
        try:
            async for text in self.manager.tail(record["submission_id"]):
                await ws.send_text(text)
            await ws.close(code=1000)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went away


def _missing(request: Request) -> Response:
    return PlainTextResponse(f"Job {request.path_params['job_id']} does not exist", 404)


def _too_large(size: int) -> str:
    return (
        f"Package of {size / 2**20:.1f} MiB is over the limit of {packaging.MAX_PACKAGE_BYTES / 2**20:.0f} MiB "
        "(SOLRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES on the head). Leave large files out with "
        "runtime_env={'excludes': [...]}."
    )


__all__ = ["JobRoutes"]
