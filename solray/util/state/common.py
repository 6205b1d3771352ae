"""The state API's schemas: one dataclass per resource, with Ray's field names.

Each field says whether it is *filterable* (usable in ``filters=[(key, "=", value)]``)
and whether it is a *detail* column (filled only with ``detail=True`` or by ``get_*``).
Instances also read like dicts (``actor["state"]``), as Ray's do.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from solray.job_submission.models import JobDetails

DEFAULT_LIMIT = 100
DEFAULT_RPC_TIMEOUT = 30
# The most rows one request returns, whatever limit it asks for (Ray's default too).
MAX_LIMIT_FROM_API_SERVER = 10_000


class StateResource(Enum):
    ACTORS = "actors"
    JOBS = "jobs"
    PLACEMENT_GROUPS = "placement_groups"
    NODES = "nodes"
    WORKERS = "workers"
    TASKS = "tasks"
    OBJECTS = "objects"
    RUNTIME_ENVS = "runtime_envs"
    CLUSTER_EVENTS = "cluster_events"


class SummaryResource(Enum):
    ACTORS = "actors"
    TASKS = "tasks"
    OBJECTS = "objects"


class RayStateApiException(Exception):
    """A state API request failed (the server answered with an error, or partial data)."""


def state_column(*, filterable: bool, detail: bool = False, **kwargs: Any):
    """A dataclass field that knows whether it can be filtered on and whether it is detail-only."""
    kwargs.setdefault("default", None)
    return field(metadata={"filterable": filterable, "detail": detail}, **kwargs)


class StateSchema:
    """Base of the resource dataclasses: column introspection plus dict-style access."""

    @classmethod
    def list_columns(cls, detail: bool = True) -> list[str]:
        return [f.name for f in fields(cls) if detail or not f.metadata.get("detail")]

    @classmethod
    def columns(cls) -> set[str]:
        return set(cls.list_columns(detail=True))

    @classmethod
    def base_columns(cls) -> set[str]:
        return set(cls.list_columns(detail=False))

    @classmethod
    def detail_columns(cls) -> set[str]:
        return set(cls.list_columns(detail=True))

    @classmethod
    def filterable_columns(cls) -> set[str]:
        return {f.name for f in fields(cls) if f.metadata.get("filterable")}

    @classmethod
    def from_dict(cls, d: dict) -> StateSchema:
        names = cls.columns()
        return cls(**{k: v for k, v in d.items() if k in names})

    def asdict(self) -> dict:
        return dataclasses.asdict(self)

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: str) -> bool:
        return key in self.columns()

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def keys(self) -> list[str]:
        return self.list_columns()


@dataclass
class ActorState(StateSchema):
    """An actor (``list_actors``). ``state``: DEPENDENCIES_UNREADY, PENDING_CREATION, ALIVE, RESTARTING, DEAD."""

    actor_id: str = state_column(filterable=True)
    class_name: str = state_column(filterable=True)
    state: str = state_column(filterable=True)
    job_id: str = state_column(filterable=True)
    name: str | None = state_column(filterable=True)
    node_id: str | None = state_column(filterable=True)
    pid: int | None = state_column(filterable=True)
    ray_namespace: str | None = state_column(filterable=True)
    serialized_runtime_env: str | None = state_column(filterable=False, detail=True)
    required_resources: dict | None = state_column(filterable=False, detail=True)
    death_cause: dict | None = state_column(filterable=False, detail=True)
    is_detached: bool | None = state_column(filterable=False, detail=True)
    placement_group_id: str | None = state_column(filterable=True, detail=True)
    repr_name: str | None = state_column(filterable=True, detail=True)
    num_restarts: int | None = state_column(filterable=False, detail=True)
    num_restarts_due_to_lineage_reconstruction: int | None = state_column(filterable=False, detail=True)
    num_restarts_due_to_node_preemption: int | None = state_column(filterable=False, detail=True)
    call_site: str | None = state_column(filterable=False, detail=True)
    label_selector: dict | None = state_column(filterable=False, detail=True)
    fallback_strategy: dict | None = state_column(filterable=False, detail=True)


@dataclass
class PlacementGroupState(StateSchema):
    """A placement group. ``state``: PENDING, CREATED, REMOVED, RESCHEDULING."""

    placement_group_id: str = state_column(filterable=True)
    name: str = state_column(filterable=True)
    creator_job_id: str = state_column(filterable=True)
    state: str = state_column(filterable=True)
    bundles: list | None = state_column(filterable=False, detail=True)
    is_detached: bool | None = state_column(filterable=True, detail=True)
    stats: dict | None = state_column(filterable=False, detail=True)
    topology_strategy: dict | None = state_column(filterable=False, detail=True)
    topology_assignments: dict | None = state_column(filterable=False, detail=True)


@dataclass
class NodeState(StateSchema):
    """A node. ``state``: ALIVE or DEAD."""

    node_id: str = state_column(filterable=True)
    node_ip: str = state_column(filterable=True)
    is_head_node: bool = state_column(filterable=True)
    state: str = state_column(filterable=True)
    state_message: str | None = state_column(filterable=False)
    node_name: str = state_column(filterable=True)
    resources_total: dict = state_column(filterable=False)
    labels: dict = state_column(filterable=False)
    start_time_ms: int | None = state_column(filterable=False, detail=True)
    end_time_ms: int | None = state_column(filterable=False, detail=True)


@dataclass
class WorkerState(StateSchema):
    """A worker or driver process. ``worker_type``: WORKER or DRIVER."""

    worker_id: str = state_column(filterable=True)
    is_alive: bool = state_column(filterable=True)
    worker_type: str = state_column(filterable=True)
    exit_type: str | None = state_column(filterable=True)
    node_id: str = state_column(filterable=True)
    ip: str = state_column(filterable=True)
    pid: int = state_column(filterable=True)
    exit_detail: str | None = state_column(filterable=False, detail=True)
    worker_launch_time_ms: int | None = state_column(filterable=False, detail=True)
    worker_launched_time_ms: int | None = state_column(filterable=False, detail=True)
    start_time_ms: int | None = state_column(filterable=False, detail=True)
    end_time_ms: int | None = state_column(filterable=False, detail=True)
    debugger_port: int | None = state_column(filterable=True, detail=True)
    num_paused_threads: int | None = state_column(filterable=True, detail=True)


@dataclass
class TaskState(StateSchema):
    """A task attempt. ``state``: PENDING_ARGS_AVAIL, PENDING_NODE_ASSIGNMENT, RUNNING, FINISHED, FAILED..."""

    task_id: str = state_column(filterable=True)
    attempt_number: int = state_column(filterable=True)
    name: str = state_column(filterable=True)
    state: str = state_column(filterable=True)
    job_id: str = state_column(filterable=True)
    actor_id: str | None = state_column(filterable=True)
    type: str = state_column(filterable=True)
    func_or_class_name: str = state_column(filterable=True)
    parent_task_id: str = state_column(filterable=True)
    node_id: str | None = state_column(filterable=True)
    worker_id: str | None = state_column(filterable=True)
    worker_pid: int | None = state_column(filterable=True)
    error_type: str | None = state_column(filterable=True)
    language: str | None = state_column(filterable=True, detail=True)
    required_resources: dict | None = state_column(filterable=False, detail=True)
    runtime_env_info: dict | None = state_column(filterable=False, detail=True)
    placement_group_id: str | None = state_column(filterable=True, detail=True)
    events: list | None = state_column(filterable=False, detail=True)
    profiling_data: dict | None = state_column(filterable=False, detail=True)
    creation_time_ms: int | None = state_column(filterable=False, detail=True)
    start_time_ms: int | None = state_column(filterable=False, detail=True)
    end_time_ms: int | None = state_column(filterable=False, detail=True)
    task_log_info: dict | None = state_column(filterable=False, detail=True)
    error_message: str | None = state_column(filterable=False, detail=True)
    is_debugger_paused: bool | None = state_column(filterable=True, detail=True)
    call_site: str | None = state_column(filterable=False, detail=True)
    label_selector: dict | None = state_column(filterable=False, detail=True)
    fallback_strategy: dict | None = state_column(filterable=False, detail=True)


@dataclass
class ObjectState(StateSchema):
    """An object reference held by its owner."""

    object_id: str = state_column(filterable=True)
    object_size: int = state_column(filterable=True)
    task_status: str = state_column(filterable=True)
    attempt_number: int = state_column(filterable=True)
    reference_type: str = state_column(filterable=True)
    call_site: str = state_column(filterable=True)
    type: str = state_column(filterable=True)
    pid: int = state_column(filterable=True)
    ip: str = state_column(filterable=True)


@dataclass
class JobState(JobDetails):
    """A job (a submission or a plain driver), as the Jobs API describes it."""

    _BASE = ("job_id", "submission_id", "entrypoint", "type", "status", "message", "error_type", "driver_info")

    @classmethod
    def list_columns(cls, detail: bool = True) -> list[str]:
        return [f.name for f in fields(cls)] if detail else list(cls._BASE)

    @classmethod
    def columns(cls) -> set[str]:
        return set(cls.list_columns())

    @classmethod
    def filterable_columns(cls) -> set[str]:
        return {"job_id", "type", "status", "submission_id"}

    @classmethod
    def from_dict(cls, d: dict) -> JobState:
        names = cls.columns()
        return cls(**{k: v for k, v in d.items() if k in names})

    def asdict(self) -> dict:
        return self.to_json()

    def __getitem__(self, key: str) -> Any:
        value = getattr(self, key)
        return str(value) if isinstance(value, Enum) else value

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if hasattr(self, key) else default


SCHEMAS: dict[StateResource, type] = {
    StateResource.ACTORS: ActorState,
    StateResource.PLACEMENT_GROUPS: PlacementGroupState,
    StateResource.NODES: NodeState,
    StateResource.WORKERS: WorkerState,
    StateResource.TASKS: TaskState,
    StateResource.OBJECTS: ObjectState,
    StateResource.JOBS: JobState,
}

# The id column ``get_<resource>(id)`` looks up.
ID_COLUMNS = {
    StateResource.NODES: "node_id",
    StateResource.ACTORS: "actor_id",
    StateResource.PLACEMENT_GROUPS: "placement_group_id",
    StateResource.WORKERS: "worker_id",
    StateResource.TASKS: "task_id",
    StateResource.OBJECTS: "object_id",
    StateResource.JOBS: "submission_id",
}


def resource_of(name: str | StateResource) -> StateResource:
    if isinstance(name, StateResource):
        return name
    try:
        return StateResource(name.replace("-", "_"))
    except ValueError:
        supported = ", ".join(r.value for r in SCHEMAS)
        raise ValueError(f"Unknown state resource {name!r}; supported: {supported}") from None


def humanize_time_ms(ms: int | None) -> str:
    return "" if not ms else str(datetime.datetime.fromtimestamp(ms / 1000))


def humanize_bytes(n: int | float | None) -> str:
    if n is None:
        return ""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3f} {unit}"
    return f"{n:.3f} B"
