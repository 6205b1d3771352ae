"""The control service (Ray's GCS): nodes, jobs, actors, named actors and a KV store.

It creates every actor: it picks a node, leases a dedicated worker there, sends the
creation task, and watches the connection to that worker. When the worker dies it
restarts the actor (``max_restarts``) or marks it dead, and publishes each change to the
processes that call the actor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from solray._private.control.demand import resource_demand
from solray._private.control.observability import Observability
from solray._private.control.placement_groups import PlacementGroupManager
from solray._private.control.storage import ControlStore
from solray._private.rpc.connection import Connection, ConnectionLost, RpcError, connect, serve
from solray._private.scheduling.labels import matches
from solray._private.scheduling.resources import describe, fits, normalize
from solray._private.worker.task_spec import ACTOR_CREATION

logger = logging.getLogger(__name__)

PENDING = "PENDING_CREATION"
ALIVE = "ALIVE"
RESTARTING = "RESTARTING"
DEAD = "DEAD"


class ActorRecord:
    def __init__(self, spec: dict):
        self.actor_id: bytes = spec["actor_id"]
        self.spec = spec
        self.name: str | None = spec.get("name")
        self.namespace: str = spec.get("namespace") or ""
        self.detached = spec.get("lifetime") == "detached"
        self.job_id = spec["job_id"]
        self.max_restarts = spec.get("max_restarts", 0)
        self.num_restarts = 0
        self.state = PENDING
        self.address: str | None = None
        self.worker_id: str | None = None
        self.node_id: str | None = None
        self.pid: int | None = None
        self.incarnation = 0
        # Grows with every published change, so callers can drop stale info (a reply may
        # be handled after a newer notification). Clock-based, so it also grows across a
        # restart of the head that reloads this record.
        self.version = 0
        self.death: dict | None = None
        self.no_restart = False
        self.exiting = False
        self.conn: Connection | None = None
        # The creator's control connection: a non-detached actor dies with its owner.
        self.owner_conn: Connection | None = None
        self.subscribers: set[Connection] = set()
        self.class_name = spec.get("class_name", "")
        self.scheduling = False
        self.start_time = time.time()

    def info(self) -> dict:
        return {
            "actor_id": self.actor_id,
            "state": self.state,
            "address": self.address,
            "incarnation": self.incarnation,
            "version": self.version,
            "death": self.death,
            "name": self.name,
            "namespace": self.namespace,
            "class_name": self.class_name,
            "num_restarts": self.num_restarts,
            "node_id": self.node_id,
            "pid": self.pid,
            "job_id": self.job_id,
            "meta": self.spec.get("meta"),
            "detached": self.detached,
        }


class ControlService:
    def __init__(self, token: str, host: str, storage: str | None = None):
        self.token = token
        self.host = host
        self.store = ControlStore(storage)
        self.address = ""
        self.nodes: dict[str, dict] = {}
        self.node_conns: dict[str, Connection] = {}
        self.jobs: dict[int, dict] = {}
        self.job_conns: dict[Connection, int] = {}
        self.actors: dict[bytes, ActorRecord] = {}
        self.named: dict[tuple[str, str], bytes] = {}
        self.kv: dict[tuple[str, bytes], bytes] = {}
        self._next_job = 1
        self._server = None
        self._handlers = {
            "register_node": self._h_register_node,
            "register_job": self._h_register_job,
            "reattach_job": self._h_reattach_job,
            "create_actor": self._h_create_actor,
            "subscribe_actor": self._h_subscribe_actor,
            "get_actor_info": self._h_get_actor_info,
            "get_named_actor": self._h_get_named_actor,
            "list_named_actors": self._h_list_named_actors,
            "list_actors": self._h_list_actors,
            "kill_actor": self._h_kill_actor,
            "actor_exiting": self._h_actor_exiting,
            "get_nodes": self._h_get_nodes,
            "list_jobs": self._h_list_jobs,
            "heartbeat": self._h_heartbeat,
            "kv_put": self._h_kv_put,
            "kv_get": self._h_kv_get,
            "kv_del": self._h_kv_del,
            "kv_keys": self._h_kv_keys,
            "get_resource_demand": lambda conn, p: resource_demand(self),  # the autoscaler's input
            "ping": lambda conn, p: "pong",
        }
        self.pgs = PlacementGroupManager(self)
        self._handlers.update(self.pgs.handlers())
        self.observability = Observability(self)  # task events, metrics, state queries
        self._handlers.update(self.observability.handlers())

    async def start(self, port: int = 0) -> None:
        self._server = await serve(self.host, port, self.token, self._handle, name="control", on_close=self._on_close)
        self.address = f"{self.host}:{self._server.sockets[0].getsockname()[1]}"
        self._view_scheduled = False
        self._restore()
        self.pgs.restore()
        asyncio.get_running_loop().create_task(self._watch_heartbeats())

    # ------------------------------------------------------------------ persistence
    def _restore(self) -> None:
        """Reload the tables a previous head wrote; reattach to actors that still live."""
        for (ns, key), value in self.store.load("kv").items():
            self.kv[(ns, key)] = value
        for job_id, job in self.store.load("jobs").items():
            self.jobs[job_id] = job
            self._next_job = max(self._next_job, job_id + 1)
        for actor_id, saved in self.store.load("actors").items():
            rec = ActorRecord(saved["spec"])
            for field in ("state", "address", "worker_id", "node_id", "num_restarts", "incarnation", "death", "no_restart", "pid"):
                setattr(rec, field, saved.get(field))
            self.actors[actor_id] = rec
            if rec.name and rec.state != DEAD:
                self.named[(rec.namespace, rec.name)] = actor_id
            if rec.state == ALIVE:
                asyncio.get_running_loop().create_task(self._reattach_actor(rec))
        if self.actors or self.jobs:
            logger.info("restored %d actors, %d jobs, %d KV entries", len(self.actors), len(self.jobs), len(self.kv))

    async def _reattach_actor(self, rec: ActorRecord) -> None:
        try:
            host, port = rec.address.rsplit(":", 1)
            conn = await connect(host, int(port), self.token, self._handle, name=f"actor {rec.class_name}")
            await asyncio.wait_for(conn.request("ping"), 5)
        except (OSError, asyncio.TimeoutError, RpcError):
            await self._on_worker_lost(rec, rec.incarnation, "The actor's worker did not survive the head restart.")
            return
        rec.conn = conn
        inc = rec.incarnation
        conn._on_close = lambda c: asyncio.get_running_loop().create_task(
            self._on_worker_lost(rec, inc, "The actor's worker process exited unexpectedly.")
        )

    def _save_actor(self, rec: ActorRecord) -> None:
        self.store.put(
            "actors",
            rec.actor_id,
            {
                "spec": rec.spec,
                "state": rec.state,
                "address": rec.address,
                "worker_id": rec.worker_id,
                "node_id": rec.node_id,
                "num_restarts": rec.num_restarts,
                "incarnation": rec.incarnation,
                "death": rec.death,
                "no_restart": rec.no_restart,
                "pid": rec.pid,
            },
        )

    # ------------------------------------------------------------------ membership
    def _h_heartbeat(self, conn: Connection, beat: dict) -> None:
        node = self.nodes.get(beat["node_id"])
        if node is None or not node.get("alive"):
            return
        node["last_heartbeat"] = time.monotonic()
        node["pending_demands"] = beat.get("pending") or {}
        node["pending_resources"] = beat.get("demand") or []
        node["object_store_used"] = beat.get("object_store_used", 0)
        total = beat.get("total")
        if node["resources_available"] != beat["available"] or (total is not None and total != node["resources_total"]):
            node["resources_available"] = beat["available"]
            if total is not None:
                node["resources_total"] = total
            self._broadcast_view()
            self._retry_pending_actors()
            self.pgs.kick()

    def cluster_view(self) -> dict:
        return {
            nid: {
                "address": n["address"],
                "node_ip": n["node_ip"],
                "total": n["resources_total"],
                "available": n["resources_available"],
                "alive": n.get("alive", False),
                "labels": n.get("labels") or {},
            }
            for nid, n in self.nodes.items()
        }

    def _broadcast_view(self) -> None:
        """Send every daemon the cluster's free resources, at most once per loop iteration."""
        if self._view_scheduled:
            return
        self._view_scheduled = True

        def send():
            self._view_scheduled = False
            view = self.cluster_view()
            for c in self.node_conns.values():
                c.notify("cluster_view", view)

        asyncio.get_running_loop().call_soon(send)

    async def _watch_heartbeats(self) -> None:
        from solray._private import config

        while True:
            await asyncio.sleep(min(1.0, config.NODE_DEATH_TIMEOUT_S / 4))
            now = time.monotonic()
            for nid, node in list(self.nodes.items()):
                if node.get("alive") and now - node.get("last_heartbeat", now) > config.NODE_DEATH_TIMEOUT_S:
                    logger.warning("node %s missed heartbeats for %.1f s: marking it dead", nid, config.NODE_DEATH_TIMEOUT_S)
                    conn = self.node_conns.pop(nid, None)
                    if conn is not None:
                        conn.close()
                    self._node_dead(nid)
            # Placement is retried when free resources change; this sweep also catches a
            # change that slipped between a placement attempt and its reply (the attempt
            # then saw an outdated view, and nothing changes afterwards to retry it).
            self.pgs.kick()
            self._retry_pending_actors()

    def _node_dead(self, node_id: str) -> None:
        node = self.nodes.get(node_id)
        if node is None or not node.get("alive"):
            return
        node["alive"] = False
        node["death_time"] = time.time()
        self._broadcast_view()
        self.pgs.on_node_dead(node_id)
        for rec in list(self.actors.values()):
            if rec.node_id == node_id and rec.state == ALIVE and rec.conn is not None:
                # The actor's worker went with its node: close our side so it restarts elsewhere.
                rec.conn.close()

    def _retry_pending_actors(self) -> None:
        for rec in self.actors.values():
            if rec.state in (PENDING, RESTARTING) and rec.conn is None and not rec.scheduling:
                asyncio.get_running_loop().create_task(self._schedule_actor(rec))

    def _handle(self, conn: Connection, method: str, payload: Any, tail: Any) -> Any:
        h = self._handlers.get(method)
        if h is None:
            raise LookupError(f"unknown control method {method!r}")
        return h(conn, payload)

    def _on_close(self, conn: Connection) -> None:
        for rec in list(self.actors.values()):
            rec.subscribers.discard(conn)
            if rec.owner_conn is conn:
                self._owner_died(rec)
        job_id = self.job_conns.pop(conn, None)
        if job_id is not None:
            self._finish_job(job_id)
        for node_id, c in list(self.node_conns.items()):
            if c is conn:
                self.node_conns.pop(node_id)
                self._node_dead(node_id)

    # ------------------------------------------------------------------ nodes and jobs
    def _h_register_node(self, conn: Connection, info: dict) -> bool:
        old = self.nodes.get(info["node_id"])
        if old is not None and not old.get("alive") and old.get("death_time"):
            raise ValueError(f"node {info['node_id']} was declared dead; it must restart as a new node")
        info = dict(info, alive=True, conn_time=time.time(), last_heartbeat=time.monotonic())
        self.nodes[info["node_id"]] = info
        self.node_conns[info["node_id"]] = conn
        for job_id, job in self.jobs.items():
            if job.get("status") == "RUNNING":
                conn.notify("job_info", self._job_info(job_id))
        self._broadcast_view()
        self._retry_pending_actors()
        self.pgs.kick()
        return True

    def _h_register_job(self, conn: Connection, p: dict) -> dict:
        job_id = self._next_job
        self._next_job += 1
        namespace = p.get("namespace") or f"anonymous-{job_id}"
        self.jobs[job_id] = {
            "job_id": job_id,
            "driver_address": p["driver_address"],
            "namespace": namespace,
            "status": "RUNNING",
            "start_time": time.time(),
            "end_time": None,
            "pid": p.get("pid"),
            "entrypoint": p.get("entrypoint", ""),
            "submission_id": p.get("submission_id"),
            "runtime_env": p.get("runtime_env") or {},
            "sys_path": p.get("sys_path") or [],
        }
        self.job_conns[conn] = job_id
        self.store.put("jobs", job_id, self.jobs[job_id])
        for c in self.node_conns.values():
            c.notify("job_info", self._job_info(job_id))
        return {"job_id": job_id, "namespace": namespace}

    def _job_info(self, job_id: int) -> dict:
        """What every node needs to start the job's workers: its driver (for logs), its
        runtime_env and the driver's import path (workers import the driver's modules)."""
        job = self.jobs[job_id]
        return {k: job.get(k) for k in ("job_id", "driver_address", "namespace", "runtime_env", "sys_path")}

    def _h_reattach_job(self, conn: Connection, job_id: int) -> bool:
        """A driver reconnected after a head restart: its job is alive again."""
        self.job_conns[conn] = job_id
        job = self.jobs.get(job_id)
        if job is not None:
            job["status"] = "RUNNING"
        return job is not None

    def _finish_job(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            job["status"] = "SUCCEEDED"
            job["end_time"] = time.time()
            self.store.put("jobs", job_id, job)
        for rec in list(self.actors.values()):
            if rec.job_id == job_id and not rec.detached and rec.state != DEAD:
                rec.no_restart = True
                self._kill_actor_worker(rec)
                self._set_dead(rec, {"message": "The actor's job (driver) exited."})
        self.pgs.on_job_finished(job_id)
        self.observability.on_job_finished(job_id)
        for conn in self.node_conns.values():
            conn.notify("job_finished", job_id)

    def _h_get_nodes(self, conn: Connection, p: Any) -> asyncio.Future:
        return self._refresh_nodes()

    async def _refresh_nodes(self) -> list[dict]:
        async def refresh(node_id: str, c: Connection):
            try:
                info = await asyncio.wait_for(c.request("node_info"), 5)
                node = self.nodes[node_id]
                before = (node.get("resources_available"), node.get("resources_total"))
                node.update(info)
                if before != (node.get("resources_available"), node.get("resources_total")):
                    # Heartbeats only broadcast changes: pass this one on to the daemons.
                    self._broadcast_view()
            except (ConnectionError, asyncio.TimeoutError, RpcError):
                pass

        await asyncio.gather(*(refresh(n, c) for n, c in self.node_conns.items() if not c.closed))
        return list(self.nodes.values())

    def _h_list_jobs(self, conn: Connection, p: Any) -> list:
        return list(self.jobs.values())

    # ------------------------------------------------------------------ actors
    def _h_create_actor(self, conn: Connection, spec: dict) -> dict:
        name = spec.get("name")
        ns = spec.get("namespace") or ""
        if name:
            existing = self.named.get((ns, name))
            if existing is not None and self.actors[existing].state != DEAD:
                if spec.get("get_if_exists"):
                    return {"existing": True, "info": self.actors[existing].info()}
                raise ValueError(
                    f"The name {name} (namespace={ns}) is already taken by another actor. "
                    "Use get_if_exists=True to get a handle to it."
                )
        rec = ActorRecord(spec)
        if not rec.detached and conn not in self.job_conns:  # a driver's actors end with its job
            rec.owner_conn = conn
        self.actors[rec.actor_id] = rec
        if name:
            self.named[(ns, name)] = rec.actor_id
        self._save_actor(rec)
        if spec.get("dep_error"):
            rec.no_restart = True
            self._set_dead(rec, {"message": "An argument of the actor's constructor failed.", "error": spec["dep_error"]})
            return {"existing": False, "info": rec.info()}
        asyncio.get_running_loop().create_task(self._schedule_actor(rec))
        return {"existing": False, "info": rec.info()}

    def _pick_node(self, demand: dict, strategy: Any = None) -> str | None:
        alive = [n for n in self.nodes.values() if n.get("alive") and n["node_id"] in self.node_conns]
        placement = self._placement_demand(demand)
        if isinstance(strategy, dict) and strategy.get("type") == "node_label":
            alive = [n for n in alive if matches(n.get("labels") or {}, strategy.get("hard"))]
            preferred = [
                n for n in alive
                if strategy.get("soft") and matches(n.get("labels") or {}, strategy["soft"])
                and fits(placement, n["resources_available"])
            ]
            alive = preferred or alive
        if isinstance(strategy, dict) and strategy.get("type") == "node_affinity":
            node = self.nodes.get(strategy["node_id"])
            if node is not None and node in alive and fits(placement, node["resources_total"]):
                return node["node_id"]
            if not strategy.get("soft"):
                return None
        fitting = [n for n in alive if fits(placement, n["resources_available"])]
        if strategy == "SPREAD" and fitting:
            load = {n["node_id"]: 0 for n in fitting}
            for rec in self.actors.values():
                node_id = rec.node_id if rec.state == ALIVE else (getattr(rec, "placing_on", None) if rec.scheduling else None)
                if node_id in load:
                    load[node_id] += 1
            return min(fitting, key=lambda n: (load[n["node_id"]], n["node_id"]))["node_id"]
        if fitting:
            def util(n):
                tot, av = n["resources_total"], n["resources_available"]
                keys = [k for k in placement if tot.get(k)] or ["CPU"]
                return max(1 - av.get(k, 0) / tot[k] if tot.get(k) else 1 for k in keys)

            return min(fitting, key=util)["node_id"]
        for n in alive:
            if fits(placement, n["resources_total"]):
                return n["node_id"]
        return None

    @staticmethod
    def _placement_demand(demand: dict) -> dict:
        # An actor that holds no CPU still needs a node with one, as in Ray.
        if not demand:
            return {"CPU": 1.0}
        return demand

    async def _schedule_actor(self, rec: ActorRecord) -> None:
        if rec.scheduling:
            return
        rec.scheduling = True
        try:
            await self._schedule_actor_once(rec)
        finally:
            rec.scheduling = False

    async def _schedule_actor_once(self, rec: ActorRecord) -> None:
        spec = rec.spec
        demand = normalize(spec.get("resources"))
        strategy = spec.get("strategy")
        kind = strategy.get("type") if isinstance(strategy, dict) else None
        if kind == "placement_group" and self.pgs.state_of(strategy["pg_id"]) in (None, "REMOVED"):
            rec.no_restart = True
            self._set_dead(rec, {"message": "The actor's placement group was removed.", "pg_removed": True})
            return
        node_id = self._pick_node(demand, strategy)
        if node_id is None:
            if kind == "placement_group":
                return  # waits until its bundle is placed (or free): heartbeats retry
            if kind == "node_affinity" and not strategy.get("soft"):
                rec.no_restart = True
                self._set_dead(
                    rec,
                    {
                        "message": f"The actor {rec.class_name} has a NodeAffinitySchedulingStrategy for node "
                        f"{strategy['node_id']}, which is dead or cannot fit {describe(demand)}, and soft=False.",
                        "unschedulable": True,
                    },
                )
                return
            msg = (
                f"The actor {rec.class_name} requires {describe(self._placement_demand(demand))}, "
                "which no node in the cluster can satisfy: "
                + "; ".join(describe(n["resources_total"]) for n in self.nodes.values() if n.get("alive"))
                + ". It stays pending until a node with these resources joins."
            )
            self._warn_job(rec.job_id, msg)
            return
        node_conn = self.node_conns[node_id]
        # Count the actor against the node until heartbeats report the lease, so a burst of
        # actors spreads instead of piling onto the node that looked emptiest.
        rec.placing_on = node_id
        view = self.nodes[node_id]["resources_available"] = dict(self.nodes[node_id]["resources_available"])
        for k, v in self._placement_demand(demand).items():
            view[k] = view.get(k, 0.0) - v
        try:
            grant = await node_conn.request(
                "request_lease",
                {
                    "resources": demand,
                    "job_id": rec.job_id,
                    "env_vars": spec.get("env_vars") or {},
                    "env_key": spec.get("env_key") or "",
                    "pip": spec.get("pip"),
                    "packages": spec.get("packages"),
                    "for_actor": True,
                    "strategy": spec.get("strategy"),
                    "spilled": True,
                },
            )
        except ConnectionError:
            # The node died under us: place the actor again once the node table caught up.
            asyncio.get_running_loop().call_later(0.1, self._retry_pending_actors)
            return
        except RpcError as e:
            self._set_dead(rec, {"message": f"could not lease a worker for the actor: {e}"})
            return
        if "error" in grant:
            rec.no_restart = True
            self._set_dead(rec, {"message": grant["error"], "runtime_env_setup_failed": bool(grant.get("runtime_env_setup_failed"))})
            return
        if "spillback" in grant:
            return  # the node filled up meanwhile; heartbeats retry the placement
        if rec.state == DEAD:
            node_conn.notify("kill_worker", grant["worker_id"])
            return
        try:
            host, port = grant["worker_address"].rsplit(":", 1)
            conn = await connect(host, int(port), self.token, self._handle, name=f"actor {rec.class_name}")
            msg = {
                "t": spec["task_id"],
                "k": ACTOR_CREATION,
                "n": f"{rec.class_name}.__init__",
                "f": spec["class_id"],
                "fb": spec["class_blob"],
                "a": spec.get("args_blob"),
                "d": spec.get("dep_values") or [],
                "c": spec.get("contained"),
                "r": 1,
                "o": spec["owner"],
                "act": rec.actor_id,
                "restarts": rec.num_restarts,  # > 0: was_current_actor_reconstructed()
                "opts": spec.get("opts"),
                "res": demand,
                "gpu": grant.get("gpu_ids"),
                "pg": spec.get("placement"),
            }
            reply = await conn.request("push_task", msg)
        except (ConnectionError, RpcError) as e:
            rec.scheduling = False
            await self._on_worker_lost(rec, None, f"the actor's worker died during creation: {e}")
            return
        if rec.state == DEAD:  # killed (or its job ended) while __init__ ran
            node_conn.notify("kill_worker", grant["worker_id"])
            conn.close()
            return
        if reply.get("e"):
            node_conn.notify("kill_worker", grant["worker_id"])
            conn.close()
            rec.no_restart = True
            self._set_dead(
                rec,
                {"message": f"The actor {rec.class_name} raised in __init__.", "error": reply["r"][0], "creation": True},
            )
            return
        rec.conn = conn
        rec.address = grant["worker_address"]
        rec.worker_id = grant["worker_id"]
        rec.node_id = node_id
        rec.pid = grant.get("pid")
        rec.incarnation += 1
        rec.state = ALIVE
        conn._on_close = lambda c, rec=rec, inc=rec.incarnation: asyncio.get_running_loop().create_task(
            self._on_worker_lost(rec, inc, "The actor's worker process exited unexpectedly.")
        )
        if rec.state == ALIVE and rec.no_restart and rec.death is None and rec.exiting:
            conn.close()
        self._publish(rec)

    def _owner_died(self, rec: ActorRecord) -> None:
        """Fate-sharing, as in Ray: the worker that created the actor is gone, so is the actor
        (whatever its max_restarts)."""
        rec.owner_conn = None
        if rec.state == DEAD:
            return
        rec.no_restart = True
        self._kill_actor_worker(rec)
        self._set_dead(rec, {"message": "The actor's owner (the worker process that created it) died."})

    async def _on_worker_lost(self, rec: ActorRecord, incarnation: int | None, reason: str) -> None:
        if rec.state == DEAD or (incarnation is not None and incarnation != rec.incarnation):
            return
        rec.conn = None
        rec.address = None
        if rec.exiting:
            self._set_dead(rec, {"message": "The actor exited (exit_actor or __ray_terminate__).", "intended": True})
            return
        if rec.no_restart:
            self._set_dead(rec, {"message": "The actor was killed by solray.kill()."})
            return
        if self._may_restart(rec):
            rec.num_restarts += 1
            rec.state = RESTARTING
            self._publish(rec)
            rec.scheduling = False
            await self._schedule_actor(rec)
            return
        self._set_dead(
            rec,
            {
                "message": f"{reason} It was restarted {rec.num_restarts} time(s) of "
                f"max_restarts={rec.max_restarts}."
            },
        )

    def _set_dead(self, rec: ActorRecord, death: dict) -> None:
        if rec.state == DEAD:
            return
        rec.state = DEAD
        rec.death = death
        rec.address = None
        if rec.name and self.named.get((rec.namespace, rec.name)) == rec.actor_id:
            del self.named[(rec.namespace, rec.name)]
        self._publish(rec)

    def _publish(self, rec: ActorRecord) -> None:
        rec.version = max(rec.version + 1, time.time_ns())
        self._save_actor(rec)
        info = rec.info()
        for conn in list(rec.subscribers):
            conn.notify("actor_update", [rec.actor_id, info])

    def _warn_job(self, job_id: int, msg: str) -> None:
        logger.warning(msg)
        for conn, jid in self.job_conns.items():
            if jid == job_id:
                conn.notify("infeasible", msg)

    def _h_subscribe_actor(self, conn: Connection, actor_id: bytes) -> dict | None:
        rec = self.actors.get(actor_id)
        if rec is None:
            return None
        rec.subscribers.add(conn)
        return rec.info()

    def _h_get_actor_info(self, conn: Connection, actor_id: bytes) -> dict | None:
        rec = self.actors.get(actor_id)
        return rec.info() if rec else None

    def _h_get_named_actor(self, conn: Connection, p: list) -> dict | None:
        name, ns = p
        aid = self.named.get((ns or "", name))
        if aid is None:
            return None
        rec = self.actors[aid]
        return rec.info() if rec.state != DEAD else None

    def _h_list_named_actors(self, conn: Connection, p: list) -> list:
        all_namespaces, ns = p
        return [
            {"name": name, "namespace": n}
            for (n, name), aid in self.named.items()
            if (all_namespaces or n == ns) and self.actors[aid].state != DEAD
        ]

    def _h_list_actors(self, conn: Connection, p: Any) -> list:
        return [rec.info() for rec in self.actors.values()]

    def _h_kill_actor(self, conn: Connection, p: list) -> bool:
        actor_id, no_restart = p
        rec = self.actors.get(actor_id)
        if rec is None or rec.state == DEAD:
            return False
        # Publish the new state before replying: a caller's next call (sent after kill()
        # returns) then waits for the new incarnation, or fails, instead of going to the
        # worker being killed. Updates and this reply share the caller's connection.
        if no_restart or not self._may_restart(rec):
            rec.no_restart = True
            self._kill_actor_worker(rec)
            self._set_dead(rec, {"message": "The actor was killed by solray.kill()."})
        elif rec.state == ALIVE:
            rec.state = RESTARTING
            self._publish(rec)
            self._kill_actor_worker(rec)
        return True

    @staticmethod
    def _may_restart(rec: ActorRecord) -> bool:
        return rec.max_restarts == -1 or rec.num_restarts < rec.max_restarts

    def _kill_actor_worker(self, rec: ActorRecord) -> None:
        node = self.node_conns.get(rec.node_id or "")
        if node is not None and rec.worker_id:
            node.notify("kill_worker", rec.worker_id)

    def _h_actor_exiting(self, conn: Connection, actor_id: bytes) -> None:
        rec = self.actors.get(actor_id)
        if rec is not None:
            rec.exiting = True

    # ------------------------------------------------------------------ KV
    def _h_kv_put(self, conn: Connection, p: list) -> bool:
        ns, key, value, overwrite = p
        k = (ns or "", key)
        if k in self.kv and not overwrite:
            return False
        self.kv[k] = value
        self.store.put("kv", list(k), value)
        return True

    def _h_kv_get(self, conn: Connection, p: list) -> bytes | None:
        ns, key = p
        return self.kv.get((ns or "", key))

    def _h_kv_del(self, conn: Connection, p: list) -> int:
        ns, key = p
        self.store.delete("kv", [ns or "", key])
        return 1 if self.kv.pop((ns or "", key), None) is not None else 0

    def _h_kv_keys(self, conn: Connection, p: list) -> list:
        ns, prefix = p
        return [k for (n, k) in self.kv if n == (ns or "") and k.startswith(prefix)]


__all__ = ["ControlService", "ConnectionLost"]
