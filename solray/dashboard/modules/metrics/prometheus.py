"""Prometheus' text exposition format (version 0.0.4) for the cluster's metrics.

``render`` takes the control service's ``get_metrics`` answer (user metrics and the
numbers behind the built-in ones) plus the jobs by status, and writes Ray's metric names
where Ray has one (``ray_tasks{State=...}``, ``ray_actors``, ``ray_resources``,
``ray_object_store_memory``, ``ray_node_*``, ``ray_cluster_active_nodes``) so Ray's
Grafana dashboards read them. User metrics get Ray's ``ray_`` prefix.
"""

from __future__ import annotations

import math

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "ray_"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(tags: dict | list) -> str:
    items = tags.items() if isinstance(tags, dict) else tags
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in items)
    return "{" + inner + "}" if inner else ""


def _num(v: float) -> str:
    if v is None:
        return "NaN"
    if isinstance(v, float):
        if math.isinf(v):
            return "+Inf" if v > 0 else "-Inf"
        if v.is_integer():
            return str(int(v))
    return repr(v) if isinstance(v, float) else str(v)


class _Writer:
    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {_escape(help_text) or name}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, tags, value) -> None:
        self.lines.append(f"{name}{_labels(tags)} {_num(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _cluster(w: _Writer, c: dict, jobs_by_status: dict[str, int]) -> None:
    nodes = c.get("nodes") or []
    alive = [n for n in nodes if n["alive"]]
    w.family("ray_cluster_active_nodes", "gauge", "Nodes alive in the cluster.")
    w.sample("ray_cluster_active_nodes", {}, len(alive))
    w.family("ray_cluster_dead_nodes", "gauge", "Nodes that left or died.")
    w.sample("ray_cluster_dead_nodes", {}, len(nodes) - len(alive))

    w.family("ray_resources", "gauge", "Logical resources of the cluster's nodes by state (USED, AVAILABLE).")
    for n in alive:
        for name, total in sorted(n["total"].items()):
            if name.startswith("node:"):
                continue
            avail = n["available"].get(name, 0.0)
            base = {"Name": name, "NodeAddress": n["node_ip"], "NodeId": n["node_id"]}
            w.sample("ray_resources", {**base, "State": "USED"}, total - avail)
            w.sample("ray_resources", {**base, "State": "AVAILABLE"}, avail)
    w.family("ray_node_cpu_count", "gauge", "CPUs of each node (logical resource).")
    for n in alive:
        w.sample("ray_node_cpu_count", {"NodeAddress": n["node_ip"], "NodeId": n["node_id"]}, n["total"].get("CPU", 0))
    w.family("ray_node_cpu_utilization", "gauge", "CPU utilization of each node's host, percent.")
    for n in alive:
        if n.get("cpu_percent") is not None:
            w.sample("ray_node_cpu_utilization", {"NodeAddress": n["node_ip"], "NodeId": n["node_id"]}, n["cpu_percent"])
    w.family("ray_node_mem_used", "gauge", "Memory used on each node's host, bytes.")
    for n in alive:
        if n.get("mem_used") is not None:
            w.sample("ray_node_mem_used", {"NodeAddress": n["node_ip"], "NodeId": n["node_id"]}, n["mem_used"])
    w.family("ray_node_mem_total", "gauge", "Memory of each node's host, bytes.")
    for n in alive:
        if n.get("mem_total") is not None:
            w.sample("ray_node_mem_total", {"NodeAddress": n["node_ip"], "NodeId": n["node_id"]}, n["mem_total"])
    w.family("ray_object_store_memory", "gauge", "Bytes of objects in each node's object store, by location.")
    for n in alive:
        base = {"NodeAddress": n["node_ip"], "NodeId": n["node_id"]}
        w.sample("ray_object_store_memory", {**base, "Location": "MMAP_SHM"}, n.get("object_store_used") or 0)
        w.sample("ray_object_store_memory", {**base, "Location": "SPILLED"}, n.get("spilled_bytes") or 0)
    w.family("ray_object_store_available_memory", "gauge", "Free bytes of each node's object store.")
    for n in alive:
        free = (n.get("object_store_memory") or 0) - (n.get("object_store_used") or 0)
        w.sample("ray_object_store_available_memory", {"NodeAddress": n["node_ip"], "NodeId": n["node_id"]}, max(0, free))
    w.family("ray_workers", "gauge", "Worker processes of each node.")
    for n in alive:
        w.sample("ray_workers", {"NodeAddress": n["node_ip"], "NodeId": n["node_id"]}, n.get("num_workers") or 0)

    w.family("ray_tasks", "gauge", "Tasks (in the control service's recent task table) by state.")
    for state, count in sorted((c.get("tasks") or {}).items()):
        w.sample("ray_tasks", {"State": state}, count)
    w.family("ray_actors", "gauge", "Actors by state.")
    for state, count in sorted((c.get("actors") or {}).items()):
        w.sample("ray_actors", {"State": state}, count)
    w.family("ray_placement_groups", "gauge", "Placement groups by state.")
    for state, count in sorted((c.get("placement_groups") or {}).items()):
        w.sample("ray_placement_groups", {"State": state}, count)
    w.family("ray_jobs", "gauge", "Jobs (submissions and drivers) by status.")
    for status, count in sorted(jobs_by_status.items()):
        w.sample("ray_jobs", {"Status": status}, count)


def _user(w: _Writer, series: list[dict]) -> None:
    for m in series:
        kind, name = m["type"], PREFIX + m["name"]
        if kind == "counter":
            w.family(name + "_total", "counter", m.get("description") or "")
            for tags, value in m["samples"]:
                w.sample(name + "_total", tags, value)
        elif kind == "gauge":
            w.family(name, "gauge", m.get("description") or "")
            for tags, value in m["samples"]:
                w.sample(name, tags, value)
        elif kind == "histogram":
            w.family(name, "histogram", m.get("description") or "")
            bounds = list(m.get("boundaries") or [])
            for tags, (buckets, total, count) in m["samples"]:
                running = 0
                for le, c in zip([*bounds, math.inf], buckets, strict=False):
                    running += c
                    w.sample(name + "_bucket", [*tags, ["le", _num(float(le))]], running)
                w.sample(name + "_sum", tags, total)
                w.sample(name + "_count", tags, count)


def render(metrics: dict, jobs_by_status: dict[str, int] | None = None) -> str:
    w = _Writer()
    _cluster(w, metrics.get("cluster") or {}, jobs_by_status or {})
    _user(w, metrics.get("user") or [])
    return w.text()
