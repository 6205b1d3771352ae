"""The state API (Ray's ``ray.util.state``): what runs in the cluster, listed and summarized.

    from solray.util.state import list_actors, list_tasks, summarize_tasks
    list_actors(filters=[("state", "=", "ALIVE")])
    list_tasks(filters=[("state", "=", "FAILED")], detail=True, limit=10)

The same answers come from the dashboard's ``/api/v0/*`` routes and ``solray list ...``.
"""

from __future__ import annotations

from solray.util.state.api import (
    StateApiClient,
    get_actor,
    get_job,
    get_node,
    get_objects,
    get_placement_group,
    get_task,
    get_worker,
    list_actors,
    list_jobs,
    list_nodes,
    list_objects,
    list_placement_groups,
    list_tasks,
    list_workers,
    summarize_actors,
    summarize_objects,
    summarize_tasks,
    timeline,
)
from solray.util.state.common import (
    ActorState,
    JobState,
    NodeState,
    ObjectState,
    PlacementGroupState,
    RayStateApiException,
    StateResource,
    SummaryResource,
    TaskState,
    WorkerState,
)
from solray.util.state.log_api import get_log, list_logs

__all__ = [
    "ActorState",
    "JobState",
    "NodeState",
    "ObjectState",
    "PlacementGroupState",
    "RayStateApiException",
    "StateApiClient",
    "StateResource",
    "SummaryResource",
    "TaskState",
    "WorkerState",
    "get_actor",
    "get_job",
    "get_log",
    "get_node",
    "get_objects",
    "get_placement_group",
    "get_task",
    "get_worker",
    "list_actors",
    "list_jobs",
    "list_logs",
    "list_nodes",
    "list_objects",
    "list_placement_groups",
    "list_tasks",
    "list_workers",
    "summarize_actors",
    "summarize_objects",
    "summarize_tasks",
    "timeline",
]
