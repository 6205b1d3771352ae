"""Calling actors: one ordered queue per actor, sent over a direct connection.

Calls from one caller run in submission order: a call leaves the queue only when every
call before it has been sent, and the actor executes one connection's calls in arrival
order. The control service tells us (by subscription) where the actor lives and whether
it is alive, restarting or dead. Runs on the core worker's IO loop only.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from solray import exceptions
from solray._private.rpc.connection import RpcError
from solray._private.serialization import serializer
from solray._private.worker.task_spec import TaskSpec
from solray._private.worker.task_submitter import resolve_dependencies

if TYPE_CHECKING:
    from solray._private.worker.core_worker import CoreWorker

logger = logging.getLogger(__name__)

ALIVE = "ALIVE"
DEAD = "DEAD"
RESTARTING = "RESTARTING"
PENDING = "PENDING_CREATION"


class ActorState:
    __slots__ = (
        "actor_id", "state", "address", "conn", "queue", "inflight", "death", "subscribed",
        "incarnation", "connecting", "version", "next_seq", "broken", "rechecking",
    )

    def __init__(self, actor_id: bytes):
        self.actor_id = actor_id
        self.state = PENDING
        self.address: str | None = None
        self.conn = None
        self.queue: deque[TaskSpec] = deque()  # waiting to be sent, in submission order
        self.inflight: dict[bytes, TaskSpec] = {}
        self.death: dict | None = None
        self.subscribed = False
        self.incarnation = -1
        self.connecting = False
        self.version = -1  # of the newest control-service info applied
        self.next_seq = 0  # submission order of this caller's calls (retries keep their place)
        self.broken = -1  # incarnation whose connection broke: do not reconnect to it
        self.rechecking = False


class ActorTaskSubmitter:
    def __init__(self, worker: CoreWorker):
        self.worker = worker
        self.actors: dict[bytes, ActorState] = {}

    def _state(self, actor_id: bytes) -> ActorState:
        st = self.actors.get(actor_id)
        if st is None:
            st = self.actors[actor_id] = ActorState(actor_id)
        if not st.subscribed:
            st.subscribed = True
            creating = self.worker.creating.get(actor_id)
            if creating is not None and not creating.done():
                creating.add_done_callback(lambda _f: self._subscribe(st))
            else:
                self._subscribe(st)
        return st

    def _subscribe(self, st: ActorState) -> None:
        fut = self.worker.control.request("subscribe_actor", st.actor_id)
        fut.add_done_callback(lambda f: self._on_subscribed(st, f))

    def resubscribe_all(self) -> None:
        for st in self.actors.values():
            if st.state != DEAD:
                self._subscribe(st)

    def _on_subscribed(self, st: ActorState, fut) -> None:
        if fut.cancelled() or fut.exception() is not None:
            st.subscribed = False
            if not self.worker.shutting_down:
                self._mark_dead(st, {"message": f"cannot reach the control service: {fut.exception()}"})
            return
        self._apply(st, fut.result())

    def on_actor_update(self, payload: list) -> None:
        actor_id, info = payload
        st = self.actors.get(actor_id)
        if st is not None:
            self._apply(st, info)

    def _apply(self, st: ActorState, info: dict | None) -> None:
        if st.state == DEAD:
            return  # final
        if info is None:
            self._mark_dead(st, {"message": "The actor does not exist (it was never created or its owner died)."})
            return
        # Replies run a loop iteration after notifications that arrived with them: never let
        # an older answer undo a newer one (say ALIVE of a dead incarnation after RESTARTING).
        version = info.get("version", 0)
        if version < st.version:
            return
        st.version = version
        state = info["state"]
        if state == ALIVE:
            if st.conn is not None and st.conn.closed and info["incarnation"] == st.incarnation:
                st.broken = st.incarnation
            if info["incarnation"] == st.broken:
                # Our connection to this incarnation broke, so its process is going away
                # even if the service has not noticed yet (a dying process may still
                # accept a connection on localhost). Wait for the next incarnation or DEAD.
                st.state = RESTARTING
                st.conn = None
                self._recheck_later(st)
                return
            if info["incarnation"] != st.incarnation or st.conn is None or st.conn.closed:
                st.incarnation = info["incarnation"]
                st.address = info["address"]
                st.conn = None
                st.state = ALIVE
                self._connect(st)
        elif state == DEAD:
            self._mark_dead(st, info.get("death") or {})
        else:
            st.state = state

    def _recheck_later(self, st: ActorState, delay: float = 1.0) -> None:
        """If the service still calls the broken incarnation alive after ``delay``, only
        our connection failed: reconnect to it."""
        if st.rechecking:
            return
        st.rechecking = True

        def check():
            fut = self.worker.control.request("get_actor_info", st.actor_id)
            fut.add_done_callback(on_info)

        def on_info(fut):
            st.rechecking = False
            if fut.cancelled() or fut.exception() is not None:
                return
            info = fut.result()
            if info is not None and info["state"] == ALIVE and info["incarnation"] == st.broken:
                st.broken = -1
            self._apply(st, info)

        self.worker.loop.call_later(delay, check)

    def _connect(self, st: ActorState) -> None:
        """Connect to the current incarnation; a newer one may arrive while connecting."""
        if st.connecting:
            return
        st.connecting = True

        async def go():
            try:
                while st.state == ALIVE and st.conn is None:
                    incarnation = st.incarnation
                    try:
                        conn = await self.worker.peer(st.address)
                    except ConnectionError:
                        conn = None  # the control service will tell us what happened
                    if st.incarnation == incarnation:
                        st.conn = conn
                        break
                    # A newer incarnation was announced meanwhile: connect to that one.
            finally:
                st.connecting = False
            self._flush(st)

        self.worker.loop.create_task(go())

    def _mark_dead(self, st: ActorState, death: dict) -> None:
        st.state = DEAD
        st.death = death
        err = death_error(st.actor_id, death)
        while st.queue:
            self._fail(st.queue.popleft(), err)
        for spec in list(st.inflight.values()):
            self._fail(spec, err)
        st.inflight.clear()

    # ---- submission --------------------------------------------------------------------
    def submit(self, spec: TaskSpec) -> None:
        st = self._state(spec.actor_id)
        self.worker.task_events.submitted(spec)
        if st.state == DEAD:
            self._fail(spec, death_error(st.actor_id, st.death or {}))
            return
        spec.dep_values = None
        spec.seq = st.next_seq
        st.next_seq += 1
        st.queue.append(spec)

        def resolved(error):
            if error is not None:
                spec.dep_values = error
            elif spec.dep_values is None:
                spec.dep_values = []
            self._flush(st)

        resolve_dependencies(self.worker, spec, resolved)

    def _flush(self, st: ActorState) -> None:
        if st.state != ALIVE or st.conn is None or st.conn.closed:
            return
        while st.queue and st.queue[0].dep_values is not None:
            spec = st.queue.popleft()
            if isinstance(spec.dep_values, BaseException):
                self._fail(spec, spec.dep_values)
                continue
            if spec.cancelled:
                self._fail(spec, exceptions.TaskCancelledError(spec.task_id.hex()))
                continue
            self._send(st, spec)

    def _send(self, st: ActorState, spec: TaskSpec) -> None:
        conn = st.conn
        st.inflight[spec.task_id] = spec
        spec.worker_address = st.address
        msg = spec.to_wire(self.worker.address, include_function=False)
        msg["act"] = st.actor_id

        self.worker.task_events.running(spec)

        def send(_t=None):
            fut = conn.request("push_task", msg)
            fut.add_done_callback(lambda f: self._on_reply(st, spec, conn, f))

        if spec.contained:
            contained = [[r.binary(), r.owner_address()] for r in spec.contained]
            self.worker.loop.create_task(self.worker.register_borrowers(contained, st.address)).add_done_callback(send)
        else:
            send()

    def _on_reply(self, st: ActorState, spec: TaskSpec, conn, fut) -> None:
        st.inflight.pop(spec.task_id, None)
        exc = fut.exception() if not fut.cancelled() else ConnectionError("cancelled")
        if exc is None:
            self.worker.print_task_output(fut.result())
            if spec.cancelled:
                # Cancelled while running on a sync actor, which finished it regardless.
                self._fail(spec, exceptions.TaskCancelledError(spec.task_id.hex()))
            else:
                self.worker.complete_task(spec, fut.result())
            return
        if isinstance(exc, RpcError):
            self._fail(spec, exceptions.RaySystemError(str(exc), exc.remote_traceback))
            return
        # The connection broke: the actor died or is restarting.
        if st.conn is conn:
            st.conn = None
            st.broken = st.incarnation
            if st.state == ALIVE:
                st.state = RESTARTING
        if spec.cancelled:
            self._fail(spec, exceptions.TaskCancelledError(spec.task_id.hex()))
        elif spec.retries_left != 0 and st.state != DEAD:
            spec.retries_left -= 1
            spec.attempt += 1
            self.worker.task_retries += 1
            # Back into the queue at its submission place (calls in flight fail together).
            at = next((i for i, q in enumerate(st.queue) if q.seq > spec.seq), len(st.queue))
            st.queue.insert(at, spec)
            self._flush(st)  # a new incarnation may already be connected
        elif st.state == DEAD:
            self._fail(spec, death_error(st.actor_id, st.death or {}))
        else:
            self._fail(
                spec,
                exceptions.ActorDiedError(
                    error_msg=f"The actor {st.actor_id.hex()} died while running {spec.name}: "
                    "the connection to it was lost (the worker process exited or was killed).",
                    actor_id=st.actor_id.hex(),
                ),
            )
        if self.worker.shutting_down:
            return  # our own connections are closing: nothing to ask
        # Ask where things stand now; the answer flushes or fails the queue.
        fut2 = self.worker.control.request("get_actor_info", st.actor_id)
        fut2.add_done_callback(lambda f: f.exception() is None and self._apply(st, f.result()))

    def _fail(self, spec: TaskSpec, error: BaseException) -> None:
        self.worker.fail_task(spec, error)

    # ---- cancellation ------------------------------------------------------------------
    def cancel(self, task_id: bytes, force: bool, recursive: bool) -> bool:
        for st in self.actors.values():
            for spec in st.queue:
                if spec.task_id == task_id:
                    st.queue.remove(spec)
                    self._fail(spec, exceptions.TaskCancelledError(task_id.hex()))
                    return True
            spec = st.inflight.get(task_id)
            if spec is not None:
                spec.cancelled = True
                if st.conn is not None:
                    st.conn.notify("cancel_task", [task_id, False, recursive])
                return True
        return False

    def actor_state(self, actor_id: bytes) -> Any:
        st = self.actors.get(actor_id)
        return st.state if st else None


def death_error(actor_id: bytes, death: dict) -> exceptions.RayError:
    """The error for calls to a dead actor; creation failures carry the original error."""
    cause = None
    blob = death.get("error")
    if blob is not None:
        try:
            cause = serializer.deserialize(*blob)
        except Exception:
            cause = None
    msg = death.get("message") or "The actor died."
    text = f"The actor {actor_id.hex()} is dead: {msg}"
    if cause is not None:
        text += f"\n{cause}"
    if death.get("unschedulable"):
        return exceptions.ActorUnschedulableError(text)
    if death.get("runtime_env_setup_failed"):
        return exceptions.ActorRuntimeEnvSetupError(cause=exceptions.RuntimeEnvSetupError(msg), error_msg=text, actor_id=actor_id.hex())
    return exceptions.ActorDiedError(cause=cause, error_msg=text, actor_id=actor_id.hex())
