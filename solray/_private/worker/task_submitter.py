"""Submitting normal tasks: resolve dependencies, lease workers, push tasks to them.

Tasks with the same *scheduling key* (resources, runtime env, strategy) share leases: the
owner asks its node daemon for a worker once and then sends tasks straight to that worker
while it has work queued (DESIGN §3). Runs on the core worker's IO loop only.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from solray import exceptions
from solray._private import config
from solray._private.rpc.connection import RpcError
from solray._private.serialization import serializer
from solray._private.worker.task_spec import TaskSpec

if TYPE_CHECKING:
    from solray._private.worker.core_worker import CoreWorker

logger = logging.getLogger(__name__)


class Lease:
    __slots__ = ("lease_id", "address", "worker_id", "node_id", "conn", "busy", "linger", "grant", "dead", "daemon")

    def __init__(self, grant: dict, daemon):
        self.lease_id = grant["lease_id"]
        self.address = grant["worker_address"]
        self.worker_id = grant["worker_id"]
        self.node_id = grant["node_id"]
        self.grant = grant
        self.conn = None
        self.busy: TaskSpec | None = None
        self.linger = None
        self.dead = False
        self.daemon = daemon  # the node daemon that granted the lease (gets it back)


class KeyState:
    __slots__ = ("key", "queue", "idle", "leases", "pending_requests", "request_payload")

    def __init__(self, key, request_payload: dict):
        self.key = key
        self.queue: deque[TaskSpec] = deque()
        self.idle: list[Lease] = []
        self.leases: dict[str, Lease] = {}
        self.pending_requests = 0
        self.request_payload = request_payload


def resolve_dependencies(worker: CoreWorker, spec: TaskSpec, on_resolved) -> None:
    """Call ``on_resolved(error_or_None)`` once every top-level ref argument is ready."""
    refs = spec.dep_refs
    if not refs:
        spec.dep_values = []
        on_resolved(None)
        return
    remaining = [0]

    def finish():
        values = []
        for r in refs:
            e = worker.store.get(r.binary())
            if e is None:
                on_resolved(exceptions.ObjectLostError(r.hex(), r.owner_address()))
                return
            if e.is_error:
                on_resolved(_stored_error(worker, r))
                return
            # A value in shared memory travels as its location plus its owner, who can
            # rebuild it should its node die before the task reads it.
            values.append(e.inline if e.inline is not None else [None, e.location, r.owner_address()])
        spec.dep_values = values
        on_resolved(None)

    def one_ready(_e=None):
        remaining[0] -= 1
        if remaining[0] == 0:
            finish()

    def one_ready_threadsafe(_e=None):
        if worker.in_loop_thread():
            one_ready()
        else:
            worker.loop.call_soon_threadsafe(one_ready)

    remaining[0] = len(refs) + 1
    for r in refs:
        worker.ensure_tracked(r)
        if not worker.store.add_callback(r.binary(), one_ready_threadsafe):
            remaining[0] -= 1
    one_ready()


def _stored_error(worker: CoreWorker, ref) -> BaseException:
    try:
        worker.load_value(ref)
    except BaseException as e:  # the stored error, as raised by get
        return e
    return exceptions.RaySystemError("dependency marked failed without an error")


class NormalTaskSubmitter:
    def __init__(self, worker: CoreWorker):
        self.worker = worker
        self.oom_kills: dict[str, str] = {}  # lease_id -> why the daemon killed its worker
        self.lineage: dict[bytes, TaskSpec] = {}  # finished tasks whose returns may need rebuilding
        self.keys: dict[Any, KeyState] = {}
        self.running: dict[bytes, TaskSpec] = {}  # task_id -> spec, submitted and not finished

    # ---- entry point (IO loop) ---------------------------------------------------------
    def submit(self, spec: TaskSpec, request_payload: dict) -> None:
        self.running[spec.task_id] = spec
        self.worker.task_events.submitted(spec)
        ks = self.keys.get(spec.sched_key)
        if ks is None:
            ks = self.keys[spec.sched_key] = KeyState(spec.sched_key, request_payload)

        def resolved(error):
            if self.running.get(spec.task_id) is not spec:
                return  # cancelled while its arguments were pending: already failed
            if error is not None:
                self._finish_failed(spec, error)
                return
            if spec.cancelled:
                self._finish_failed(spec, exceptions.TaskCancelledError(spec.task_id.hex()))
                return
            ks.queue.append(spec)
            self._pump(ks)

        resolve_dependencies(self.worker, spec, resolved)

    # ---- leases ------------------------------------------------------------------------
    def _pump(self, ks: KeyState) -> None:
        while ks.queue and ks.idle:
            lease = ks.idle.pop()
            if lease.linger is not None:
                lease.linger.cancel()
                lease.linger = None
            self._push(ks, lease, ks.queue.popleft())
        want = min(len(ks.queue), config.MAX_PENDING_LEASE_REQUESTS) - ks.pending_requests
        for _ in range(max(0, want)):
            self._request_lease(ks)

    def _request_lease(self, ks: KeyState) -> None:
        ks.pending_requests += 1
        payload = ks.request_payload
        preferred = self._preferred_node(ks)
        if preferred is not None:
            payload = {**payload, "preferred_node": preferred}
        daemon = self.worker.daemon
        fut = daemon.request("request_lease", payload)
        fut.add_done_callback(lambda f: self._on_lease(ks, f, daemon))

    def _preferred_node(self, ks: KeyState) -> str | None:
        """Locality: the node holding most of the next task's shared-memory arguments."""
        if not ks.queue:
            return None
        spec = ks.queue[0]
        best, best_size = None, 0
        for value in spec.dep_values or ():
            if value[0] is None and value[1][2] > best_size:
                best, best_size = value[1][0], value[1][2]
        return best if best != self.worker.node_id else None

    async def _spill(self, ks: KeyState, address: str) -> None:
        """The daemon sent us to another node: ask that node's daemon instead."""
        try:
            daemon = await self.worker.peer(address)
            fut = daemon.request("request_lease", {**ks.request_payload, "spilled": True})
        except ConnectionError as e:
            fut = self.worker.loop.create_future()
            fut.set_exception(e)
            daemon = None
        fut.add_done_callback(lambda f: self._on_lease(ks, f, daemon))

    def _on_lease(self, ks: KeyState, fut, daemon) -> None:
        if fut.cancelled():
            ks.pending_requests -= 1
            return
        exc = fut.exception()
        if exc is None and "spillback" in fut.result():
            self.worker.loop.create_task(self._spill(ks, fut.result()["spillback"]))
            return
        ks.pending_requests -= 1
        if exc is None and "error" in fut.result():
            kind = exceptions.TaskPlacementGroupRemoved if fut.result().get("pg_removed") else exceptions.TaskUnschedulableError
            if fut.result().get("runtime_env_setup_failed"):
                kind = exceptions.RuntimeEnvSetupError
            err = kind(fut.result()["error"])
            while ks.queue:
                self._finish_failed(ks.queue.popleft(), err)
            return
        if exc is not None:
            if isinstance(exc, ConnectionError) and daemon is not self.worker.daemon and not self.worker.shutting_down:
                # The node our daemon sent us to (spillback) died meanwhile: ask our own
                # daemon again; its view of the cluster drops the dead node.
                self.worker.loop.call_later(0.05, self._pump, ks)
                return
            if not self.worker.shutting_down:
                logger.error("lease request failed: %s", exc)
                err = exceptions.RaySystemError(f"could not lease a worker: {exc}")
                while ks.queue:
                    self._finish_failed(ks.queue.popleft(), err)
            return
        lease = Lease(fut.result(), daemon)
        ks.leases[lease.lease_id] = lease
        self.worker.loop.create_task(self._connect_lease(ks, lease))

    async def _connect_lease(self, ks: KeyState, lease: Lease) -> None:
        try:
            lease.conn = await self.worker.peer(lease.address)
        except ConnectionError:
            self._drop_lease(ks, lease, worker_dead=True)
            self._pump(ks)
            return
        self._lease_idle(ks, lease)

    def _lease_idle(self, ks: KeyState, lease: Lease) -> None:
        if lease.dead:
            return
        if ks.queue:
            self._push(ks, lease, ks.queue.popleft())
            return
        ks.idle.append(lease)
        lease.linger = self.worker.loop.call_later(config.LEASE_LINGER_S, self._return_idle, ks, lease)

    def _return_idle(self, ks: KeyState, lease: Lease) -> None:
        lease.linger = None
        if lease in ks.idle:
            ks.idle.remove(lease)
            self._drop_lease(ks, lease)

    def _drop_lease(self, ks: KeyState, lease: Lease, worker_dead: bool = False) -> None:
        lease.dead = True
        ks.leases.pop(lease.lease_id, None)
        if lease in ks.idle:
            ks.idle.remove(lease)
        if lease.daemon is not None and not lease.daemon.closed:
            lease.daemon.notify("return_lease", [lease.lease_id, worker_dead])

    # ---- pushing and replies -----------------------------------------------------------
    def _push(self, ks: KeyState, lease: Lease, spec: TaskSpec) -> None:
        if spec.cancelled:
            self._finish_failed(spec, exceptions.TaskCancelledError(spec.task_id.hex()))
            self._lease_idle(ks, lease)
            return
        lease.busy = spec
        spec.worker_address = lease.address
        if spec.contained:
            contained = [[r.binary(), r.owner_address()] for r in spec.contained]
            task = self.worker.loop.create_task(self.worker.register_borrowers(contained, lease.address))
            task.add_done_callback(lambda _t: self._send(ks, lease, spec))
        else:
            self._send(ks, lease, spec)

    def _send(self, ks: KeyState, lease: Lease, spec: TaskSpec) -> None:
        sent = lease.conn.state.setdefault("functions", set())
        fid = spec.function.function_id
        msg = spec.to_wire(self.worker.address, include_function=fid not in sent)
        sent.add(fid)
        msg["res"] = lease.grant.get("resources")
        msg["gpu"] = lease.grant.get("gpu_ids")
        fut = lease.conn.request("push_task", msg)
        fut.add_done_callback(lambda f: self._on_reply(ks, lease, spec, f))
        self.worker.task_events.running(spec, lease.node_id, lease.worker_id, lease.grant.get("pid"))

    def _on_reply(self, ks: KeyState, lease: Lease, spec: TaskSpec, fut) -> None:
        lease.busy = None
        exc = fut.exception() if not fut.cancelled() else ConnectionError("cancelled")
        if exc is not None:
            # The worker died (or the connection broke) while running the task.
            self._drop_lease(ks, lease, worker_dead=True)
            if isinstance(exc, RpcError):
                self._finish_failed(spec, exceptions.RaySystemError(str(exc), exc.remote_traceback))
            elif spec.cancelled:
                self._finish_failed(spec, exceptions.TaskCancelledError(spec.task_id.hex()))
            elif spec.retries_left != 0:
                spec.retries_left -= 1
                spec.attempt += 1
                self.worker.task_retries += 1
                ks.queue.appendleft(spec)
            else:
                oom = self.oom_kills.pop(lease.lease_id, None)
                if oom is not None:
                    self._finish_failed(spec, exceptions.OutOfMemoryError(f"Task {spec.name}: {oom}"))
                else:
                    self.worker.loop.create_task(self._fail_crashed(spec, lease))
            self.oom_kills.pop(lease.lease_id, None)
            self._pump(ks)
            return
        reply = fut.result()
        self.worker.print_task_output(reply)
        if reply.get("x"):  # the worker reached max_calls and exits
            self._drop_lease(ks, lease, worker_dead=True)
        else:
            self._lease_idle(ks, lease)
        if reply.get("e") and self._should_retry_app_error(spec, reply):
            spec.retries_left -= 1
            spec.attempt += 1
            ks.queue.append(spec)
            self._pump(ks)
            return
        self.running.pop(spec.task_id, None)
        self.worker.complete_task(spec, reply)
        if any(v[0] is None for v in reply.get("r", ())):
            # Values in shared memory can be lost with their node: keep the recipe.
            self.lineage[spec.task_id] = spec
        self._pump(ks)

    def resubmit(self, spec: TaskSpec) -> None:
        """Run a finished task again to rebuild its lost returns (lineage reconstruction)."""
        self.running[spec.task_id] = spec
        ks = self.keys[spec.sched_key]
        spec.worker_address = None

        def resolved(error):
            if error is not None:
                self._finish_failed(spec, error)
            else:
                ks.queue.append(spec)
                self._pump(ks)

        resolve_dependencies(self.worker, spec, resolved)

    def on_oom_killed(self, payload: list) -> None:
        lease_id, message = payload
        self.oom_kills[lease_id] = message

    async def _fail_crashed(self, spec: TaskSpec, lease: Lease) -> None:
        """Out of retries: NodeDiedError if the worker's node is gone, else WorkerCrashedError."""
        tries = f"(the task was tried {spec.attempt + 1} times)"
        if lease.node_id != self.worker.node_id:
            try:
                nodes = await self.worker.control.request("get_nodes")
                node = next((n for n in nodes if n["node_id"] == lease.node_id), None)
                if node is not None and not node.get("alive"):
                    self._finish_failed(
                        spec,
                        exceptions.NodeDiedError(
                            f"The node {lease.node_id} ({node['node_ip']}) running task {spec.name} died {tries}."
                        ),
                    )
                    return
            except (ConnectionError, RpcError):
                pass
        self._finish_failed(
            spec,
            exceptions.WorkerCrashedError(f"The worker running task {spec.name} died unexpectedly {tries}."),
        )

    def _should_retry_app_error(self, spec: TaskSpec, reply: dict) -> bool:
        retry = spec.retry_exceptions
        if not retry or spec.retries_left == 0 or spec.cancelled:
            return False
        if retry is True:
            return not reply.get("cancelled")
        meta, data, bufs = reply["r"][0]
        try:
            err = serializer.deserialize(meta, data, bufs)
        except Exception:
            return False
        cause = getattr(err, "cause", err)
        return isinstance(cause, tuple(retry))

    def _finish_failed(self, spec: TaskSpec, error: BaseException) -> None:
        self.running.pop(spec.task_id, None)
        self.worker.fail_task(spec, error)

    # ---- cancellation ------------------------------------------------------------------
    def cancel(self, task_id: bytes, force: bool, recursive: bool) -> None:
        spec = self.running.get(task_id)
        if spec is None:
            return
        spec.cancelled = True
        ks = self.keys.get(spec.sched_key)
        if ks is not None and spec in ks.queue:
            ks.queue.remove(spec)
            self._finish_failed(spec, exceptions.TaskCancelledError(task_id.hex()))
            return
        if not spec.worker_address:
            # Still waiting for its arguments: fail it now rather than when they are ready.
            self._finish_failed(spec, exceptions.TaskCancelledError(task_id.hex()))
            return
        conn = self.worker.peers.get(spec.worker_address)
        if conn is not None:
            conn.notify("cancel_task", [task_id, force, recursive])

    def children_of(self, parent_task_id: bytes) -> list[bytes]:
        return [tid for tid, s in self.running.items() if s.parent_task_id == parent_task_id]
