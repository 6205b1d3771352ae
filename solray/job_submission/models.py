"""The Jobs API's data types, with Ray's names, fields and JSON shapes.

``JobStatus``/``JobErrorType`` are string enums (``JobStatus.RUNNING == "RUNNING"``);
``JobInfo`` is what the job manager keeps per submission; ``JobDetails`` is what the REST
API returns (``JobInfo`` plus the submission id, job type and driver).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

# The REST API version Ray's clients check (4 added DELETE /api/jobs/{id}).
API_VERSION = "4"
# The Ray release whose Jobs API we serve; Ray's client refuses servers older than 2.8.
RAY_COMPAT_VERSION = "2.60.0"


class JobStatus(str, Enum):
    #: Submitted; the runtime environment is being set up or the entrypoint is starting.
    PENDING = "PENDING"
    #: The entrypoint process is running.
    RUNNING = "RUNNING"
    #: Stopped on request (``stop_job``).
    STOPPED = "STOPPED"
    #: The entrypoint exited with code 0.
    SUCCEEDED = "SUCCEEDED"
    #: The entrypoint failed, or could not start, or its head node went away.
    FAILED = "FAILED"

    def __str__(self) -> str:
        return self.value

    def is_terminal(self) -> bool:
        return self.value in ("STOPPED", "SUCCEEDED", "FAILED")


class JobErrorType(str, Enum):
    RUNTIME_ENV_SETUP_FAILURE = "RUNTIME_ENV_SETUP_FAILURE"
    JOB_SUPERVISOR_ACTOR_DIED = "JOB_SUPERVISOR_ACTOR_DIED"
    JOB_ENTRYPOINT_COMMAND_START_ERROR = "JOB_ENTRYPOINT_COMMAND_START_ERROR"
    JOB_ENTRYPOINT_COMMAND_ERROR = "JOB_ENTRYPOINT_COMMAND_ERROR"

    def __str__(self) -> str:
        return self.value


class JobType(str, Enum):
    SUBMISSION = "SUBMISSION"
    DRIVER = "DRIVER"

    def __str__(self) -> str:
        return self.value


_DEFAULT_MESSAGES = {
    JobStatus.PENDING: "Job has not started yet.",
    JobStatus.RUNNING: "Job is currently running.",
    JobStatus.STOPPED: "Job was intentionally stopped.",
    JobStatus.SUCCEEDED: "Job finished successfully.",
    JobStatus.FAILED: "Job failed.",
}


@dataclass
class JobInfo:
    """A job submission's state. Times are Unix timestamps in milliseconds."""

    status: JobStatus
    entrypoint: str
    message: str | None = None
    error_type: JobErrorType | None = None
    start_time: int | None = None
    end_time: int | None = None
    metadata: dict[str, str] | None = None
    runtime_env: dict[str, Any] | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = None
    driver_agent_http_address: str | None = None
    driver_node_id: str | None = None
    driver_exit_code: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.status, str):
            self.status = JobStatus(self.status)
        if isinstance(self.error_type, str):
            self.error_type = JobErrorType(self.error_type)
        if self.message is None:
            self.message = _DEFAULT_MESSAGES[self.status]

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = str(self.status)
        d["error_type"] = str(self.error_type) if self.error_type else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> JobInfo:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class DriverInfo:
    id: str
    node_ip_address: str
    pid: str


@dataclass
class JobDetails:
    """One entry of ``list_jobs``/``get_job_info``: a submission or a plain driver's job."""

    type: JobType
    status: JobStatus
    entrypoint: str
    job_id: str | None = None
    submission_id: str | None = None
    driver_info: DriverInfo | None = None
    message: str | None = None
    error_type: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    metadata: dict[str, str] | None = None
    runtime_env: dict[str, Any] | None = None
    driver_agent_http_address: str | None = None
    driver_node_id: str | None = None
    driver_exit_code: int | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = field(default=None)

    def __post_init__(self) -> None:
        if isinstance(self.type, str):
            self.type = JobType(self.type)
        if isinstance(self.status, str):
            self.status = JobStatus(self.status)
        if isinstance(self.driver_info, dict):
            self.driver_info = DriverInfo(**self.driver_info)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["type"] = str(self.type)
        d["status"] = str(self.status)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> JobDetails:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    # Ray's JobDetails is a pydantic model; keep its two most used conveniences.
    def dict(self) -> dict[str, Any]:
        return self.to_json()

    def json(self) -> str:
        import json

        return json.dumps(self.to_json())


@dataclass
class JobSubmitRequest:
    """The body of ``POST /api/jobs/``, validated the way Ray's server validates it."""

    entrypoint: str
    submission_id: str | None = None
    job_id: str | None = None  # deprecated alias of submission_id
    runtime_env: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = None
    entrypoint_label_selector: dict[str, str] | None = None

    def __post_init__(self) -> None:
        def check(cond: bool, msg: str) -> None:
            if not cond:
                raise TypeError(msg)

        num = (int, float)
        check(isinstance(self.entrypoint, str) and self.entrypoint.strip() != "", "entrypoint must be a non-empty string")
        for name in ("submission_id", "job_id"):
            v = getattr(self, name)
            check(v is None or isinstance(v, str), f"{name} must be a string")
        for name in ("runtime_env", "metadata", "entrypoint_resources", "entrypoint_label_selector"):
            v = getattr(self, name)
            check(v is None or (isinstance(v, dict) and all(isinstance(k, str) for k in v)), f"{name} must be a dict with string keys")
        check(all(isinstance(v, str) for v in (self.metadata or {}).values()), "metadata values must be strings")
        check(
            all(isinstance(v, num) and not isinstance(v, bool) for v in (self.entrypoint_resources or {}).values()),
            "entrypoint_resources values must be numbers",
        )
        for name in ("entrypoint_num_cpus", "entrypoint_num_gpus"):
            v = getattr(self, name)
            check(v is None or (isinstance(v, num) and not isinstance(v, bool) and v >= 0), f"{name} must be a non-negative number")
        check(
            self.entrypoint_memory is None or (isinstance(self.entrypoint_memory, int) and self.entrypoint_memory >= 0),
            "entrypoint_memory must be a non-negative integer",
        )
        sid = self.submission_id or self.job_id
        if sid is not None:
            check(0 < len(sid) <= 256 and all(c.isalnum() or c in "-_." for c in sid),
                  "submission_id may only contain letters, digits, '-', '_' and '.'")


__all__ = [
    "API_VERSION",
    "RAY_COMPAT_VERSION",
    "DriverInfo",
    "JobDetails",
    "JobErrorType",
    "JobInfo",
    "JobStatus",
    "JobSubmitRequest",
    "JobType",
]
