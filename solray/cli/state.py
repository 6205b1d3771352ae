"""``solray list``, ``get``, ``summary``, ``timeline`` and ``memory``: the state API
from the command line (Ray's ``ray list actors --filter "state=ALIVE"`` and friends).

The cluster is ``--address`` (a dashboard URL, ``host:port`` of the control service, or
``auto``), else ``RAY_ADDRESS``/``SOLRAY_ADDRESS``, else the cluster started on this machine.
"""

from __future__ import annotations

import json
import re

import click

from solray.util.state import api
from solray.util.state.common import SCHEMAS, RayStateApiException, StateResource, resource_of

LISTABLE = ["actors", "tasks", "nodes", "jobs", "objects", "placement-groups", "workers"]
_FILTER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(!=|=)\s*(.*?)\s*$")


def parse_filter(text: str) -> tuple[str, str, str]:
    """``"state=ALIVE"`` / ``"state!=DEAD"`` -> ``("state", "=", "ALIVE")``."""
    m = _FILTER.match(text)
    if m is None:
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE or KEY!=VALUE", param_hint="--filter")
    return m.group(1), m.group(2), m.group(3)


def _plain(value):
    if hasattr(value, "asdict"):
        return value.asdict()
    return value


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    text = str(value)
    return text.split(".")[-1] if text.startswith(("JobStatus.", "JobType.")) else text


def format_table(rows: list[dict], columns: list[str]) -> str:
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [min(len(row[i]), 60) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(v[:60].ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _dump(data, fmt: str) -> str:
    if fmt == "yaml":
        try:
            import yaml

            return yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False)
        except ImportError:
            fmt = "json"
    return json.dumps(data, indent=2, default=str)


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (ConnectionError, RayStateApiException, ValueError, TypeError) as e:
        raise click.ClickException(str(e)) from e


_address = click.option("--address", default=None, help="Dashboard URL, control HOST:PORT or 'auto'.")
_timeout = click.option("--timeout", type=int, default=30, show_default=True)


@click.command(name="list")
@click.argument("resource", type=click.Choice(LISTABLE + ["placement_groups"]))
@click.option("--filter", "filters", multiple=True, help='KEY=VALUE or KEY!=VALUE, e.g. --filter "state=ALIVE" (repeatable: AND).')
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--detail", is_flag=True, help="All columns (as get_* returns).")
@click.option("--format", "fmt", type=click.Choice(["default", "table", "json", "yaml"]), default="default")
@_address
@_timeout
def list_cmd(resource, filters, limit, detail, fmt, address, timeout) -> None:
    """List actors, tasks, nodes, jobs, objects, placement groups or workers."""
    res = resource_of(resource)
    parsed = [parse_filter(f) for f in filters]
    items = _call(
        api._list, res, address, parsed, limit, timeout, detail, False, False
    )
    rows = [_plain(i) for i in items]
    if fmt in ("json", "yaml"):
        click.echo(_dump(rows, fmt))
        return
    columns = SCHEMAS[res].list_columns(detail=False)
    if res == StateResource.JOBS:
        columns = [c for c in columns if c not in ("driver_info", "message")]
    click.echo(f"======== List: {len(rows)} {res.value.replace('_', ' ')} ========")
    click.echo(format_table(rows, columns) if rows else "(none)")


@click.command(name="get")
@click.argument("resource", type=click.Choice(["actors", "tasks", "nodes", "jobs", "objects", "placement-groups", "workers"]))
@click.argument("id")
@_address
@_timeout
def get_cmd(resource, id, address, timeout) -> None:
    """One resource by id, all its columns (YAML if PyYAML is installed, else JSON)."""
    res = resource_of(resource)
    getter = {
        StateResource.ACTORS: api.get_actor, StateResource.TASKS: api.get_task, StateResource.NODES: api.get_node,
        StateResource.JOBS: api.get_job, StateResource.OBJECTS: api.get_objects,
        StateResource.PLACEMENT_GROUPS: api.get_placement_group, StateResource.WORKERS: api.get_worker,
    }[res]
    found = _call(getter, id, address=address, timeout=timeout)
    if not found:
        raise click.ClickException(f"No {res.value} with id {id}.")
    data = [_plain(f) for f in found] if isinstance(found, list) else _plain(found)
    click.echo(_dump(data, "yaml"))


@click.command(name="summary")
@click.argument("resource", type=click.Choice(["tasks", "actors", "objects"]))
@click.option("--format", "fmt", type=click.Choice(["default", "table", "json", "yaml"]), default="default")
@_address
@_timeout
def summary_cmd(resource, fmt, address, timeout) -> None:
    """Tasks by function and state, actors by class and state, objects by call site."""
    fn = {"tasks": api.summarize_tasks, "actors": api.summarize_actors, "objects": api.summarize_objects}[resource]
    summary = _call(fn, address=address, timeout=timeout)["cluster"]
    if fmt in ("json", "yaml"):
        click.echo(_dump(summary, fmt))
        return
    click.echo(f"======== {resource.capitalize()} Summary ========")
    if resource == "tasks":
        click.echo(f"total tasks: {summary['total_tasks']}, actor tasks: {summary['total_actor_tasks']}, "
                   f"actors scheduled: {summary['total_actor_scheduled']}")
        rows = [{"func_or_class_name": k, "type": v["type"], "state_counts": v["state_counts"]}
                for k, v in summary["summary"].items()]
        columns = ["func_or_class_name", "type", "state_counts"]
    elif resource == "actors":
        click.echo(f"total actors: {summary['total_actors']}")
        rows = [{"class_name": k, "state_counts": v["state_counts"]} for k, v in summary["summary"].items()]
        columns = ["class_name", "state_counts"]
    else:
        click.echo(f"total objects: {summary['total_objects']}, total size: {summary['total_size_mb']:.2f} MiB")
        rows = [{"call_site": k, **v} for k, v in summary["summary"].items()]
        columns = ["call_site", "total_objects", "total_size_mb", "ref_type_counts", "task_state_counts"]
    click.echo(format_table(rows, columns) if rows else "(none)")


@click.command(name="timeline")
@click.option("--output", "-o", default=None, help="File to write (default: timeline-<time>.json).")
@click.option("--job-id", default=None, help="Only this job's tasks (hex job id).")
@_address
@_timeout
def timeline_cmd(output, job_id, address, timeout) -> None:
    """Write the tasks' Chrome trace (open it in chrome://tracing or ui.perfetto.dev)."""
    import time

    events = _call(api.timeline, address=address, job_id=job_id, timeout=timeout)
    output = output or f"timeline-{time.strftime('%Y-%m-%d_%H-%M-%S')}.json"
    with open(output, "w") as f:
        json.dump(events, f)
    click.echo(f"Wrote {len(events)} task events to {output}; open it in chrome://tracing or https://ui.perfetto.dev.")


@click.command(name="memory")
@click.option("--sort-by", type=click.Choice(["object_size", "pid", "reference_type"]), default="object_size",
              show_default=True)
@click.option("--units", type=click.Choice(["B", "KB", "MB", "GB"]), default="B", show_default=True)
@_address
@_timeout
def memory_cmd(sort_by, units, address, timeout) -> None:
    """Object references held in the cluster, by node, with their sizes (Ray's ``ray memory``)."""
    objects = _call(api.list_objects, address=address, limit=10_000, timeout=timeout, raise_on_missing_output=False)
    scale = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30}[units]
    rows = sorted((_plain(o) for o in objects), key=lambda o: (o.get(sort_by) is None, o.get(sort_by)),
                  reverse=sort_by == "object_size")
    by_ip: dict[str, list] = {}
    for o in rows:
        by_ip.setdefault(o["ip"], []).append(
            {**o, "size": f"{o['object_size'] / scale:.2f} {units}" if scale > 1 else f"{o['object_size']} B"}
        )
    click.echo("======== Object references ========")
    for ip, items in sorted(by_ip.items()):
        click.echo(f"--- node {ip} ---")
        click.echo(format_table(items, ["pid", "type", "task_status", "size", "reference_type", "object_id"]))
    total = sum(o["object_size"] for o in rows)
    click.echo(f"--- summary: {len(rows)} references, {total / scale:.2f} {units} ---" if scale > 1
               else f"--- summary: {len(rows)} references, {total} B ---")


COMMANDS = [list_cmd, get_cmd, summary_cmd, timeline_cmd, memory_cmd]
