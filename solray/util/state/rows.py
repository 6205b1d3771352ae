"""From the control service's tables to the state API's rows, and the query on them.

Sans-IO: every function takes what the control service (and the node daemons, through
it) answered and returns plain dicts with Ray's column names, so the driver-side API and
the dashboard's ``/api/v0/*`` routes build identical answers from the same code.
"""

from __future__ import annotations

import json
from typing import Any

from solray.job_submission.models import DriverInfo, JobDetails, JobInfo, JobStatus, JobType
from solray.util.state.common import (
    DEFAULT_LIMIT,
    MAX_LIMIT_FROM_API_SERVER,
    SCHEMAS,
    StateResource,
)


def job_hex(job_id: int | None) -> str | None:
    return None if job_id is None else int(job_id).to_bytes(4, "little").hex()


def _hex(b: bytes | str | None) -> str | None:
    if b is None:
        return None
    return b.hex() if isinstance(b, (bytes, bytearray)) else str(b)


def _ms(t: float | None) -> int | None:
    return int(t * 1000) if t else None


# ---------------------------------------------------------------------- resources
def actor_rows(actors: list[dict]) -> list[dict]:
    out = []
    for a in actors:
        death = a.get("death")
        state = a["state"]
        out.append(
            {
                "actor_id": _hex(a["actor_id"]),
                "class_name": a.get("class_name") or "",
                "state": state,
                "job_id": job_hex(a.get("job_id")),
                "name": a.get("name") or "",
                "node_id": a.get("node_id"),
                "pid": a.get("pid"),
                "ray_namespace": a.get("namespace") or "",
                "serialized_runtime_env": json.dumps(a.get("runtime_env") or {}),
                "required_resources": a.get("resources") or {},
                "death_cause": {"actor_died_error_context": {"error_message": death.get("message")}} if death else None,
                "is_detached": bool(a.get("detached")),
                "placement_group_id": a.get("placement_group_id"),
                "repr_name": a.get("repr_name") or "",
                "num_restarts": a.get("num_restarts") or 0,
                "num_restarts_due_to_lineage_reconstruction": 0,
                "num_restarts_due_to_node_preemption": 0,
                "call_site": None,
                "label_selector": None,
                "fallback_strategy": None,
            }
        )
    return out


def node_rows(nodes: list[dict]) -> list[dict]:
    out = []
    for n in nodes:
        alive = bool(n.get("alive"))
        total = {k: v for k, v in (n.get("resources_total") or {}).items()}
        out.append(
            {
                "node_id": n["node_id"],
                "node_ip": n.get("node_ip"),
                "is_head_node": bool(n.get("is_head")),
                "state": "ALIVE" if alive else "DEAD",
                "state_message": None if alive else "The node stopped sending heartbeats or exited.",
                "node_name": n.get("node_ip"),
                "resources_total": total,
                "labels": n.get("labels") or {},
                "start_time_ms": _ms(n.get("conn_time")),
                "end_time_ms": _ms(n.get("death_time")),
            }
        )
    return out


def placement_group_rows(groups: list[dict]) -> list[dict]:
    out = []
    for g in groups:
        nodes = g.get("bundles_to_node_id") or {}
        bundles = [
            {"bundle_id": {"placement_group_id": g["placement_group_id"], "bundle_index": int(i)},
             "unit_resources": dict(b), "node_id": nodes.get(i, nodes.get(str(i)))}
            for i, b in sorted((g.get("bundles") or {}).items(), key=lambda kv: int(kv[0]))
        ]
        out.append(
            {
                "placement_group_id": g["placement_group_id"],
                "name": g.get("name") or "",
                "creator_job_id": job_hex(g.get("creator_job_id")),
                "state": g.get("state"),
                "bundles": bundles,
                "is_detached": bool(g.get("is_detached")),
                "stats": g.get("stats"),
                "topology_strategy": {"strategy": g.get("strategy")},
                "topology_assignments": None,
            }
        )
    return out


def _log_info(span: list | None) -> dict | None:
    """Where a finished task's output lies in its worker's log (stdout and stderr share it)."""
    if not span:
        return None
    start, end = span
    return {"stdout_start": start, "stdout_end": end, "stderr_start": start, "stderr_end": end}


def task_rows(tasks: list[dict]) -> list[dict]:
    out = []
    for t in tasks:
        out.append(
            {
                "task_id": _hex(t["task_id"]),
                "attempt_number": t.get("attempt") or 0,
                "name": t.get("name") or "",
                "state": t.get("state"),
                "job_id": job_hex(t.get("job")),
                "actor_id": _hex(t.get("actor")),
                "type": t.get("type") or "NORMAL_TASK",
                "func_or_class_name": t.get("func") or t.get("name") or "",
                "parent_task_id": _hex(t.get("parent")) or "ffffffffffffffffffffffffffffffffffffffff",
                "node_id": t.get("node"),
                "worker_id": t.get("worker"),
                "worker_pid": t.get("pid"),
                "error_type": t.get("error_type"),
                "language": "PYTHON",
                "required_resources": t.get("res") or {},
                "runtime_env_info": None,
                "placement_group_id": t.get("pg"),
                "events": [{"state": s, "created_ms": _ms(ts)} for s, ts in t.get("events") or ()],
                "profiling_data": None,
                "creation_time_ms": _ms(t.get("creation_time")),
                "start_time_ms": _ms(t.get("start_time")),
                "end_time_ms": _ms(t.get("end_time")),
                "task_log_info": _log_info(t.get("log")),
                "error_message": t.get("error_message"),
                "is_debugger_paused": False,
                "call_site": None,
                "label_selector": None,
                "fallback_strategy": None,
            }
        )
    return out


def worker_rows(answers: list[dict]) -> tuple[list[dict], list[str]]:
    """Rows from every node's ``list_workers`` answer, and the errors of nodes that failed."""
    rows, errors = [], []
    for a in answers:
        if "error" in a:
            errors.append(f"node {a['node_id']}: {a['error']}")
            continue
        for w in a["result"]:
            rows.append(
                {
                    "worker_id": w["worker_id"],
                    "is_alive": w["is_alive"],
                    "worker_type": w["worker_type"],
                    "exit_type": w.get("exit_type"),
                    "node_id": w["node_id"],
                    "ip": w["ip"],
                    "pid": w.get("pid"),
                    "exit_detail": w.get("exit_detail"),
                    "worker_launch_time_ms": None,
                    "worker_launched_time_ms": None,
                    "start_time_ms": None,
                    "end_time_ms": None,
                    "debugger_port": None,
                    "num_paused_threads": 0,
                }
            )
    return rows, errors


def object_rows(answers: list[dict]) -> tuple[list[dict], list[str], int]:
    """Rows from every node's ``list_objects`` answer, errors, and the objects not listed."""
    rows, errors, missing = [], [], 0
    for a in answers:
        if "error" in a:
            errors.append(f"node {a['node_id']}: {a['error']}")
            continue
        res = a["result"]
        errors += [f"node {a['node_id']}: {e}" for e in res.get("errors") or ()]
        for proc in res["processes"]:
            missing += max(0, proc.get("total", 0) - len(proc["objects"]))
            for oid, size, status, ref_type, attempt in proc["objects"]:
                rows.append(
                    {
                        "object_id": _hex(oid),
                        "object_size": size,
                        "task_status": status,
                        "attempt_number": attempt,
                        "reference_type": ref_type,
                        "call_site": "disabled",
                        "type": proc["type"],
                        "pid": proc["pid"],
                        "ip": proc["ip"],
                    }
                )
    return rows, errors, missing


def job_rows(records: list[dict], drivers: list[dict]) -> list[dict]:
    """Submission jobs (the Jobs API's records) and plain driver jobs, as ``JobDetails``."""

    def driver_info(job: dict) -> DriverInfo:
        ip = (job.get("driver_address") or "127.0.0.1").rsplit(":", 1)[0]
        return DriverInfo(id=job_hex(job["job_id"]), node_ip_address=ip, pid=str(job.get("pid") or ""))

    out = []
    submitted = set()
    for r in records:
        sid = r["submission_id"]
        submitted.add(sid)
        mine = [d for d in drivers if d.get("submission_id") == sid]
        driver = max(mine, key=lambda d: d["job_id"]) if mine else None
        info = JobInfo.from_json(r["info"]).to_json()
        out.append(
            JobDetails(
                type=JobType.SUBMISSION,
                submission_id=sid,
                job_id=job_hex(driver["job_id"]) if driver else None,
                driver_info=driver_info(driver) if driver else None,
                **info,
            ).to_json()
        )
    for d in drivers:
        if d.get("submission_id") in submitted:
            continue
        status = {"RUNNING": JobStatus.RUNNING, "SUCCEEDED": JobStatus.SUCCEEDED}.get(d.get("status"), JobStatus.FAILED)
        out.append(
            JobDetails(
                type=JobType.DRIVER,
                job_id=job_hex(d["job_id"]),
                driver_info=driver_info(d),
                status=status,
                entrypoint=d.get("entrypoint") or "",
                start_time=_ms(d.get("start_time")),
                end_time=_ms(d.get("end_time")),
                metadata={},
                runtime_env=d.get("runtime_env") or {},
            ).to_json()
        )
    return out


# ---------------------------------------------------------------------- the query
def _as_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ValueError(f"Invalid boolean filter value {value!r}")


def _matches(actual: Any, predicate: str, expected: Any) -> bool:
    if isinstance(expected, str) and isinstance(actual, bool):
        eq = actual == _as_bool(expected)
    elif isinstance(expected, str) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        try:
            eq = actual == type(actual)(expected)
        except ValueError:
            eq = False
    elif isinstance(expected, str) and isinstance(actual, str):
        eq = actual.lower() == expected.lower()  # string filters ignore case, as Ray's
    elif actual is None and isinstance(expected, str):
        eq = expected.lower() in ("", "none", "null")
    else:
        eq = actual == expected
    if predicate == "=":
        return eq
    if predicate == "!=":
        return not eq
    raise ValueError(f"Unsupported filter predicate {predicate} is given. Available predicates: =, !=.")


def validate_filters(resource: StateResource, filters: list | None) -> list[tuple]:
    schema = SCHEMAS[resource]
    out = []
    for f in filters or ():
        if len(f) != 3:
            raise ValueError(f"The given filter has incorrect input type, {f}. Provide (key, predicate, value) tuples.")
        key, predicate, value = f
        key = str(key).lower()
        if predicate not in ("=", "!="):
            raise ValueError(f"Unsupported filter predicate {predicate} is given. Available predicates: =, !=.")
        if key not in schema.filterable_columns():
            raise ValueError(
                f"The given filter column {key} is not supported. Supported filter columns: "
                f"{sorted(schema.filterable_columns())}"
            )
        out.append((key, predicate, value))
    return out


def apply_query(
    resource: StateResource,
    rows: list[dict],
    *,
    filters: list | None = None,
    limit: int | None = DEFAULT_LIMIT,
    detail: bool = False,
    total: int | None = None,
    warnings: list[str] | None = None,
    partial_failure: str = "",
    available: int | None = None,
) -> dict:
    """Filter, limit and project ``rows``: Ray's ``ListApiResponse`` as a dict.

    ``available``: ``rows`` are the newest of that many (fetched with a limit, unfiltered),
    so that many rows were available and matched."""
    schema = SCHEMAS[resource]
    filters = validate_filters(resource, filters)
    filtered = [r for r in rows if all(_matches(r.get(k), p, v) for k, p, v in filters)]
    limit = MAX_LIMIT_FROM_API_SERVER if limit is None else max(0, min(int(limit), MAX_LIMIT_FROM_API_SERVER))
    columns = schema.list_columns(detail=detail)
    result = [{c: r.get(c) for c in columns} for r in filtered[:limit]]
    return {
        "total": len(rows) if total is None else total,
        "num_after_truncation": len(rows) if available is None else available,
        "num_filtered": len(filtered) if available is None else available,
        "result": result,
        "partial_failure_warning": partial_failure,
        "warnings": warnings or None,
    }


# ---------------------------------------------------------------------- summaries
def summarize_tasks(tasks: list[dict]) -> dict:
    """Ray's ``TaskSummaries`` by function name: ``{"summary": {name: {...}}, "total_tasks"...}``."""
    summary: dict[str, dict] = {}
    totals = {"NORMAL_TASK": 0, "ACTOR_TASK": 0, "ACTOR_CREATION_TASK": 0}
    for t in tasks:
        key = t.get("name") or t.get("func_or_class_name")
        entry = summary.setdefault(key, {"func_or_class_name": key, "type": t["type"], "state_counts": {}})
        entry["state_counts"][t["state"]] = entry["state_counts"].get(t["state"], 0) + 1
        if t["type"] in totals:
            totals[t["type"]] += 1
    return {
        "summary": summary,
        "total_tasks": totals["NORMAL_TASK"],
        "total_actor_tasks": totals["ACTOR_TASK"],
        "total_actor_scheduled": totals["ACTOR_CREATION_TASK"],
        "summary_by": "func_name",
    }


def summarize_actors(actors: list[dict]) -> dict:
    summary: dict[str, dict] = {}
    for a in actors:
        entry = summary.setdefault(a["class_name"], {"class_name": a["class_name"], "state_counts": {}})
        entry["state_counts"][a["state"]] = entry["state_counts"].get(a["state"], 0) + 1
    return {"summary": summary, "total_actors": len(actors), "summary_by": "class"}


def summarize_objects(objects: list[dict]) -> dict:
    summary: dict[str, dict] = {}
    total_size = 0
    for o in objects:
        key = o.get("call_site") or "disabled"
        e = summary.setdefault(
            key,
            {"total_objects": 0, "total_size_mb": 0.0, "total_num_workers": set(), "total_num_nodes": set(),
             "task_state_counts": {}, "task_attempt_number_counts": {}, "ref_type_counts": {}},
        )
        e["total_objects"] += 1
        e["total_size_mb"] += (o.get("object_size") or 0) / 2**20
        e["total_num_workers"].add(o.get("pid"))
        e["total_num_nodes"].add(o.get("ip"))
        for field, value in (("task_state_counts", o.get("task_status")), ("ref_type_counts", o.get("reference_type")),
                             ("task_attempt_number_counts", str(o.get("attempt_number")))):
            e[field][value] = e[field].get(value, 0) + 1
        total_size += o.get("object_size") or 0
    for e in summary.values():
        e["total_num_workers"] = len(e["total_num_workers"])
        e["total_num_nodes"] = len(e["total_num_nodes"])
    return {
        "summary": summary,
        "total_objects": len(objects),
        "total_size_mb": total_size / 2**20,
        "callsite_enabled": False,
        "summary_by": "callsite",
    }


def timeline(tasks: list[dict]) -> list[dict]:
    """Chrome trace events (``chrome://tracing``, Perfetto) of the tasks that ran."""
    events = []
    for t in tasks:
        start, end = t.get("start_time_ms"), t.get("end_time_ms")
        if not start:
            continue
        events.append(
            {
                "cat": "task::" + (t.get("name") or ""),
                "name": t.get("name") or "",
                "pid": f"Node {t.get('node_id') or ''}",
                "tid": f"Worker {t.get('worker_pid') or t.get('worker_id') or ''}",
                "ph": "X",
                "ts": start * 1000,
                "dur": max(0, ((end or start) - start) * 1000),
                "cname": "rail_response" if t.get("state") == "FAILED" else "generic_work",
                "args": {
                    "task_id": t.get("task_id"),
                    "job_id": t.get("job_id"),
                    "attempt_number": t.get("attempt_number"),
                    "state": t.get("state"),
                    "func_or_class_name": t.get("func_or_class_name"),
                    "actor_id": t.get("actor_id"),
                },
            }
        )
    return events
