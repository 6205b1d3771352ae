"""The core worker: the part of every driver and worker process that talks to the cluster.

It owns the objects this process creates (``put`` and the returns of tasks it submits),
counts references to them, submits tasks through worker leases and calls actors directly.
User code runs on its own threads; all networking runs on one asyncio loop in a
background thread ("IO loop"). Calls from user threads hand work to the loop; objects'
states are shared under the memory store's lock so ``get`` of a ready value never
crosses threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from solray import exceptions
from solray._private import ids, metrics_recorder
from solray._private.config import INLINE_OBJECT_MAX_BYTES
from solray._private.objects import shm_store
from solray._private.objects.memory_store import Entry, MemoryStore
from solray._private.objects.object_ref import ObjectRef
from solray._private.objects.reference_counter import ReferenceCounter
from solray._private.rpc.connection import Connection, ConnectionLost, RpcError, connect, serve
from solray._private.runtime_env import packaging
from solray._private.serialization import serializer
from solray._private.serialization.serializer import SerializedObject
from solray._private.worker import state_report
from solray._private.worker.actor_submitter import ActorTaskSubmitter
from solray._private.worker.borrowing import BorrowingMixin, request_on_loop
from solray._private.worker.recovery import RecoveryMixin
from solray._private.worker.streams import StreamsMixin
from solray._private.worker.task_events import TaskEventBuffer
from solray._private.worker.task_submitter import NormalTaskSubmitter

logger = logging.getLogger(__name__)

DRIVER = "driver"
WORKER = "worker"


class _ContextField:
    """A ``TaskContext`` attribute kept in a context variable.

    Each thread has its own value, as with ``threading.local``, and so does each asyncio
    task: the concurrent calls of an async actor are coroutines on one thread, and each
    must see its own task id (runtime context, parent of the tasks it submits).
    """

    def __init__(self, name: str, default: Any):
        self.var: contextvars.ContextVar = contextvars.ContextVar(f"solray_{name}", default=default)

    def __get__(self, obj: Any, owner: type) -> Any:
        return self if obj is None else self.var.get()

    def __set__(self, obj: Any, value: Any) -> None:
        self.var.set(value)


class TaskContext:
    """What the current thread or asyncio task is running (runtime context, child tasks)."""

    task_id = _ContextField("task_id", None)
    task_name = _ContextField("task_name", "")
    resources = _ContextField("resources", None)
    placement = _ContextField("placement", None)  # its placement group (see TaskSpec.placement)


class CoreWorker(BorrowingMixin, RecoveryMixin, StreamsMixin):
    def __init__(
        self,
        *,
        mode: str,
        token: str,
        node_id: str,
        node_ip: str,
        daemon_address: str,
        control_address: str,
        shm_dir: str,
        session_dir: str,
        job_id: int | None = None,
        namespace: str | None = None,
        worker_id: str | None = None,
        log_to_driver: bool = True,
        runtime_env: dict | None = None,
        driver_address: str | None = None,
    ):
        self.mode = mode
        self.token = token
        self.node_id = node_id
        self.node_ip = node_ip
        self.daemon_address = daemon_address
        self.control_address = control_address
        self.shm_dir = shm_dir
        self.session_dir = session_dir
        self.job_id = job_id
        self.namespace = namespace
        self.worker_id = worker_id or ids.new_id().hex()
        self.log_to_driver = log_to_driver
        self.runtime_env = runtime_env or {}
        self.created_actors = 0  # non-detached actors this process created: they share its fate
        # env_vars of the runtime_env this worker was started for: as in Ray, the tasks and
        # actors it submits inherit them (their own env_vars win on conflicts).
        self.inherited_env_vars: dict[str, str] = {}
        self.driver_address = driver_address
        self.address = ""
        self.actor_id: bytes | None = None
        self.actor_name: str = ""
        self.actor_restarted = False  # this actor process is a restart (max_restarts)
        self.context = TaskContext()
        self.assigned_resources: dict = {}
        self.gpu_ids: list = []
        self.actor_placement: list | None = None  # an actor's placement group (TaskSpec.placement)

        self.loop = asyncio.new_event_loop()
        self._loop_thread: threading.Thread | None = None
        self._loop_tid: int | None = None
        self._scheduled: list[Callable] = []
        self._schedule_lock = threading.Lock()
        self.store = MemoryStore()
        self.refs = ReferenceCounter(self._on_refs_zero, self.schedule)
        # Borrowed oid -> how many messages delivered it here since we last told its owner we
        # dropped it. The owner counts the deliveries it registered for us the same way, so a
        # release that crosses a new delivery in flight cannot drop a borrow still in use.
        self._borrow_counts: dict[bytes, int] = {}
        self._borrow_lock = threading.Lock()
        self._watched_borrowers: set[str] = set()  # addresses of processes borrowing our objects
        self._borrow_owners: dict[bytes, str] = {}
        self.peers: dict[str, Connection] = {}
        self._peer_connecting: dict[str, asyncio.Future] = {}
        self._pending_frees: list = []
        self.node_addresses: dict[str, str] = {}
        self.reconstructions = 0  # lost objects this owner rebuilt by re-running their task
        self.task_retries = 0  # tasks and actor calls sent again after their worker died
        self._put_scope = ids.new_id()
        self._put_index = 0
        self._put_lock = threading.Lock()
        self.submitter = NormalTaskSubmitter(self)
        self.actor_submitter = ActorTaskSubmitter(self)
        self.task_events = TaskEventBuffer(self)  # for the state API (list_tasks)
        self.executor = None  # set in worker processes
        self.daemon: Connection | None = None
        self.control: Connection | None = None
        self._server = None
        self._streams: dict[bytes, dict] = {}
        # Streams whose generator was dropped before the task finished: items still coming
        # are freed on arrival. Items of "dynamic" tasks wait here until the task's value
        # (which refers to them) arrives, and are freed if the task fails instead.
        self._dropped_streams: set[bytes] = set()
        self._unclaimed_items: dict[bytes, list[bytes]] = {}
        self.creating: dict[bytes, asyncio.Future] = {}  # actor_id -> sent to control
        self.free_hooks: dict[bytes, Callable[[], None]] = {}  # owned oid -> run when freed
        self._handlers = self._build_handlers()
        self.shutting_down = False
        self.on_daemon_lost: Callable[[], None] | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, hello_extra: dict | None = None) -> None:
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self._loop_tid = threading.get_ident()
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self._loop_thread = threading.Thread(target=run, name="solray-io", daemon=True)
        self._loop_thread.start()
        ready.wait()
        self.run_sync(self._connect(hello_extra or {}))

    async def _connect(self, hello_extra: dict) -> None:
        self._server = await serve(self.node_ip, 0, self.token, self._handle, name="core-worker")
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"{self.node_ip}:{port}"
        host, port = self.control_address.rsplit(":", 1)
        self.control = await connect(
            host, int(port), self.token, self._handle, name="control", on_close=self._on_control_lost
        )
        if self.mode == DRIVER:
            if self.runtime_env.get("working_dir") or self.runtime_env.get("py_modules"):
                # Local folders become packages every node can fetch.
                self.runtime_env = await packaging.upload_local_folders(
                    self.runtime_env, lambda *a: self.control.request("kv_put", list(a))
                )
            info = await self.control.request(
                "register_job",
                {
                    "driver_address": self.address,
                    "namespace": self.namespace,
                    "pid": os.getpid(),
                    "runtime_env": self.runtime_env,
                    "entrypoint": " ".join(sys.argv),
                    # Set by the job manager for a submitted job's entrypoint (Jobs API).
                    "submission_id": os.environ.get("SOLRAY_JOB_SUBMISSION_ID") or None,
                    "sys_path": list(sys.path),
                },
            )
            self.job_id = info["job_id"]
            self.namespace = info["namespace"]
            self.driver_address = self.address
        host, port = self.daemon_address.rsplit(":", 1)
        self.daemon = await connect(
            host, int(port), self.token, self._handle, name="daemon", on_close=self._on_daemon_closed
        )
        await self.daemon.request(
            "register_client",
            {
                "kind": self.mode,
                "worker_id": self.worker_id,
                "address": self.address,
                "pid": os.getpid(),
                "job_id": self.job_id,
                "namespace": self.namespace,
                "runtime_env": self.runtime_env,
                # Workers import the driver's modules by reference, as Ray's do: they get
                # the driver's import path (its script's folder, a test's rootdir...).
                "sys_path": list(sys.path) if self.mode == DRIVER else None,
                **hello_extra,
            },
        )

    def shutdown(self) -> None:
        self.shutting_down = True
        self.refs.enabled = False

        async def close():
            for conn in list(self.peers.values()):
                conn.close()
            if self.control is not None:
                self.task_events.flush()
                metrics_recorder.RECORDER.report_final(self)
                self.control.close()
            if self.daemon is not None:
                self.daemon.close()
            if self._server is not None:
                self._server.close()
            # Background work (frees, reconnects) ends here, not as "Task was destroyed
            # but it is pending!" noise when the loop is collected.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in others:
                t.cancel()
            if others:
                await asyncio.wait(others, timeout=1)

        try:
            self.run_sync(close(), timeout=5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._loop_thread is not None:
            self._loop_thread.join(timeout=5)

    def _on_daemon_closed(self, conn: Connection) -> None:
        if not self.shutting_down and self.on_daemon_lost is not None:
            self.on_daemon_lost()

    def _on_control_lost(self, conn: Connection) -> None:
        if not self.shutting_down:
            logger.debug("lost connection to the control service; reconnecting")
            self.loop.create_task(self._reconnect_control())

    async def _reconnect_control(self) -> None:
        """Survive a head restart: reconnect, reattach the job, resubscribe to actors."""
        from solray._private import config

        host, port = self.control_address.rsplit(":", 1)
        deadline = time.monotonic() + config.CONTROL_RECONNECT_TIMEOUT_S
        while time.monotonic() < deadline and not self.shutting_down:
            await asyncio.sleep(0.2)
            try:
                self.control = await connect(
                    host, int(port), self.token, self._handle, name="control", on_close=self._on_control_lost
                )
                if self.mode == DRIVER:
                    await self.control.request("reattach_job", self.job_id)
                break
            except OSError:
                continue
        else:
            return
        self.actor_submitter.resubscribe_all()

    # ------------------------------------------------------------------ threading helpers
    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_tid

    def schedule(self, fn: Callable) -> None:
        """Run ``fn()`` on the IO loop soon; calls from one iteration share one wake-up."""
        if self.in_loop_thread():
            self.loop.call_soon(fn)
            return
        with self._schedule_lock:
            first = not self._scheduled
            self._scheduled.append(fn)
        if first:
            try:
                self.loop.call_soon_threadsafe(self._run_scheduled)
            except RuntimeError:  # loop closed at shutdown
                pass

    def _run_scheduled(self) -> None:
        with self._schedule_lock:
            fns, self._scheduled = self._scheduled, []
        for fn in fns:
            try:
                fn()
            except Exception:
                logger.exception("scheduled callback failed")

    def run_sync(self, coro: Coroutine, timeout: float | None = None) -> Any:
        if self.in_loop_thread():
            raise RuntimeError("run_sync called on the IO loop thread")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    # ------------------------------------------------------------------ peers
    async def peer(self, address: str) -> Connection:
        conn = self.peers.get(address)
        if conn is not None and not conn.closed:
            return conn
        pending = self._peer_connecting.get(address)
        if pending is not None:
            return await asyncio.shield(pending)
        fut = self.loop.create_future()
        self._peer_connecting[address] = fut
        try:
            host, port = address.rsplit(":", 1)
            conn = await connect(
                host, int(port), self.token, self._handle, name=f"peer {address}", on_close=self._on_peer_closed
            )
            self.peers[address] = conn
            fut.set_result(conn)
            return conn
        except BaseException as e:
            fut.set_exception(ConnectionLost(f"cannot connect to {address}: {e}"))
            fut.exception()  # mark retrieved
            raise ConnectionLost(f"cannot connect to {address}: {e}") from e
        finally:
            self._peer_connecting.pop(address, None)

    def _on_peer_closed(self, conn: Connection) -> None:
        for addr, c in list(self.peers.items()):
            if c is conn:
                del self.peers[addr]
                if addr in self._watched_borrowers and not self.shutting_down:
                    self._borrower_gone(addr)

    # ------------------------------------------------------------------ RPC handlers
    def _build_handlers(self) -> dict[str, Callable]:
        return {
            "get_object": self._h_get_object,
            "add_borrower": self._h_add_borrower,
            "remove_borrower": self._h_remove_borrower,
            "stream_item": self._h_stream_item,
            "logs": self._h_logs,
            "actor_update": self.actor_submitter.on_actor_update,
            "infeasible": self._h_infeasible,
            "oom_killed": self.submitter.on_oom_killed,
            "reconstruct_object": self._h_reconstruct_object,
            "object_moved": self._h_object_moved,
            "state_objects": lambda p: state_report.owned_objects(self),
            "ping": lambda p: "pong",
            "may_exit": lambda p: not self.owns_anything(),
        }

    def _handle(self, conn: Connection, method: str, payload: Any, tail: Any) -> Any:
        h = self._handlers.get(method)
        if h is not None:
            return h(payload)
        if self.executor is not None:
            return self.executor.handle(conn, method, payload, tail)
        raise LookupError(f"unknown method {method!r}")

    async def _h_get_object(self, payload):
        oid, requester = payload
        e = self.store.get(oid)
        if e is None or not e.owned:
            return ["lost"]
        if not e.ready:
            fut = self.loop.create_future()

            def done(_e, fut=fut):
                self.loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))

            if self.store.add_callback(oid, done):
                await fut
            e = self.store.get(oid)
            if e is None:
                return ["lost"]
        contained = [[r.binary(), r.owner_address()] for r in e.contained]
        if contained:
            await self.register_borrowers(contained, requester)
        if e.inline is not None:
            return ["inline", e.inline, e.is_error, contained]
        return ["shm", e.location, e.is_error, contained]

    def _h_add_borrower(self, payload):
        oid, addr = payload
        e = self.store.get(oid)
        if e is not None and e.owned:
            self._add_borrower(e, addr)
            return True
        return False

    def _h_remove_borrower(self, payload):
        oid, addr = payload[0], payload[1]
        e = self.store.get(oid)
        if e is not None and e.owned:
            # The borrower released the deliveries it had seen; newer ones keep it a borrower.
            left = e.borrowers.get(addr, 0) - (payload[2] if len(payload) > 2 else 1 << 62)
            if left > 0:
                e.borrowers[addr] = left
            else:
                e.borrowers.pop(addr, None)
            self._maybe_free(oid)

    def _h_logs(self, payload):
        from solray._private.worker.logs import print_worker_logs

        print_worker_logs(payload)

    def print_task_output(self, reply: dict) -> None:
        """Print the output a task sent along with its reply (only replies to the driver)."""
        if "logs" in reply:
            self._h_logs(reply.pop("logs"))

    def _h_infeasible(self, payload):
        print(f"\x1b[33m(scheduler)\x1b[0m Warning: {payload}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ objects: put
    def _next_put_id(self) -> bytes:
        with self._put_lock:
            self._put_index += 1
            if self._put_index >= 1 << 31:
                self._put_scope = ids.new_id()
                self._put_index = 1
            return ids.object_id(self._put_scope, self._put_index)

    def put(self, value: Any, *, _owner: Any = None) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError(
                "Calling 'put' on an ObjectRef is not allowed. If you really want to do "
                "this, you can wrap the ObjectRef in a list and call 'put' on it."
            )
        try:
            so = serializer.serialize(value)
        except Exception as e:
            raise _serialization_error(value, "put", "the value passed to put()", e) from e
        oid = self._next_put_id()
        return self.put_serialized(oid, so)

    def put_serialized(self, oid: bytes, so: SerializedObject, is_error: bool = False) -> ObjectRef:
        ref = ObjectRef(oid, self.address, _worker=self)
        contained = list(so.contained)
        if so.total_bytes <= INLINE_OBJECT_MAX_BYTES:
            self.store.set_ready(oid, inline=so.to_inline(), is_error=is_error, contained=contained, create_owned=True)
        else:
            location = self.write_shm(oid, so, owner=self.address)
            self.store.set_ready(oid, location=location, is_error=is_error, contained=contained, create_owned=True)
        return ref

    def write_shm(self, oid: bytes, so: SerializedObject, owner: str) -> list:
        size = so.total_bytes
        if self.in_loop_thread():
            raise RuntimeError("write_shm must not run on the IO loop")
        reply = self.run_sync(request_on_loop(self.daemon, "alloc_object", [oid, size, owner]))
        if reply not in ("ok", "reuse"):
            raise exceptions.ObjectStoreFullError(reply)
        path = os.path.join(self.shm_dir, oid.hex())
        try:
            total = shm_store.write(path, so, reuse=reply == "reuse")
        except OSError as e:
            self.daemon_notify("free_objects", [oid])  # undo the allocation
            if e.errno == 28:  # ENOSPC
                raise exceptions.ObjectStoreFullError(
                    f"Failed to write object {oid.hex()} of {size} bytes: shared memory is full"
                ) from e
            raise
        return [self.node_id, path, total]

    def daemon_notify(self, method: str, payload: Any) -> None:
        self.loop.call_soon_threadsafe(self.daemon.notify, method, payload)

    # ------------------------------------------------------------------ objects: get
    def ensure_tracked(self, ref: ObjectRef) -> Entry:
        """Entry for ``ref``; for a borrowed ref, start fetching its value from the owner."""
        oid = ref.binary()
        e = self.store.get(oid)
        if e is not None:
            return e
        owner = ref.owner_address()
        if owner == self.address:
            e = self.store.create(oid, owned=True)
            self.store.set_ready(
                oid,
                inline=serializer.serialize_error(exceptions.ObjectLostError(oid.hex(), owner)).to_inline(),
                is_error=True,
            )
            return e
        e = self.store.create(oid, owned=False)
        with self.store.lock:
            start = not e.fetching and not e.ready
            e.fetching = True
        if start:
            self.schedule(lambda: self.loop.create_task(self._fetch(oid, owner)))
        return e

    async def _fetch(self, oid: bytes, owner: str) -> None:
        try:
            conn = await self.peer(owner)
            reply = await conn.request("get_object", [oid, self.address])
        except Exception as e:
            err = exceptions.OwnerDiedError(oid.hex(), owner)
            logger.debug("fetch of %s from %s failed: %s", oid.hex(), owner, e)
            self.store.set_ready(oid, inline=serializer.serialize_error(err).to_inline(), is_error=True)
            return
        kind = reply[0]
        if kind == "lost":
            err = exceptions.ObjectLostError(oid.hex(), owner)
            self.store.set_ready(oid, inline=serializer.serialize_error(err).to_inline(), is_error=True)
            return
        _, value, is_error, contained = reply
        pins = self.note_borrowed(contained)
        if kind == "inline":
            self.store.set_ready(oid, inline=value, is_error=is_error, contained=pins)
        else:
            self.store.set_ready(oid, location=value, is_error=is_error, contained=pins)

    def _blocked(self):
        """Context manager: tell the daemon this worker waits, so its CPU can be lent."""
        return _BlockedScope(self)

    def wait_ready(self, refs: list[ObjectRef], num_returns: int, timeout: float | None) -> set[bytes]:
        # Fast path: enough refs, in order, are ready already (wait() in a loop hits this).
        lookup = self.store.entries.get
        early: set[bytes] = set()
        for r in refs:
            e = lookup(r._id)
            if e is None:
                break
            if e.ready:
                early.add(r._id)
                if len(early) >= num_returns:
                    return early
        unique = {r.binary(): r for r in refs}
        refs = list(unique.values())
        num_returns = min(num_returns, len(refs))
        entries = [self.ensure_tracked(r) for r in refs]
        ready = {r.binary() for r, e in zip(refs, entries, strict=True) if e.ready}
        if len(ready) >= num_returns:
            return ready
        # Slow path: sleep until the store says *some* object became ready, then rescan. One
        # shared signal costs O(refs) per wake-up instead of a callback per ref per call.
        store = self.store
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._blocked():
            while True:
                generation = store.generation
                ready = {r._id for r, e in zip(refs, entries, strict=True) if e.ready}
                if len(ready) >= num_returns:
                    return ready
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return ready
                with store.ready_cond:
                    if store.generation == generation:
                        store.ready_cond.wait(remaining if remaining is not None else 1.0)
                entries = [store.get(r._id) or self.ensure_tracked(r) for r in refs]

    def get(self, refs: list[ObjectRef], timeout: float | None = None) -> list[Any]:
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number or None")
        ready = self.wait_ready(refs, len(refs), timeout)
        if len(ready) < len({r.binary() for r in refs}):
            raise exceptions.GetTimeoutError(
                f"Get timed out: some object(s) not ready after {timeout} seconds."
            )
        return [self.load_value(r) for r in refs]

    def load_value(self, ref: ObjectRef) -> Any:
        oid = ref.binary()
        e = self.store.get(oid)
        if e is None:
            raise exceptions.ObjectLostError(oid.hex(), ref.owner_address())
        for _attempt in range(3):
            try:
                value = self._deserialize_entry(oid, e)
                break
            except exceptions.ObjectLostError:
                if not self._recover(ref, e):
                    raise
                e = self.store.get(oid)
        else:
            raise exceptions.ObjectReconstructionFailedError(oid.hex(), ref.owner_address())
        if e.is_error:
            raise _as_raisable(value)
        return value

    def _deserialize_entry(self, oid: bytes, e: Entry) -> Any:
        if e.inline is not None:
            meta, data, bufs = e.inline
            return serializer.deserialize(meta, data, bufs)
        mapped = e.mapped
        if mapped is None:
            path = self.local_path(oid, e.location, self._borrow_owners.get(oid, self.address))
            try:
                mapped = shm_store.read(path)
            except FileNotFoundError:
                raise exceptions.ObjectLostError(oid.hex(), "") from None
            e.mapped = mapped
        meta, data, bufs = mapped
        return serializer.deserialize(meta, data, bufs)

    def get_future(self, ref: ObjectRef) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        oid = ref.binary()
        self.ensure_tracked(ref)

        def resolve(_e=None):
            if fut.done():
                return
            try:
                fut.set_result(self.load_value(ref))
            except BaseException as exc:
                fut.set_exception(exc)

        if not self.store.add_callback(oid, resolve):
            resolve()
        return fut

    async def get_async(self, ref: ObjectRef) -> Any:
        return await asyncio.wrap_future(self.get_future(ref))

    # ------------------------------------------------------------------ task results
    def complete_returns(self, return_ids: list[bytes], reply: dict) -> None:
        """Store the values a worker sent back for a task's returns."""
        values = reply["r"]
        contained = reply.get("c") or [None] * len(values)
        is_error = bool(reply.get("e"))
        for oid, value, cont in zip(return_ids, values, contained, strict=False):
            pins = self.note_borrowed(cont)
            if value[0] is None:
                e = self.store.set_ready(oid, location=value[1], is_error=is_error, contained=pins)
                if e is None:
                    self.free_shm([(oid, value[1][0])])
            else:
                self.store.set_ready(oid, inline=value, is_error=is_error, contained=pins)

    def fail_returns(self, return_ids: list[bytes], error: BaseException) -> None:
        inline = serializer.serialize_error(error).to_inline()
        for oid in return_ids:
            self.store.set_ready(oid, inline=inline, is_error=True)
        for tid in {ids.task_id_of(o) for o in return_ids}:
            st = self._streams.get(tid)
            if st is not None:
                self._end_stream(tid, error_inline=inline)


    def complete_task(self, spec, reply: dict) -> None:
        self.task_events.finished(spec, reply)
        if spec.num_returns == "streaming":
            self._dropped_streams.discard(spec.task_id)
            if reply.get("e"):
                self._end_stream(spec.task_id, error_inline=reply["r"][0])
            else:
                self.end_stream(spec.task_id, reply.get("n", 0))
            self.store.set_ready(spec.return_refs[0], inline=_NONE_INLINE)
            return
        self.complete_returns(spec.return_refs, reply)
        self._settle_items(spec.task_id, failed=bool(reply.get("e")))

    def fail_task(self, spec, error: BaseException) -> None:
        self.task_events.failed(spec, error)
        if spec.num_returns == "streaming":
            self._dropped_streams.discard(spec.task_id)
            self._end_stream(spec.task_id, error_inline=serializer.serialize_error(error).to_inline())
            self.store.set_ready(spec.return_refs[0], inline=_NONE_INLINE)
            return
        self.fail_returns(spec.return_refs, error)
        self._settle_items(spec.task_id, failed=True)

    def _settle_items(self, task_id: bytes, failed: bool) -> None:
        """A "dynamic" task ended: its value now holds its items, or nothing ever will."""
        items = self._unclaimed_items.pop(task_id, None)
        if failed and items:
            for oid in items:
                self._maybe_free(oid)

    # ------------------------------------------------------------------ actors
    def owns_anything(self) -> bool:
        """Whether this process's exit would lose something: objects it owns that are still
        referenced, or actors it created (which die with it)."""
        return self.created_actors > 0 or any(e.owned for e in list(self.store.entries.values()))

    def create_actor(self, spec: dict, deps: list, wait: bool) -> Any:
        """Register an actor with the control service once its arguments are ready."""
        if spec.get("lifetime") != "detached":
            self.created_actors += 1

        async def go(sent: asyncio.Future | None):
            if deps:
                from solray._private.worker.task_spec import TaskSpec
                from solray._private.worker.task_submitter import resolve_dependencies

                holder = TaskSpec(dep_refs=deps)
                fut = self.loop.create_future()
                resolve_dependencies(self, holder, lambda err: fut.done() or fut.set_result(err))
                err = await fut
                if err is not None:
                    spec["dep_error"] = serializer.serialize_error(err).to_inline()
                spec["dep_values"] = holder.dep_values
            req = self.control.request("create_actor", spec)
            if sent is not None:
                # Calls to the actor subscribe to it only once the control service has it.
                sent.set_result(None)
            return await req

        if wait:
            try:
                return self.run_sync(go(None))
            except RpcError as e:
                if e.remote_type == "ValueError":
                    raise ValueError(str(e).split(": ", 1)[-1]) from None
                raise

        async def go_logged(sent: asyncio.Future):
            try:
                await go(sent)
            except Exception as e:
                logger.error("creating actor %s failed: %s", spec.get("class_name"), e)
            finally:
                if not sent.done():
                    sent.set_result(None)
                self.creating.pop(spec["actor_id"], None)

        def start():
            sent = self.loop.create_future()
            self.creating[spec["actor_id"]] = sent
            self.loop.create_task(go_logged(sent))

        self.schedule(start)
        return None

    def actor_lifetime_ref(self, actor_id: bytes, creation_task_id: bytes, pins: list) -> ObjectRef:
        """A ref every handle of an actor carries; when it is freed, the actor terminates.

        Handles pickle this ref with them, so passing a handle to a task, an actor or into
        an object makes the receiver a borrower, exactly as for object refs. The actor
        lives while its creator holds a handle or any borrower does (Ray's handle scoping).
        ``pins`` (the constructor's argument refs) live as long, for restarts.
        """
        oid = ids.object_id(creation_task_id, 1)
        self.store.create(oid, owned=True)
        self.store.set_ready(oid, inline=_NONE_INLINE, contained=pins or None)
        self.free_hooks[oid] = lambda: self.terminate_actor_when_idle(actor_id)
        return ObjectRef(oid, self.address, _worker=self)

    def terminate_actor_when_idle(self, actor_id: bytes) -> None:
        """Queue ``__ray_terminate__`` behind this process's pending calls to the actor."""
        from solray._private.worker.task_spec import ACTOR_TASK, TaskSpec

        tid = ids.new_id()
        spec = TaskSpec(task_id=tid, kind=ACTOR_TASK, name="__ray_terminate__", args_blob=None,
                        dep_refs=[], num_returns=1, return_refs=[ids.object_id(tid, 1)],
                        retries_left=0, actor_id=actor_id, method="__ray_terminate__")
        self.schedule(lambda: self.actor_submitter.submit(spec))

    def control_call(self, method: str, payload: Any = None, timeout: float | None = 30) -> Any:
        return self.run_sync(request_on_loop(self.control, method, payload), timeout)

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> bool:
        """Ask the control service to kill an actor, after its creation request if pending
        (``kill`` right after ``.remote()`` must not reach the service before the actor)."""

        async def go():
            creating = self.creating.get(actor_id)
            if creating is not None:
                await asyncio.shield(creating)
            return await self.control.request("kill_actor", [actor_id, no_restart])

        return self.run_sync(go(), 30)

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        task_id = ids.task_id_of(ref.binary())

        def go():
            if task_id in self.submitter.running:
                self.submitter.cancel(task_id, force, recursive)
            else:
                self.actor_submitter.cancel(task_id, force, recursive)

        self.schedule(go)



_NONE_INLINE = serializer.serialize(None).to_inline()


class _BlockedScope:
    def __init__(self, worker: CoreWorker):
        self.worker = worker
        self.active = False

    def __enter__(self):
        w = self.worker
        if w.mode == WORKER and w.context.task_id is not None and w.executor is not None:
            self.active = w.executor.notify_blocked()
        return self

    def __exit__(self, *exc):
        if self.active:
            self.worker.executor.notify_unblocked()


def _as_raisable(value: Any) -> BaseException:
    if isinstance(value, exceptions.RayTaskError):
        return value.as_instanceof_cause()
    if isinstance(value, BaseException):
        return value
    return exceptions.RaySystemError(f"unexpected error object {value!r}")


def _serialization_error(value: Any, what: str, where: str, cause: Exception) -> TypeError:
    try:
        from solray._private.serialization.inspect import describe_unserializable

        detail = describe_unserializable(value, where)
    except Exception:
        detail = f"Could not serialize {where} (type {type(value).__name__}): {cause}"
    return TypeError(detail)

