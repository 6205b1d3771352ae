"""Running tasks and actor methods inside a worker process.

Pushed tasks arrive on the IO loop and run on the main thread (so signals can interrupt
them for ``cancel``), or, for actors, on the actor's thread pool (``max_concurrency > 1``,
concurrency groups) or its asyncio event loop (actors with ``async def`` methods).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import queue
import signal
import socket
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from solray import exceptions
from solray._private.config import INLINE_OBJECT_MAX_BYTES
from solray._private.objects import shm_store
from solray._private.objects.object_ref import DynamicObjectRefGenerator, ObjectRef
from solray._private.rpc.connection import RpcError
from solray._private.serialization import serializer
from solray._private.worker import logs
from solray._private.worker.task_spec import ACTOR_CREATION, ACTOR_TASK, NORMAL_TASK, ArgDep

if TYPE_CHECKING:
    from solray._private.rpc.connection import Connection
    from solray._private.worker.core_worker import CoreWorker

logger = logging.getLogger(__name__)

_STOP = object()


class ActorExit(Exception):
    """Raised by ``exit_actor()``: finish the current call, then exit without restart."""


class _AlreadyExited(Exception):
    """A call reached an actor that is exiting: it fails with ``ActorDiedError``, unrun."""


class Executor:
    def __init__(self, worker: CoreWorker):
        self.worker = worker
        self.functions: dict[bytes, Any] = {}
        # Pickled functions as they arrive: the owner sends one only with the first task that
        # uses it, and that task may be cancelled before it runs (and loads it).
        self.function_blobs: dict[bytes, bytes] = {}
        self.main_queue: queue.SimpleQueue = queue.SimpleQueue()
        self.actor: Any = None
        self.actor_class_name = ""
        self.actor_loop: asyncio.AbstractEventLoop | None = None
        self.group_pools: dict[str, ThreadPoolExecutor] = {}
        self.group_semaphores: dict[str, asyncio.Semaphore] = {}
        self.method_groups: dict[str, str] = {}
        self.calls = 0
        self.exiting = False  # set once exit_actor()/__ray_terminate__ ran: run nothing more
        self._active_calls = 0  # actor calls received and not yet replied to (IO loop only)
        self._exit_started = False
        self.cancelled: set[bytes] = set()
        self.main_task: bytes | None = None
        self.async_tasks: dict[bytes, asyncio.Task] = {}
        self._blocked_depth = 0
        self._blocked_lock = threading.Lock()
        self.ip = worker.node_ip
        self.hostname = socket.gethostname()

    # ---- IO loop side ------------------------------------------------------------------
    def handle(self, conn: Connection, method: str, payload: Any, tail: Any) -> Any:
        if method == "push_task":
            fut = self.worker.loop.create_future()
            if payload["k"] == ACTOR_TASK:
                self._active_calls += 1
                fut.add_done_callback(self._actor_call_done)
            self._route(conn, payload, fut)
            return fut
        if method == "cancel_task":
            self._cancel(*payload)
            return None
        if method == "exit":
            self._exit(0)
            return None
        raise LookupError(f"unknown method {method!r}")

    def _route(self, conn: Connection, msg: dict, fut: asyncio.Future) -> None:
        blob = msg.get("fb")
        if blob is not None:
            self.function_blobs.setdefault(msg["f"], blob)
        if msg["k"] == ACTOR_TASK:
            group = msg.get("cg") or self.method_groups.get(msg["m"], "")
            if self.actor_loop is not None:
                asyncio.run_coroutine_threadsafe(self._run_async(conn, msg, fut, group), self.actor_loop)
                return
            pool = self.group_pools.get(group)
            if pool is not None:
                pool.submit(self._execute, conn, msg, fut)
                return
        self.main_queue.put((conn, msg, fut))

    def _cancel(self, task_id: bytes, force: bool, recursive: bool) -> None:
        if recursive:
            for child in self.worker.submitter.children_of(task_id):
                self.worker.submitter.cancel(child, force, recursive)
        if force and self.main_task == task_id:
            os._exit(1)
        self.cancelled.add(task_id)
        task = self.async_tasks.get(task_id)
        if task is not None and self.actor_loop is not None:
            self.actor_loop.call_soon_threadsafe(task.cancel)
        elif self.main_task == task_id and self.actor is None:
            # A running task is interrupted; a running method of a sync or threaded actor
            # is not (the actor's state could be left half-changed). As in Ray, it can
            # poll get_runtime_context().is_canceled(); its caller gets TaskCancelledError.
            os.kill(os.getpid(), signal.SIGINT)

    def on_sigint(self, signum, frame) -> None:
        """SIGINT handler of a worker: interrupt the running task only if it was cancelled.

        The signal of ``_cancel`` can land after its task finished, when the main thread is
        idle or already runs the next task; then it must not interrupt anything.
        """
        task_id = self.main_task
        if task_id is not None and task_id in self.cancelled:
            raise KeyboardInterrupt

    # ---- main thread -------------------------------------------------------------------
    def run_forever(self) -> None:
        while True:
            item = self.main_queue.get()
            if item is _STOP:
                return
            self._execute(*item)
            if self.actor_loop is not None:
                # An async actor was just created: its event loop owns the main thread now.
                self.actor_loop.run_forever()
                return

    def _execute(self, conn: Connection, msg: dict, fut: asyncio.Future) -> None:
        task_id = msg["t"]
        ctx = self.worker.context
        ctx.task_id = task_id
        ctx.task_name = msg["n"]
        ctx.placement = msg.get("pg")
        on_main = threading.current_thread() is threading.main_thread()
        if on_main:
            self.main_task = task_id
        log_start = logs.position()
        reply, exit_after = self._run_guarded(conn, msg, task_id, ctx, on_main)
        _mark_log_range(reply, log_start)
        self.calls += 1
        if msg["k"] == NORMAL_TASK and msg.get("mc") and self.calls >= msg["mc"]:
            reply["x"] = 1
            exit_after = True
        self._send_reply(fut, reply, msg["o"])
        if exit_after:
            self._exit_soon(intended=True)

    def _run_guarded(self, conn: Connection, msg: dict, task_id: bytes, ctx: Any, on_main: bool) -> tuple[dict, bool]:
        """Run the task and package its reply. A function of its own so that the arguments
        and result are released before the reply leaves: the owner may free (and this node
        recycle) their shared memory as soon as it has the reply."""
        exit_after = False
        try:
            if self.exiting and msg["k"] == ACTOR_TASK:
                raise _AlreadyExited
            if task_id in self.cancelled:
                raise KeyboardInterrupt
            self._apply_resources(msg)
            pins = self.worker.note_borrowed(msg.get("c"))
            args, kwargs = self._load_args(msg)
            kind = msg["k"]
            if kind == NORMAL_TASK:
                fn = self._function(msg)
                result = fn(*args, **kwargs)
            elif kind == ACTOR_CREATION:
                result = self._create_actor(msg, args, kwargs)
            else:
                result = self._call_method(msg, args, kwargs)
            reply = self._package(conn, msg, result)
            del pins
        except KeyboardInterrupt:
            reply = self._package_error(msg, exceptions.TaskCancelledError(task_id.hex()), cancelled=True)
        except _AlreadyExited:
            reply = self._package_exited(msg)
        except ActorExit:
            self.exiting = True
            reply = self._package_exited(msg, by_this_call=True)
        except BaseException as e:  # noqa: BLE001 - user code may raise anything
            reply = self._package_error(msg, e)
        finally:
            if on_main:  # first: from here on a late cancel signal is ignored (on_sigint)
                self.main_task = None
            ctx.task_id = None
            ctx.placement = None
            self.cancelled.discard(task_id)
        return reply, exit_after

    async def _run_async(self, conn: Connection, msg: dict, fut: asyncio.Future, group: str) -> None:
        task_id = msg["t"]
        sem = self.group_semaphores.get(group) or self.group_semaphores[""]
        async with sem:
            log_start = logs.position()
            # Context variables: this coroutine (and the method's task) see their own values.
            self.worker.context.task_id = task_id
            self.worker.context.task_name = msg["n"]
            try:
                if self.exiting:
                    raise _AlreadyExited
                if task_id in self.cancelled:
                    raise asyncio.CancelledError
                args, kwargs = self._load_args(msg)
                method = self._method(msg["m"])
                if inspect.iscoroutinefunction(method):
                    task = asyncio.ensure_future(method(*args, **kwargs))
                    self.async_tasks[task_id] = task
                    try:
                        result = await task
                    finally:
                        self.async_tasks.pop(task_id, None)
                elif inspect.isasyncgenfunction(method):
                    result = [x async for x in method(*args, **kwargs)]
                else:
                    result = method(*args, **kwargs)
                reply = await asyncio.get_running_loop().run_in_executor(
                    None, self._package, conn, msg, result
                ) if _may_block(msg, result) else self._package(conn, msg, result)
            except asyncio.CancelledError:
                reply = self._package_error(msg, exceptions.TaskCancelledError(task_id.hex()), cancelled=True)
            except _AlreadyExited:
                reply = self._package_exited(msg)
            except (ActorExit, exceptions.AsyncioActorExit):
                self.exiting = True
                reply = self._package_exited(msg, by_this_call=True)
            except BaseException as e:  # noqa: BLE001
                reply = self._package_error(msg, e)
            finally:
                self.cancelled.discard(task_id)
        _mark_log_range(reply, log_start)
        self._send_reply(fut, reply, msg["o"])

    def _send_reply(self, fut: asyncio.Future, reply: dict, caller: str) -> None:
        def set_reply():
            if not fut.done():
                if caller == self.worker.driver_address:
                    # The task's output rides with its result, so the driver prints it
                    # before ray.get returns (and before a quick shutdown can lose it).
                    self._attach_pending_logs(reply)
                fut.set_result(reply)

        self.worker.loop.call_soon_threadsafe(set_reply)

    @staticmethod
    def _attach_pending_logs(reply: dict) -> None:
        if logs.has_sender():
            batch = logs.take_pending()
            if batch:
                reply["logs"] = batch

    # ---- pieces ------------------------------------------------------------------------
    def _apply_resources(self, msg: dict) -> None:
        res = msg.get("res")
        if res is not None:
            self.worker.assigned_resources = res
        gpu = msg.get("gpu")
        if gpu is not None:
            self.worker.gpu_ids = gpu
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu)

    def _function(self, msg: dict) -> Any:
        fid = msg["f"]
        fn = self.functions.get(fid)
        if fn is None:
            blob = msg.get("fb") or self.function_blobs.get(fid)
            if blob is None:
                raise exceptions.RaySystemError(f"function {msg['n']} was never sent to this worker")
            fn = self.functions[fid] = serializer.loads_function(blob)
        return fn

    def _load_args(self, msg: dict) -> tuple[list, dict]:
        blob = msg.get("a")
        if not blob:
            return [], {}
        deps = [self._load_dep(d, msg["o"]) for d in msg.get("d") or ()]
        args, kwargs = serializer.deserialize(0, blob)
        if deps:
            args = [deps[a.index] if type(a) is ArgDep else a for a in args]
            kwargs = {k: deps[v.index] if type(v) is ArgDep else v for k, v in kwargs.items()}
        return args, kwargs

    def _load_dep(self, wire: list, owner: str) -> Any:
        if wire[0] is None:
            path = self.worker.dep_path(wire[1], wire[2] if len(wire) > 2 else owner)
            meta, data, bufs = shm_store.read(path)
        else:
            meta, data, bufs = wire
        return serializer.deserialize(meta, data, bufs)

    def _create_actor(self, msg: dict, args: list, kwargs: dict) -> None:
        cls = self._function(msg)
        opts = msg.get("opts") or {}
        self.actor_class_name = cls.__name__
        self.worker.actor_name = cls.__name__
        self.worker.actor_id = msg.get("act")
        self.worker.actor_restarted = bool(msg.get("restarts"))
        self.worker.actor_placement = msg.get("pg")
        from solray._private.worker.logs import set_log_prefix

        set_log_prefix(f"{cls.__name__} pid={os.getpid()}")
        is_async = any(
            inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
            for _, m in inspect.getmembers(cls, predicate=inspect.isfunction)
        )
        max_concurrency = opts.get("max_concurrency") or (1000 if is_async else 1)
        groups = opts.get("concurrency_groups") or {}
        self.method_groups = opts.get("method_groups") or {}
        instance = cls.__new__(cls)
        if is_async:
            self.actor_loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.actor_loop)
            self.group_semaphores = {"": asyncio.Semaphore(max_concurrency)}
            for g, n in groups.items():
                self.group_semaphores[g] = asyncio.Semaphore(n)
        else:
            if max_concurrency > 1:
                self.group_pools[""] = ThreadPoolExecutor(max_concurrency, thread_name_prefix="actor")
            for g, n in groups.items():
                self.group_pools[g] = ThreadPoolExecutor(n, thread_name_prefix=f"actor-{g}")
        init = instance.__init__
        if inspect.iscoroutinefunction(init):
            self.actor_loop.run_until_complete(init(*args, **kwargs))
        else:
            init(*args, **kwargs)
        self.actor = instance
        return None

    def _method(self, name: str) -> Any:
        if name == "__ray_terminate__":
            raise ActorExit
        if name == "__ray_ready__":
            return lambda: True
        if name == "__ray_call__":
            return lambda fn, *a, **k: fn(self.actor, *a, **k)
        return getattr(self.actor, name)

    def _call_method(self, msg: dict, args: list, kwargs: dict) -> Any:
        method = self._method(msg["m"])
        result = method(*args, **kwargs)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return result

    def _package(self, conn: Connection, msg: dict, result: Any) -> dict:
        num_returns = msg["r"]
        task_id = msg["t"]
        owner = msg["o"]
        if num_returns in ("streaming", "dynamic"):
            count = 0
            for item in _iterate(result):
                value, contained = self._wire_value(task_id, count + 2, item, owner)
                self.worker.loop.call_soon_threadsafe(
                    conn.notify, "stream_item", [task_id, count, value, contained]
                )
                count += 1
            if num_returns == "streaming":
                return {"r": [], "n": count}
            from solray._private import ids

            refs = [ObjectRef(ids.object_id(task_id, i + 2), owner, _worker=self.worker) for i in range(count)]
            values = [DynamicObjectRefGenerator(refs)]
        elif num_returns == 1:
            values = [result]
        elif num_returns == 0:
            values = []
        else:
            if not isinstance(result, (tuple, list)) or len(result) != num_returns:
                raise ValueError(
                    f"Task {msg['n']} has num_returns={num_returns} but returned "
                    f"{type(result).__name__}{'' if not hasattr(result, '__len__') else f' of length {len(result)}'}; "
                    f"it must return a tuple or list of {num_returns} values."
                )
            values = list(result)
        wires, contained = [], []
        for i, v in enumerate(values):
            w, c = self._wire_value(task_id, i + 1, v, owner)
            wires.append(w)
            contained.append(c)
        reply = {"r": wires}
        if any(contained):
            reply["c"] = contained
        return reply

    def _wire_value(self, task_id: bytes, index: int, value: Any, owner: str) -> tuple[list, list | None]:
        from solray._private import ids

        try:
            so = serializer.serialize(value)
        except Exception as e:
            from solray._private.worker.core_worker import _serialization_error

            raise _serialization_error(value, "return", "the task's return value", e) from e
        contained = so.contained_wire() or None
        if contained:
            self.worker.run_sync(self.worker.register_borrowers(contained, owner))
        if so.total_bytes <= INLINE_OBJECT_MAX_BYTES:
            return so.to_inline(), contained
        return [None, self.worker.write_shm(ids.object_id(task_id, index), so, owner)], contained

    def _package_error(self, msg: dict, exc: BaseException, cancelled: bool = False) -> dict:
        if isinstance(exc, (exceptions.TaskCancelledError, exceptions.RayActorError)) and cancelled:
            err: BaseException = exc
        else:
            err = self._task_error(msg, exc)
        inline = serializer.serialize_error(err).to_inline()
        n = msg["r"]
        count = n if isinstance(n, int) and n > 0 else 1
        reply = {"r": [inline] * count, "e": 1}
        if cancelled:
            reply["cancelled"] = 1
        return reply

    def _package_exited(self, msg: dict, by_this_call: bool = False) -> dict:
        """The reply to the call that exited the actor, or to one that came after it.

        As in Ray, the caller of the exiting call observes the actor's death rather than
        a return value, and calls that had not started fail the same way.
        """
        aid = (self.worker.actor_id or b"").hex()
        if by_this_call:
            text = f"The actor {aid} exited intentionally: {msg['n']} called exit_actor()."
        else:
            text = f"The actor {aid} exited intentionally (exit_actor() or __ray_terminate__) before it could run {msg['n']}."
        err = exceptions.ActorDiedError(error_msg=text, actor_id=aid)
        return self._package_error(msg, err, cancelled=True)

    def _task_error(self, msg: dict, exc: BaseException) -> exceptions.RayTaskError:
        name = msg["n"]
        # The traceback starts at the user's code: frames of this module are noise.
        frames = exc.__traceback__
        while frames is not None and frames.tb_frame.f_code.co_filename == __file__:
            frames = frames.tb_next
        tb = "".join(traceback.format_exception(type(exc), exc, frames or exc.__traceback__))
        cause = exc
        if isinstance(exc, exceptions.RayTaskError):
            # A nested task failed: keep the original exception as the cause.
            cause = exc.cause if exc.cause is not None else exc
        actor_repr = None
        if self.actor is not None:
            actor_repr = f"{self.actor_class_name}(actor_id={(self.worker.actor_id or b'').hex()})"
        # RayTaskError's message adds the "ray::name() (pid=..., ip=...)" header itself.
        return exceptions.RayTaskError(name, tb, cause, name, os.getpid(), self.ip, actor_repr)

    # ---- blocking and exit -------------------------------------------------------------
    def notify_blocked(self) -> bool:
        with self._blocked_lock:
            self._blocked_depth += 1
            first = self._blocked_depth == 1
        if first and self.actor is None:
            self.worker.daemon_notify("worker_blocked", self.worker.worker_id)
        return True

    def notify_unblocked(self) -> None:
        with self._blocked_lock:
            self._blocked_depth -= 1
            last = self._blocked_depth == 0
        if last and self.actor is None:
            self.worker.daemon_notify("worker_unblocked", self.worker.worker_id)

    def _actor_call_done(self, _fut: asyncio.Future) -> None:
        self._active_calls -= 1
        if self.exiting and self._active_calls == 0 and not self._exit_started:
            # Every call that was running has replied; the queued ones failed fast.
            self._exit_started = True
            self.worker.loop.create_task(self._exit_intended())

    async def _exit_intended(self) -> None:
        """Tell the control service the exit is intended (so no restart), run atexit, exit."""
        control = self.worker.control
        if self.worker.actor_id is not None and control is not None:
            try:
                await asyncio.wait_for(control.request("actor_exiting", self.worker.actor_id), 10)
            except (ConnectionError, RpcError, asyncio.TimeoutError):
                pass
        await asyncio.get_running_loop().run_in_executor(None, _run_atexit_handlers)
        await self._send_remaining_logs()
        os._exit(0)

    async def _send_remaining_logs(self) -> None:
        """Deliver output not yet sent to the driver (a print right before exit_actor())."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        batch = logs.take_pending()
        if not batch or not logs.has_sender() or not self.worker.driver_address:
            return
        try:
            conn = await asyncio.wait_for(self.worker.peer(self.worker.driver_address), 5)
            conn.notify("logs", batch)
            await asyncio.sleep(0)  # the connection writes on the next loop iteration
        except (ConnectionError, asyncio.TimeoutError):
            pass

    def _exit_soon(self, intended: bool) -> None:
        def go():
            if intended and self.worker.actor_id is not None and self.worker.control is not None:
                self.worker.control.notify("actor_exiting", self.worker.actor_id)
            self.worker.loop.call_later(0.05, self._exit, 0)

        self.worker.loop.call_soon_threadsafe(go)

    def _exit(self, code: int) -> None:
        from solray._private.worker.logs import flush_logs

        try:
            flush_logs()
        finally:
            os._exit(code)


def _run_atexit_handlers() -> None:
    """Run the actor's atexit handlers, as Ray does for an intended exit.

    The worker inherits ``solray._private.api``'s driver-side ``shutdown`` hook from the
    zygote; running it here would stop this process's IO loop, so it is dropped first.
    """
    import atexit

    from solray._private import api

    atexit.unregister(api.shutdown)
    try:
        atexit._run_exitfuncs()
    except Exception:  # noqa: BLE001 - a failing handler must not keep the actor alive
        logger.exception("an atexit handler of the actor failed")


def _iterate(result: Any):
    if inspect.isasyncgen(result):
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    yield loop.run_until_complete(result.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.close()
    else:
        yield from result


def _may_block(msg: dict, result: Any) -> bool:
    """Packaging a large or streamed result does blocking IO: keep it off the event loop."""
    if msg["r"] in ("streaming", "dynamic"):
        return True
    size = getattr(result, "nbytes", None)
    if size is None and isinstance(result, (bytes, bytearray)):
        size = len(result)
    return size is not None and size > INLINE_OBJECT_MAX_BYTES


def _mark_log_range(reply: dict, start: int | None) -> None:
    """Where the task's output lies in this worker's log file (``solray logs --task-id``
    prints just that part; tasks running at the same time in one actor may overlap)."""
    end = logs.position() if start is not None else None
    if end is not None:
        reply["lo"] = [start, end]
