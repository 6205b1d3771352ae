"""The control service's part of observability: task events, user metrics, node fan-out.

Handlers (control methods):
  task_events      (notify) a batch of owners' task events -> the bounded task table
  list_tasks       the task table, actor tasks completed with their actor's node and
                   worker, plus one ACTOR_CREATION_TASK per actor (from the actor table)
  report_metrics   (notify) a batch of user metric points (``solray.util.metrics``)
  get_metrics      user metrics and the cluster's built-in metrics, for ``/metrics``
  query_nodes      ask every live node daemon one state question (``list_workers``,
                   ``list_objects``) and return the answers that came back in time
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from solray._private.control.metrics_table import MetricsTable
from solray._private.control.task_table import TaskTable
from solray._private.rpc.connection import RpcError

if TYPE_CHECKING:
    from solray._private.control.service import ActorRecord, ControlService

logger = logging.getLogger(__name__)

NODE_QUERIES = frozenset({"list_workers", "list_objects"})
NODE_QUERY_TIMEOUT_S = 10.0

# The actor table's state -> the state of the actor's creation task.
_CREATION_STATE = {"PENDING_CREATION": "PENDING_NODE_ASSIGNMENT", "ALIVE": "FINISHED", "RESTARTING": "PENDING_NODE_ASSIGNMENT"}


class Observability:
    def __init__(self, service: ControlService):
        self.svc = service
        self.tasks = TaskTable()
        self.metrics = MetricsTable()

    def handlers(self) -> dict:
        return {
            "task_events": lambda conn, p: self.tasks.apply(p),
            "list_tasks": lambda conn, p: self.list_tasks(p),
            "state_actors": lambda conn, p: [self._actor_state(a) for a in self.svc.actors.values()],
            "report_metrics": lambda conn, p: self.metrics.apply(p),
            "get_metrics": lambda conn, p: self.get_metrics(),
            "query_nodes": lambda conn, p: self.query_nodes(p),
        }

    def on_job_finished(self, job_id: int) -> None:
        self.tasks.on_job_finished(job_id)

    # ------------------------------------------------------------------ tasks
    def list_tasks(self, p: Any = None) -> dict:
        """Every task, or with ``{"limit": n}`` only the ``n`` newest (the state API asks so
        when it filters nothing: a dashboard polling its task page stays cheap)."""
        actors = self.svc.actors
        limit = p.get("limit") if isinstance(p, dict) else None
        creation = [self._creation_task(a) for a in actors.values()]
        if limit is None:
            records = self.tasks.records() + creation
        else:
            records = sorted(
                self.tasks.newest(limit) + creation, key=lambda r: r.get("creation_time") or 0, reverse=True
            )[:limit]
        out = []
        for rec in records:
            actor_id = rec.get("actor")
            if actor_id is not None and rec.get("node") is None and rec.get("type") == "ACTOR_TASK":
                actor = actors.get(actor_id)
                if actor is not None and rec["state"] != "PENDING_ARGS_AVAIL":
                    rec = {**rec, "node": actor.node_id, "worker": actor.worker_id, "pid": actor.pid}
            out.append(rec)
        stats = self.tasks.stats()
        stats["total"] += len(actors)
        stats["available"] = stats["stored"] + len(actors)
        return {"tasks": out, **stats}

    @staticmethod
    def _actor_state(a: ActorRecord) -> dict:
        """The actor table's entry plus what the state API shows of its creation spec."""
        info = a.info()
        info.pop("meta", None)
        strategy = a.spec.get("strategy")
        placement = a.spec.get("placement")
        pg = strategy.get("pg_id") if isinstance(strategy, dict) and strategy.get("type") == "placement_group" else None
        pg = pg or (placement[0] if placement else None)
        info.update(
            resources=a.spec.get("resources") or {},
            placement_group_id=pg,
            runtime_env=a.spec.get("runtime_env") or {},
            repr_name=a.spec.get("repr_name") or "",
            start_time=a.start_time,
        )
        return info

    @staticmethod
    def _creation_task(a: ActorRecord) -> dict:
        death = a.death or {}
        state = _CREATION_STATE.get(a.state)
        if state is None:  # DEAD: failed if it never came up, else its creation finished
            state = "FAILED" if death.get("creation") or a.incarnation == 0 else "FINISHED"
        rec = {
            "task_id": a.spec.get("task_id") or a.actor_id,
            "attempt": a.num_restarts,
            "state": state,
            "name": f"{a.class_name}.__init__",
            "func": f"{a.class_name}.__init__",
            "type": "ACTOR_CREATION_TASK",
            "job": a.job_id,
            "actor": a.actor_id,
            "node": a.node_id,
            "worker": a.worker_id,
            "pid": a.pid,
            "res": a.spec.get("resources") or {},
            "creation_time": a.start_time,
            "events": [],
        }
        if state == "FAILED":
            rec["error_type"] = "TASK_EXECUTION_EXCEPTION" if death.get("creation") else "ACTOR_DIED"
            rec["error_message"] = death.get("message")
        return rec

    # ------------------------------------------------------------------ metrics
    async def get_metrics(self) -> dict:
        await self.svc._refresh_nodes()  # fresh per-node stats (object store, CPU, memory)
        return {"user": self.metrics.series(), "cluster": self.cluster_metrics()}

    def cluster_metrics(self) -> dict:
        """The numbers behind the built-in Prometheus metrics (nodes, resources, tasks...)."""
        nodes = []
        for n in self.svc.nodes.values():
            nodes.append(
                {
                    "node_id": n["node_id"],
                    "node_ip": n.get("node_ip"),
                    "alive": bool(n.get("alive")),
                    "is_head": bool(n.get("is_head")),
                    "total": n.get("resources_total") or {},
                    "available": n.get("resources_available") or {},
                    "object_store_memory": n.get("object_store_memory", 0),
                    "object_store_used": n.get("object_store_used", 0),
                    "spilled_bytes": n.get("spilled_bytes", 0),
                    "num_workers": n.get("num_workers", 0),
                    "mem_total": n.get("mem_total"),
                    "mem_used": n.get("mem_used"),
                    "cpu_percent": n.get("cpu_percent"),
                }
            )
        actors: dict[str, int] = {}
        for a in self.svc.actors.values():
            actors[a.state] = actors.get(a.state, 0) + 1
        jobs: dict[str, int] = {}
        for j in self.svc.jobs.values():
            jobs[j.get("status") or "UNKNOWN"] = jobs.get(j.get("status") or "UNKNOWN", 0) + 1
        pgs: dict[str, int] = {}
        for g in self.svc.pgs.groups.values():
            pgs[g.state] = pgs.get(g.state, 0) + 1
        return {
            "nodes": nodes,
            "tasks": self.tasks.counts_by_state(),
            "actors": actors,
            "driver_jobs": jobs,
            "placement_groups": pgs,
        }

    # ------------------------------------------------------------------ node fan-out
    async def query_nodes(self, p: Any) -> list[dict]:
        method = p["method"] if isinstance(p, dict) else p
        if method not in NODE_QUERIES:
            raise ValueError(f"query_nodes: unknown node query {method!r}")
        payload = p.get("payload") if isinstance(p, dict) else None
        timeout = float((p.get("timeout") if isinstance(p, dict) else None) or NODE_QUERY_TIMEOUT_S)

        async def ask(node_id: str, conn) -> dict:
            try:
                return {"node_id": node_id, "result": await asyncio.wait_for(conn.request(method, payload), timeout)}
            except (ConnectionError, asyncio.TimeoutError, RpcError) as e:
                return {"node_id": node_id, "error": f"{type(e).__name__}: {e}"}

        conns = [(nid, c) for nid, c in self.svc.node_conns.items() if not c.closed]
        return list(await asyncio.gather(*(ask(nid, c) for nid, c in conns)))
