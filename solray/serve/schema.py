"""Status objects (``serve.status()``) and the config file of ``serve build``/``serve deploy``."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


class _Status(str, enum.Enum):
    """Compares equal to (and prints as) its name, as Ray's status enums do."""

    def __str__(self) -> str:
        return self.value


class ApplicationStatus(_Status):
    NOT_STARTED = "NOT_STARTED"
    DEPLOYING = "DEPLOYING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    RUNNING = "RUNNING"
    UNHEALTHY = "UNHEALTHY"
    DELETING = "DELETING"


class DeploymentStatus(_Status):
    UPDATING = "UPDATING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    UPSCALING = "UPSCALING"
    DOWNSCALING = "DOWNSCALING"
    DELETING = "DELETING"


@dataclasses.dataclass
class DeploymentStatusOverview:
    status: DeploymentStatus
    replica_states: dict[str, int]
    message: str = ""
    target_replicas: int = 0


@dataclasses.dataclass
class ApplicationStatusOverview:
    status: ApplicationStatus
    message: str
    last_deployed_time_s: float
    deployments: dict[str, DeploymentStatusOverview]
    route_prefix: str | None = None


@dataclasses.dataclass
class ServeStatus:
    """What ``serve.status()`` returns: the proxy and every application with its deployments."""

    proxies: dict[str, str]
    applications: dict[str, ApplicationStatusOverview]
    target_capacity: float | None = None


def status_from_dict(raw: dict) -> ServeStatus:
    apps = {}
    for name, a in (raw.get("applications") or {}).items():
        deps = {
            d: DeploymentStatusOverview(DeploymentStatus(v["status"]), dict(v["replica_states"]), v["message"],
                                        v.get("target_replicas", 0))
            for d, v in a["deployments"].items()
        }
        apps[name] = ApplicationStatusOverview(ApplicationStatus(a["status"]), a["message"],
                                               a["last_deployed_time_s"], deps, a.get("route_prefix"))
    proxy = raw.get("proxy") or {}
    proxies = {"head": "HEALTHY"} if proxy else {}
    return ServeStatus(proxies, apps)


def status_to_plain(status: ServeStatus) -> dict[str, Any]:
    """``serve status`` output: plain types only (YAML/JSON friendly)."""
    return {
        "proxies": dict(status.proxies),
        "applications": {
            name: {
                "status": str(a.status),
                "message": a.message,
                "route_prefix": a.route_prefix,
                "last_deployed_time_s": a.last_deployed_time_s,
                "deployments": {
                    d: {"status": str(v.status), "replica_states": v.replica_states, "message": v.message}
                    for d, v in a.deployments.items()
                },
            }
            for name, a in status.applications.items()
        },
    }
