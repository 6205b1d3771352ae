"""The node daemon: this node's scheduler, worker pool and shared-memory accounting.

Owners ask it for *leases* on workers that fit a task's resources; it grants an idle
worker of the owner's job (forking a new one from the zygote when none is idle) and takes
the resources back when the lease returns. It also accounts the bytes of every object in
this node's shared memory, so a full store fails ``put`` with a clear error instead of the
kernel killing someone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from typing import Any

import msgpack

from solray._private import config, ids
from solray._private.node import drain, log_files, state_report
from solray._private.node.env_workers import EnvWorkerSpawner
from solray._private.node.object_store import ObjectStoreMixin
from solray._private.node.packages import NodePackages
from solray._private.node.records import (
    DEAD,
    IDLE,
    LEASED,
    STARTING,
    Lease,
    LeaseRequest,
    WorkerRecord,
    pg_of,
)
from solray._private.node.transfer import TransferServer
from solray._private.node.worker_exits import WorkerExitsMixin
from solray._private.rpc.connection import Connection, RpcError, connect, serve
from solray._private.runtime_env import packaging
from solray._private.scheduling.bundles import BundleTable, uses_group
from solray._private.scheduling.labels import NODE_ID_LABEL, matches
from solray._private.scheduling.resources import NodeResources, cpu_part, describe, fits

logger = logging.getLogger(__name__)

_LEN = struct.Struct("!I")



class NodeDaemon(WorkerExitsMixin, ObjectStoreMixin):
    def __init__(
        self,
        *,
        token: str,
        node_ip: str,
        control_address: str,
        session_dir: str,
        resources: dict[str, float],
        object_store_memory: int,
        node_id: str | None = None,
        is_head: bool = False,
        labels: dict | None = None,
        spill_dir: str | None = None,
    ):
        self.token = token
        self.node_id = node_id or ids.new_id().hex()
        self.node_ip = node_ip
        self.control_address = control_address
        self.session_dir = session_dir
        self.shm_dir = os.path.join("/dev/shm" if os.path.isdir("/dev/shm") else session_dir, f"solray_{os.path.basename(session_dir)}_{self.node_id[:8]}")
        self.resources = NodeResources({**resources, f"node:{node_ip}": 1.0})
        if is_head:
            self.resources = NodeResources({**self.resources.total, "node:__internal_head__": 1.0})
        self.bundles = BundleTable(self.resources)  # placement-group bundles reserved here
        self.removed_pgs: set[str] = set()
        self.object_store_memory = object_store_memory
        self.is_head = is_head
        self.labels = {NODE_ID_LABEL: self.node_id, **(labels or {})}
        self.address = ""
        self.workers: dict[str, WorkerRecord] = {}
        self.leases: dict[str, Lease] = {}
        self.pending: deque[LeaseRequest] = deque()
        self.jobs: dict[int, dict] = {}  # job_id -> {"driver_address", "namespace", "runtime_env"}
        self.objects: dict[bytes, tuple[int, str]] = {}  # oid -> (size, owner address)
        self.object_bytes = 0
        self.clients: dict[Connection, dict] = {}
        self.control: Connection | None = None
        self._zygote: subprocess.Popen | None = None
        self._zygote_replies: asyncio.Queue | None = None
        self._worker_base: dict = {}  # what every worker's configuration starts with
        self.env_workers = EnvWorkerSpawner(self)  # workers of pip runtime environments
        self.packages = NodePackages(self.session_dir, self._kv_get)  # working_dir / py_modules
        self._warned_infeasible: set[str] = set()
        self.cluster_view: dict[str, dict] = {}  # node_id -> {address, total, available, alive}
        self._spread_next = 0
        self._pulls: dict[bytes, asyncio.Future] = {}
        self.pulled_by: dict[bytes, set[str]] = {}  # oid -> daemon addresses holding copies
        self._last_heartbeat: dict | None = None
        self.stopping = False
        self.on_fatal = None
        # A configured folder gets a subfolder per node (as Ray's): shutdown removes the
        # subfolder, never the user's folder, and nodes sharing a folder do not collide.
        self.spill_dir = (
            os.path.join(spill_dir, f"solray_spilled_objects_{self.node_id}")
            if spill_dir
            else os.path.join(session_dir, "spill")
        )
        self.spilled: dict[bytes, tuple[int, str, str]] = {}  # oid -> (size, owner, file)
        self.spilled_bytes_total = 0
        # Freed large files kept with their pages allocated, reused by the next big put: tmpfs
        # page allocation, not copying, is what limits a fresh put to ~1.5 GB/s.
        self.pool_dir = os.path.join(self.shm_dir, "pool")
        self.pool: list[tuple[int, str]] = []
        self.pool_bytes = 0
        self.restored_bytes_total = 0
        self.transfer: TransferServer | None = None
        self.pulls_total = 0  # objects copied here from other nodes (one per object, however many ask)
        self.pulled_bytes_total = 0
        self._server = None
        self._handlers = {
            "register_client": self._h_register_client,
            "request_lease": self._h_request_lease,
            "return_lease": self._h_return_lease,
            "worker_blocked": self._h_worker_blocked,
            "worker_unblocked": self._h_worker_unblocked,
            "alloc_object": self._h_alloc_object,
            "free_objects": self._h_free_objects,
            "kill_worker": self._h_kill_worker,
            "job_finished": self._h_job_finished,
            "job_info": self._h_job_info,
            "node_info": self._h_node_info,
            "cluster_view": self._h_cluster_view,
            "pull_object": self._h_pull_object,
            "prepare_send": self._h_prepare_send,
            "restore_object": self._h_restore_object,
            "reserve_bundles": self._h_reserve_bundles,
            "return_bundles": self._h_return_bundles,
            "pg_removed": self._h_pg_removed,
            "drain": lambda conn, p: drain.drain_node(self, p),  # the autoscaler removes this node
            "list_workers": lambda conn, p: state_report.list_workers(self),
            "list_objects": lambda conn, p: state_report.list_objects(self, p),
            "list_logs": lambda conn, p: log_files.list_logs(os.path.join(self.session_dir, "logs"), p),
            "read_log": lambda conn, p: log_files.read_log(os.path.join(self.session_dir, "logs"), p),
            "ping": lambda conn, p: "pong",
        }

    # ------------------------------------------------------------------ lifecycle
    async def start(self, port: int = 0) -> None:
        _sweep_dead_shm_dirs(os.path.dirname(self.shm_dir))
        os.makedirs(self.shm_dir, exist_ok=True)
        with open(os.path.join(self.shm_dir, OWNER_FILE), "w") as f:
            f.write(str(os.getpid()))
        os.makedirs(os.path.join(self.shm_dir, "pool"), exist_ok=True)
        os.makedirs(os.path.join(self.session_dir, "logs"), exist_ok=True)
        self._server = await serve(self.node_ip, port, self.token, self._handle, name="daemon", on_close=self._on_close)
        self.address = f"{self.node_ip}:{self._server.sockets[0].getsockname()[1]}"
        self.transfer = TransferServer(self.node_ip, self.token, self.shm_dir)
        self.transfer.start()
        self._start_zygote()
        await self._connect_control()
        loop = asyncio.get_running_loop()
        loop.create_task(self._reap_idle_workers())
        loop.create_task(self._watch_starting_workers())
        loop.create_task(self._heartbeat_loop())
        loop.create_task(self._memory_monitor())

    async def _connect_control(self) -> None:
        host, cport = self.control_address.rsplit(":", 1)
        self.control = await connect(
            host, int(cport), self.token, self._handle, name="control", on_close=self._on_control_lost
        )
        await self.control.request("register_node", self.node_info())

    def _on_control_lost(self, conn: Connection) -> None:
        if not self.stopping:
            asyncio.get_running_loop().create_task(self._reconnect_control())

    async def _reconnect_control(self) -> None:
        """The head went away: keep serving and rejoin when a head is back on its address."""
        deadline = time.monotonic() + config.CONTROL_RECONNECT_TIMEOUT_S
        while time.monotonic() < deadline and not self.stopping:
            await asyncio.sleep(0.2)
            try:
                await self._connect_control()
                logger.info("reconnected to the control service at %s", self.control_address)
                return
            except (OSError, RpcError) as e:
                if isinstance(e, RpcError):
                    logger.error("the control service refused this node: %s", e)
                    break
        logger.error("lost the control service for good; stopping this node")
        if self.on_fatal is not None:
            self.on_fatal()

    def node_info(self) -> dict:
        return {
            "node_id": self.node_id,
            "node_ip": self.node_ip,
            "address": self.address,
            "resources_total": self.resources.total,
            "resources_available": self.resources.available,
            "object_store_memory": self.object_store_memory,
            "object_store_used": self.object_bytes,
            "spilled_bytes": sum(v[0] for v in self.spilled.values()),
            "spilled_bytes_total": self.spilled_bytes_total,
            "restored_bytes_total": self.restored_bytes_total,
            "pulls_total": self.pulls_total,
            "pulled_bytes_total": self.pulled_bytes_total,
            "is_head": self.is_head,
            "labels": self.labels,
            "shm_dir": self.shm_dir,
            "session_dir": self.session_dir,
            "num_workers": sum(1 for w in self.workers.values() if w.state != DEAD),
            **state_report.host_stats(),  # CPU and memory of the host (metrics, dashboard)
            "pending_demands": self.pending_demands(),
        }

    def pending_demands(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for req in self.pending:
            out[req.shape] = out.get(req.shape, 0) + 1
        return out

    async def _heartbeat_loop(self) -> None:
        """Report free resources to the control service: often when they change, else 1/s."""
        last_sent = 0.0
        while True:
            await asyncio.sleep(config.HEARTBEAT_INTERVAL_S)
            if self.control is None or self.control.closed:
                continue
            beat = {
                "node_id": self.node_id,
                "available": self.resources.available,
                "total": self.resources.total,
                "pending": self.pending_demands(),
                # Each queued request's resources, for the autoscaler (placement groups' tasks
                # wait for their group, which the control service reports itself).
                "demand": [req.demand for req in self.pending if pg_of(req) is None],
                "object_store_used": self.object_bytes,
            }
            now = time.monotonic()
            # Unchanged beats still go out well within the death timeout (tests shorten it).
            if beat != self._last_heartbeat or now - last_sent > min(1.0, config.NODE_DEATH_TIMEOUT_S / 4):
                self._last_heartbeat = {
                    **beat, "available": dict(self.resources.available), "total": dict(self.resources.total)
                }
                self.control.notify("heartbeat", beat)
                last_sent = now

    async def _memory_monitor(self) -> None:
        """Above the memory threshold, kill the newest retriable task so the node survives."""
        import psutil

        while True:
            await asyncio.sleep(config.MEMORY_MONITOR_INTERVAL_S)
            mem = psutil.virtual_memory()
            used = (mem.total - mem.available) / mem.total
            if used < config.MEMORY_USAGE_THRESHOLD:
                continue
            victims = [
                lease for lease in self.leases.values()
                if not lease.for_actor and lease.worker is not None and lease.worker.pid and lease.worker.conn
            ]
            if not victims:
                continue
            lease = victims[-1]  # newest grant
            msg = (
                f"Task was killed due to the node running low on memory: memory on node "
                f"{self.node_id} ({self.node_ip}) was {(mem.total - mem.available) / 2**30:.2f} GiB / "
                f"{mem.total / 2**30:.2f} GiB ({used:.0%}), above the threshold "
                f"{config.MEMORY_USAGE_THRESHOLD:.0%}. The worker (pid={lease.worker.pid}) running the "
                "newest task was killed. Reduce the memory the tasks use or add memory to the node "
                "(set SOLRAY_MEMORY_USAGE_THRESHOLD to change the threshold)."
            )
            logger.warning(msg)
            lease.owner.notify("oom_killed", [lease.lease_id, msg])
            self._kill(lease.worker)

    def _h_cluster_view(self, conn: Connection, view: dict) -> None:
        self.cluster_view = view
        self._schedule()

    def _start_zygote(self) -> None:
        env = dict(os.environ)
        env.pop("SOLRAY_TOKEN", None)
        self._zygote = subprocess.Popen(
            [sys.executable, "-m", "solray._private.node.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        base = {
            "token": self.token,
            "node_id": self.node_id,
            "node_ip": self.node_ip,
            "daemon_address": self.address,
            "control_address": self.control_address,
            "shm_dir": self.shm_dir,
            "session_dir": self.session_dir,
        }
        self._worker_base = base
        self._zygote_send({"base": base})
        loop = asyncio.get_running_loop()
        self._zygote_replies = asyncio.Queue()
        loop.add_reader(self._zygote.stdout.fileno(), self._read_zygote)
        self._zygote_buf = b""

    def _zygote_send(self, msg: dict) -> None:
        data = msgpack.packb(msg)
        self._zygote.stdin.write(_LEN.pack(len(data)) + data)
        self._zygote.stdin.flush()

    def _read_zygote(self) -> None:
        chunk = os.read(self._zygote.stdout.fileno(), 65536)
        if not chunk:
            asyncio.get_running_loop().remove_reader(self._zygote.stdout.fileno())
            return
        self._zygote_buf += chunk
        while len(self._zygote_buf) >= 4:
            (n,) = _LEN.unpack(self._zygote_buf[:4])
            if len(self._zygote_buf) < 4 + n:
                break
            reply = msgpack.unpackb(self._zygote_buf[4 : 4 + n], raw=False)
            self._zygote_buf = self._zygote_buf[4 + n :]
            w = self.workers.get(reply["worker_id"])
            if w is not None:
                w.pid = reply["pid"]

    def shutdown(self) -> None:
        self.stopping = True
        if self.transfer is not None:
            self.transfer.close()
        for w in self.workers.values():
            if w.pid:
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except OSError:
                    pass
        if self._zygote is not None:
            try:
                self._zygote.kill()
                self._zygote.wait(timeout=2)
            except Exception:
                pass
        shutil.rmtree(self.shm_dir, ignore_errors=True)
        shutil.rmtree(self.spill_dir, ignore_errors=True)
        # Caches of this node's life (unpacked working_dirs, pip virtualenvs); logs stay.
        shutil.rmtree(os.path.join(self.session_dir, "runtime_resources"), ignore_errors=True)

    # ------------------------------------------------------------------ dispatch
    def _handle(self, conn: Connection, method: str, payload: Any, tail: Any) -> Any:
        h = self._handlers.get(method)
        if h is None:
            raise LookupError(f"unknown daemon method {method!r}")
        return h(conn, payload)

    def _on_close(self, conn: Connection) -> None:
        info = self.clients.pop(conn, None)
        if info is None:
            return
        # Leases held by a departed owner: their workers run orphaned tasks, so stop them.
        for lease in list(self.leases.values()):
            if lease.owner is conn and not lease.for_actor:
                if lease.worker is not None:
                    self._kill(lease.worker)
                self._release_lease(lease)
        owner = info.get("address")
        if owner:
            self._free_owned_by(owner)
        if info["kind"] == "driver":
            self._finish_job(info["job_id"])
        wid = info.get("worker_id")
        w = self.workers.get(wid) if wid else None
        if w is not None:
            self._worker_gone(w)
        self._schedule()

    # ------------------------------------------------------------------ clients
    def _h_register_client(self, conn: Connection, p: dict) -> dict:
        self.clients[conn] = p
        if p["kind"] == "driver":
            self.jobs[p["job_id"]] = {
                "driver_address": p["address"],
                "namespace": p.get("namespace"),
                "runtime_env": p.get("runtime_env") or {},
                "sys_path": p.get("sys_path") or [],
            }
            # Warm the pool so the first tasks do not wait for forks.
            n = int(self.resources.total.get("CPU", 0))
            if (p.get("runtime_env") or {}).get("pip"):
                n = 0  # its workers start as interpreters of its virtualenv: on demand
            for _ in range(min(n, 4)):
                self._start_worker(p["job_id"], "", {})
        elif p["kind"] == "worker":
            w = self.workers.get(p["worker_id"])
            if w is None:
                raise LookupError(f"unknown worker {p['worker_id']}")
            w.conn = conn
            w.address = p["address"]
            w.pid = p["pid"]
            lease = w.waiting
            w.waiting = None
            if lease is not None:
                self._grant(lease, w)
            else:
                w.state = IDLE
                w.idle_since = time.monotonic()
                self._schedule()
        return {"node_id": self.node_id}

    def _start_worker(
        self, job_id: int, env_key: str, env_vars: dict, pip: dict | None = None, packages: dict | None = None
    ) -> WorkerRecord:
        w = WorkerRecord(ids.new_id().hex(), job_id, env_key)
        w.env_vars = dict(env_vars)
        w.pip = pip
        w.packages = packages
        self.workers[w.worker_id] = w
        job = self.jobs.get(job_id, {})
        job_env = dict((job.get("runtime_env") or {}).get("env_vars") or {})
        job_env.update(env_vars)
        cfg = {
            "worker_id": w.worker_id,
            "job_id": job_id,
            "driver_address": job.get("driver_address"),
            "namespace": job.get("namespace"),  # get_actor() in tasks looks here by default
            "env_vars": job_env,
            "task_env_vars": dict(env_vars),  # what its tasks' children inherit
            # A task's or actor's own working_dir/py_modules replace the job's.
            "runtime_env": {**(job.get("runtime_env") or {}), **(packages or {})},
            "sys_path": job.get("sys_path") or [],
            "task_pip": pip,  # what its tasks' children inherit
            "task_packages": packages,
        }
        if packaging.package_uris(cfg["runtime_env"]):
            asyncio.get_running_loop().create_task(self._start_with_packages(w, cfg, pip))
        else:
            self._launch_worker(w, cfg, pip)
        return w

    def _launch_worker(self, w: WorkerRecord, cfg: dict, pip: dict | None) -> None:
        env_pip = pip or cfg["runtime_env"].get("pip")
        if env_pip:
            self.env_workers.start(w, {**self._worker_base, **cfg}, env_pip)
        else:
            self._zygote_send(cfg)

    async def _start_with_packages(self, w: WorkerRecord, cfg: dict, pip: dict | None) -> None:
        """Unpack the job's working_dir/py_modules here first: the worker starts in them."""
        try:
            cfg["runtime_env"] = await self.packages.localize(cfg["runtime_env"])
        except Exception as e:  # noqa: BLE001 - any failure fails the worker's lease with its cause
            msg = f"runtime_env working_dir/py_modules could not be set up on node {self.node_id}: {e}"
            logger.error("%s", msg)
            self.env_setup_failed(w, msg)
            return
        if w.state == DEAD or self.stopping:
            return
        self._launch_worker(w, cfg, pip)

    async def _kv_get(self, namespace: str, key: bytes) -> bytes | None:
        if self.control is None or self.control.closed:
            raise ConnectionError("not connected to the control service")
        return await self.control.request("kv_get", [namespace, key])

    def env_setup_failed(self, w: WorkerRecord, message: str) -> None:
        """The pip environment of a starting worker could not be built: fail its lease."""
        lease, w.waiting = w.waiting, None
        w.state = DEAD
        self.workers.pop(w.worker_id, None)
        if lease is not None:
            self._release_lease(lease)
            if not lease.future.done():
                lease.future.set_result({"error": message, "runtime_env_setup_failed": True})
        self._schedule()

    # ------------------------------------------------------------------ leases
    def _h_request_lease(self, conn: Connection, p: dict) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        req = LeaseRequest(p, conn, fut)
        self.pending.append(req)
        self._schedule()
        return fut

    def _warn_infeasible(self, req: LeaseRequest) -> None:
        if req.shape in self._warned_infeasible or pg_of(req) is not None:
            return  # a placement group's task waits for its group, which warns if infeasible
        if os.environ.get("SOLRAY_AUTOSCALER_ENABLED"):
            return  # not a problem: the autoscaler adds a node for it (and says so if none fits)
        self._warned_infeasible.add(req.shape)
        msg = (
            f"The {'actor' if req.for_actor else 'task'} requires {req.shape}, which no node "
            f"in the cluster can satisfy: the nodes have "
            f"{'; '.join([describe(self.resources.total)] + [describe(n['total']) for _, n in self._others()])}. "
            "It stays pending until a node with these resources joins."
        )
        logger.warning(msg)
        driver = self._driver_conn(req.job_id)
        for c in {req.owner, driver} - {None}:
            c.notify("infeasible", msg)

    def _driver_conn(self, job_id: int) -> Connection | None:
        for conn, info in self.clients.items():
            if info.get("kind") == "driver" and info.get("job_id") == job_id:
                return conn
        return None

    def _schedule(self) -> None:
        if not self.pending:
            return
        still = deque()
        while self.pending:
            req = self.pending.popleft()
            if req.future.done() or req.owner.closed:
                continue
            if pg_of(req) in self.removed_pgs:
                req.future.set_result({"error": _PG_REMOVED, "pg_removed": True})
                continue
            target = self._choose_node(req)
            if target is None:
                still.append(req)
                continue
            if isinstance(target, str) and target.startswith("!"):
                req.future.set_result({"error": target[1:]})
                continue
            if target != self.node_id:
                node = self.cluster_view[target]
                req.future.set_result({"spillback": node["address"], "node_id": target})
                continue
            lease = Lease(req.demand, req.owner, req.future, req.for_actor)
            lease.gpu_ids = self.resources.acquire(req.demand) or self.bundles.acquire_gpus(req.demand)
            self.leases[lease.lease_id] = lease
            w = self._idle_worker(req.job_id, req.env_key)
            if w is not None:
                self._grant(lease, w)
            else:
                w = self._start_worker(req.job_id, req.env_key, req.env_vars, req.pip, req.packages)
                w.state = LEASED
                w.waiting = lease
                lease.worker = w
        self.pending = still

    # A node takes work while its busiest requested resource is below this, then spreads.
    PACK_THRESHOLD = 0.5

    def _others(self) -> list[tuple[str, dict]]:
        return [
            (nid, n) for nid, n in self.cluster_view.items() if nid != self.node_id and n.get("alive")
        ]

    @staticmethod
    def _utilization(demand: dict, total: dict, available: dict) -> float:
        keys = [k for k in demand if total.get(k)] or ["CPU"]
        return max((1 - available.get(k, 0.0) / total[k]) if total.get(k) else 1.0 for k in keys)

    def _choose_node(self, req: LeaseRequest) -> str | None:
        """Which node should serve ``req`` now: this one, another (spillback), or None (wait)."""
        local_feasible = self.resources.feasible(req.demand)
        local_now = self.resources.can_acquire(req.demand)
        strategy = req.strategy if isinstance(req.strategy, dict) else {"type": req.strategy or "DEFAULT"}
        kind = strategy.get("type") or "DEFAULT"
        if kind == "node_label":
            return self._choose_by_labels(req, strategy, local_now)
        if kind == "node_affinity":
            nid = strategy["node_id"]
            if nid == self.node_id and local_feasible:
                return self.node_id if local_now else None
            node = self.cluster_view.get(nid)
            if node is not None and node.get("alive") and fits(req.demand, node["total"]):
                return nid
            if not strategy.get("soft"):
                return (
                    f"!The task's NodeAffinitySchedulingStrategy names node {nid}, which is dead or "
                    f"cannot fit {req.shape}, and soft=False."
                )
        if req.preferred and req.preferred != self.node_id and not req.spilled:
            node = self.cluster_view.get(req.preferred)
            if node is not None and node.get("alive") and fits(req.demand, node["available"]):
                return req.preferred
        others_now = [(nid, n) for nid, n in self._others() if fits(req.demand, n["available"])]
        if req.spilled and local_feasible and (local_now or not others_now):
            # A request spilled here waits here, unless another node is free now (a node that
            # joined since, e.g. one the autoscaler added for this very request).
            return self.node_id if local_now else None
        if kind == "SPREAD":
            # Round robin over every live node, skipping those that cannot take it now: the
            # ring stays fixed as nodes fill up, so consecutive requests land on distinct nodes.
            ring = sorted([self.node_id] + [nid for nid, _ in self._others()])
            free_now = {nid for nid, _ in others_now} | ({self.node_id} if local_now else set())
            for _ in range(len(ring)):
                self._spread_next = (self._spread_next + 1) % len(ring)
                if ring[self._spread_next] in free_now:
                    return ring[self._spread_next]
        elif local_now:
            util = self._utilization(req.demand, self.resources.total, self.resources.available)
            if util < self.PACK_THRESHOLD or not others_now:
                return self.node_id
        if others_now:
            return min(
                others_now, key=lambda x: self._utilization(req.demand, x[1]["total"], x[1]["available"])
            )[0]
        if local_feasible:
            return self.node_id if local_now else None
        feasible_elsewhere = [nid for nid, n in self._others() if fits(req.demand, n["total"])]
        if feasible_elsewhere:
            return feasible_elsewhere[0]
        self._warn_infeasible(req)
        return None

    def _choose_by_labels(self, req: LeaseRequest, strategy: dict, local_now: bool) -> str | None:
        """NodeLabelSchedulingStrategy: nodes matching ``hard``; those matching ``soft`` first."""
        nodes = {self.node_id: (self.labels, self.resources.total)}
        nodes.update({nid: (n.get("labels") or {}, n["total"]) for nid, n in self._others()})
        feasible = sorted(
            nid for nid, (labels, total) in nodes.items()
            if matches(labels, strategy.get("hard")) and fits(req.demand, total)
        )
        if not feasible:
            self._warn_infeasible(req)
            return None
        if req.spilled and self.node_id in feasible:
            return self.node_id if local_now else None

        def free_now(nid: str) -> bool:
            return local_now if nid == self.node_id else fits(req.demand, self.cluster_view[nid]["available"])

        preferred = [nid for nid in feasible if strategy.get("soft") and matches(nodes[nid][0], strategy["soft"])]
        for group in (preferred, feasible):
            now = [nid for nid in group if free_now(nid)]
            if self.node_id in now:
                return self.node_id
            if now:
                return min(now, key=lambda nid: self._utilization(req.demand, nodes[nid][1], self.cluster_view[nid]["available"]))
        # Nothing fits right now: wait here if this node qualifies, else queue on one that does.
        return None if self.node_id in feasible else (preferred or feasible)[0]

    def _idle_worker(self, job_id: int, env_key: str) -> WorkerRecord | None:
        for w in self.workers.values():
            if w.state == IDLE and w.job_id == job_id and w.env_key == env_key:
                return w
        # A prestarted worker that has not registered yet is as good as idle.
        for w in self.workers.values():
            if w.state == STARTING and w.waiting is None and w.job_id == job_id and w.env_key == env_key:
                return w
        return None

    def _grant(self, lease: Lease, w: WorkerRecord) -> None:
        lease.worker = w
        w.lease = lease
        w.is_actor = lease.for_actor
        if w.conn is None:  # still starting: grant when it registers
            w.state = LEASED
            w.waiting = lease
            return
        w.state = LEASED
        if lease.future.done():
            self._release_lease(lease)
            return
        res = dict(lease.demand)
        lease.future.set_result(
            {
                "lease_id": lease.lease_id,
                "worker_id": w.worker_id,
                "worker_address": w.address,
                "node_id": self.node_id,
                "resources": res,
                "gpu_ids": lease.gpu_ids,
                "pid": w.pid,
            }
        )

    def _h_return_lease(self, conn: Connection, p: list) -> None:
        lease_id, worker_dead = p
        lease = self.leases.get(lease_id)
        if lease is None:
            return
        w = lease.worker
        self._release_lease(lease)
        if w is not None and w.state == LEASED and not worker_dead:
            w.state = IDLE
            w.idle_since = time.monotonic()
        self._schedule()

    def _release_lease(self, lease: Lease) -> None:
        if self.leases.pop(lease.lease_id, None) is None:
            return
        w = lease.worker
        demand = dict(lease.demand)
        if w is not None and w.blocked:
            for k in cpu_part(lease.demand):  # lent out while blocked: free already
                demand[k] = 0.0
            w.blocked = False
        self.resources.release(demand, lease.gpu_ids)
        self.bundles.release_gpus(lease.demand, lease.gpu_ids)
        if w is not None:
            w.lease = None

    def _h_worker_blocked(self, conn: Connection, worker_id: str) -> None:
        w = self.workers.get(worker_id)
        if w is None or w.lease is None or w.blocked:
            return
        w.blocked = True
        self.resources.lend(cpu_part(w.lease.demand))
        self._schedule()

    def _h_worker_unblocked(self, conn: Connection, worker_id: str) -> None:
        w = self.workers.get(worker_id)
        if w is None or w.lease is None or not w.blocked:
            return
        w.blocked = False
        self.resources.reclaim(cpu_part(w.lease.demand))

    # ------------------------------------------------------------------ placement groups
    def _h_reserve_bundles(self, conn: Connection, p: list) -> dict:
        pg_hex, items = p
        ok = pg_hex not in self.removed_pgs and self.bundles.reserve(pg_hex, items)
        if ok:
            self._schedule()
        return {"ok": ok, "total": self.resources.total, "available": self.resources.available}

    def _h_return_bundles(self, conn: Connection, p: list) -> None:
        """Undo a reservation nothing runs in yet (the group was placed elsewhere)."""
        pg_hex, indices = p
        self.bundles.release(pg_hex, indices)
        self._schedule()

    def _h_pg_removed(self, conn: Connection, pg_hex: str) -> None:
        """The group is gone: fail its queued leases, kill its workers, free its bundles."""
        self.removed_pgs.add(pg_hex)
        for lease in list(self.leases.values()):
            if not uses_group(lease.demand, pg_hex):
                continue
            w = lease.worker
            if w is not None and w.waiting is lease:  # its worker is still starting
                w.waiting = None
                w.lease = None
                w.state = STARTING
                self._release_lease(lease)
                if not lease.future.done():
                    lease.future.set_result({"error": _PG_REMOVED, "pg_removed": True})
            elif w is not None:
                self._kill(w)
                self._worker_gone(w)  # now: a lease returned meanwhile must not make it idle
        self.bundles.release(pg_hex)
        self._schedule()

    def _h_node_info(self, conn: Connection, p: Any) -> dict:
        return self.node_info()


_PG_REMOVED = "The task's placement group was removed."


OWNER_FILE = "owner.pid"


def _sweep_dead_shm_dirs(parent: str) -> None:
    """Remove shared-memory folders of nodes that died without cleaning up (SIGKILL)."""
    import psutil

    try:
        names = [n for n in os.listdir(parent) if n.startswith("solray_")]
    except OSError:
        return
    for name in names:
        folder = os.path.join(parent, name)
        try:
            with open(os.path.join(folder, OWNER_FILE)) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            continue  # not ours to judge (an older layout, or being created right now)
        if pid and not psutil.pid_exists(pid):
            shutil.rmtree(folder, ignore_errors=True)
