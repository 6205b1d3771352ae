"""Physical operators: the units the streaming executor schedules.

Each operator is a small state machine. The executor feeds it inputs (``add_input``), tells it
when an input is exhausted (``input_done``), asks whether it may start work (``can_launch``),
starts one unit (``launch``), and hands it back finished refs (``on_ready``). Operators keep
their output in order in ``outqueue``; the executor moves it downstream.

IO goes through the executor's ``Runtime`` (``ex.runtime``); the decisions stay here.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from solray.data._internal.ref_bundle import RefBundle
from solray.data._internal.stats import OpStats

if TYPE_CHECKING:  # pragma: no cover
    from solray.data._internal.executor import StreamingExecutor


class _Task:
    __slots__ = ("seq", "block_ref", "meta_ref", "est_bytes", "actor", "submitted")

    def __init__(self, seq, block_ref, meta_ref, est_bytes, actor=None):
        self.seq = seq
        self.block_ref = block_ref
        self.meta_ref = meta_ref
        self.est_bytes = est_bytes
        self.actor = actor
        self.submitted = time.perf_counter()


class PhysicalOp:
    def __init__(self, name: str, inputs: list[PhysicalOp]):
        self.name = name
        self.inputs = inputs
        self.downstream: tuple[PhysicalOp, int] | None = None
        self.outqueue: deque[RefBundle] = deque()
        self._inputs_done = [False] * len(inputs)
        self.stopped = False
        self.stats = OpStats(name)
        self._tasks: dict[Any, _Task] = {}  # meta_ref -> task
        self._done_notified = False

    # --- lifecycle ------------------------------------------------------------------------
    def start(self, ex: StreamingExecutor) -> None:
        self.stats.start()

    def shutdown(self, ex: StreamingExecutor) -> None:
        self._cancel_tasks(ex)

    def stop(self, ex: StreamingExecutor | None = None) -> None:
        """Drop remaining work: a downstream limit has all the rows it needs."""
        self.stopped = True
        self._cancel_tasks(ex)
        self.outqueue.clear()

    def _cancel_tasks(self, ex: StreamingExecutor | None) -> None:
        tasks, self._tasks = self._tasks, {}
        refs = [ref for ref, t in tasks.items() if t.actor is None]
        if ex is not None and refs and hasattr(ex.runtime, "cancel"):
            ex.runtime.cancel(refs)

    # --- inputs ---------------------------------------------------------------------------
    def add_input(self, item: Any, index: int) -> None:
        raise NotImplementedError

    def input_done(self, index: int) -> None:
        self._inputs_done[index] = True

    def all_inputs_done(self) -> bool:
        return all(self._inputs_done)

    # --- work -----------------------------------------------------------------------------
    def can_launch(self, ex: StreamingExecutor) -> bool:
        return False

    def launch(self, ex: StreamingExecutor) -> None:
        raise NotImplementedError

    def est_task_output_bytes(self, ex: StreamingExecutor) -> float:
        return 0.0

    def pending_refs(self) -> list:
        return list(self._tasks.keys())

    def on_ready(self, ref: Any, ex: StreamingExecutor) -> None:
        raise NotImplementedError

    def num_active_tasks(self) -> int:
        return len(self._tasks)

    def has_queued_input(self) -> bool:
        return False

    def is_completed(self) -> bool:
        return self.stopped or (self.all_inputs_done() and not self._tasks and not self.has_queued_input())

    # --- memory accounting -----------------------------------------------------------------
    def queued_input_bytes(self) -> int:
        return 0

    def outqueue_bytes(self) -> int:
        return sum(b.size_bytes for b in self.outqueue if b.owns_blocks)

    def inflight_bytes(self) -> float:
        return sum(t.est_bytes for t in self._tasks.values())

    # --- helpers ---------------------------------------------------------------------------
    def _emit(self, bundle: RefBundle) -> None:
        if self.stopped:
            return
        if bundle.num_rows == 0 and bundle.metas:
            self.stats.empty_schema = self.stats.empty_schema or bundle.schema
            return
        if not bundle.metas:
            return
        self.outqueue.append(bundle)
        self.stats.add_output(bundle)

    def _finish_task(self, ref, ex: StreamingExecutor):
        """Fetch a finished task's metadata; raise its error naming this operator."""
        task = self._tasks.pop(ref)
        try:
            result = ex.runtime.get(ref)
        except Exception as e:
            ex.annotate_error(e, self)
            raise
        self.stats.add_task(result.stats, time.perf_counter() - task.submitted,
                            sum(m.size_bytes or 0 for m in result.metas))
        return task, RefBundle(task.block_ref, result.metas)


class InputOp(PhysicalOp):
    """A source of ready items: bundles already in the object store, or read tasks."""

    def __init__(self, name: str, items: list[Any]):
        super().__init__(name, [])
        self._items = list(items)

    def start(self, ex):
        super().start(ex)
        for item in self._items:
            if isinstance(item, RefBundle):
                if item.metas and item.num_rows == 0:
                    self.stats.empty_schema = self.stats.empty_schema or item.schema
                    continue
                self.outqueue.append(item)
            else:
                self.outqueue.append(item)
        self._items = []

    def is_completed(self) -> bool:
        return True

    def outqueue_bytes(self) -> int:
        return 0


class MapOp(PhysicalOp):
    """A fused chain of block transforms run as tasks, in order, with bounded concurrency."""

    fusable = False

    def __init__(self, name, input_op, stages, remote_args, *, min_rows_per_bundle=None,
                 concurrency_cap=None, est_read_bytes=None):
        super().__init__(name, [input_op])
        self.stages = list(stages)
        self.remote_args = dict(remote_args)
        self.min_rows_per_bundle = min_rows_per_bundle
        self.concurrency_cap = concurrency_cap
        self.est_read_bytes = est_read_bytes
        self._queue: deque[Any] = deque()
        self._queued_bytes = 0
        self._next_seq = 0
        self._next_out = 0
        self._results: dict[int, RefBundle | None] = {}
        self._stages_ref = None

    def start(self, ex):
        super().start(ex)
        self._stages_ref = ex.runtime.put(self.stages)

    def shutdown(self, ex):
        super().shutdown(ex)
        self._stages_ref = None

    def stop(self, ex=None):
        super().stop(ex)
        self._queue.clear()
        self._queued_bytes = 0
        self._results.clear()

    def add_input(self, item, index):
        if self.stopped:
            return
        self._queue.append(item)
        if isinstance(item, RefBundle) and item.owns_blocks:
            self._queued_bytes += item.size_bytes

    def has_queued_input(self) -> bool:
        return bool(self._queue)

    def queued_input_bytes(self) -> int:
        return self._queued_bytes

    def task_cpus(self) -> float:
        v = self.remote_args.get("num_cpus")
        return 1.0 if v is None else float(v)

    def task_gpus(self) -> float:
        return float(self.remote_args.get("num_gpus") or 0.0)

    def max_concurrency(self, ex) -> int:
        cap = ex.task_slots(self.task_cpus(), self.task_gpus())
        if self.concurrency_cap:
            cap = min(cap, self.concurrency_cap)
        return max(1, cap)

    def _group_ready(self) -> bool:
        if not self._queue:
            return False
        if not self.min_rows_per_bundle or not isinstance(self._queue[0], RefBundle):
            return True
        rows = 0
        for item in self._queue:
            if not isinstance(item, RefBundle):
                return True
            rows += item.num_rows
            if rows >= self.min_rows_per_bundle:
                return True
        return self.all_inputs_done()

    def _take_group(self) -> list:
        first = self._queue.popleft()
        group = [first]
        if self.min_rows_per_bundle and isinstance(first, RefBundle):
            rows = first.num_rows
            while rows < self.min_rows_per_bundle and self._queue and isinstance(self._queue[0], RefBundle):
                item = self._queue.popleft()
                group.append(item)
                rows += item.num_rows
        for item in group:
            if isinstance(item, RefBundle) and item.owns_blocks:
                self._queued_bytes -= item.size_bytes
        return group

    def can_launch(self, ex) -> bool:
        return (not self.stopped and self._group_ready()
                and len(self._tasks) < self.max_concurrency(ex))

    def est_task_output_bytes(self, ex) -> float:
        avg = self.stats.avg_output_bytes_per_task()
        if avg is not None:
            return avg
        # Before the first task finishes, guess from the input; a user function may grow
        # its input arbitrarily, so assume at least a quarter of the budget until measured.
        guess = 0.0
        if self._queue:
            item = self._queue[0]
            if isinstance(item, RefBundle):
                guess = float(item.size_bytes)
            else:
                guess = float(getattr(getattr(item, "metadata", None), "size_bytes", None) or 0)
        if guess == 0.0 or self._has_udf():
            guess = max(guess, ex.budget_bytes / 4)
        return guess

    def inflight_bytes(self) -> float:
        # Finished tasks whose output waits for an earlier task (outputs leave in order).
        held = sum(b.size_bytes for b in self._results.values() if b is not None)
        return super().inflight_bytes() + held

    def _has_udf(self) -> bool:
        from solray.data._internal.transforms import _UDFStage

        return any(isinstance(s, _UDFStage) for s in self.stages)

    def _inputs_for(self, group: list) -> list:
        return [item.ref if isinstance(item, RefBundle) else item for item in group]

    def _submit(self, ex, seq: int, group: list):
        block_ref, meta_ref = ex.runtime.submit_map(
            self._stages_ref, seq, self.name, ex.ctx.target_max_block_size,
            self._inputs_for(group), self.remote_args,
        )
        return block_ref, meta_ref, None

    def launch(self, ex):
        est = self.est_task_output_bytes(ex)
        group = self._take_group()
        seq = self._next_seq
        self._next_seq += 1
        block_ref, meta_ref, actor = self._submit(ex, seq, group)
        self._tasks[meta_ref] = _Task(seq, block_ref, meta_ref, est, actor)
        self._results[seq] = None

    def on_ready(self, ref, ex):
        if ref not in self._tasks:
            return
        task, bundle = self._finish_task(ref, ex)
        self._task_finished(task)
        self._results[task.seq] = bundle
        while self._next_out in self._results and self._results[self._next_out] is not None:
            self._emit(self._results.pop(self._next_out))
            self._next_out += 1

    def _task_finished(self, task: _Task) -> None:
        pass


class ActorPoolMapOp(MapOp):
    """A map chain run on an autoscaling pool of actors (callable classes, ``concurrency=``)."""

    def __init__(self, name, input_op, stages, remote_args, *, min_size: int, max_size: int | None,
                 max_tasks_in_flight: int | None = None, **kw):
        super().__init__(name, input_op, stages, remote_args, **kw)
        self.min_size = min_size
        self.max_size = max_size
        self.max_in_flight = max_tasks_in_flight or 2
        self._actors: dict[Any, int] = {}  # ready actor -> tasks in flight
        self._pending_actors: dict[Any, Any] = {}  # ready ref -> actor
        self._killed = False

    def _max_actors(self, ex) -> int:
        if self.max_size is not None:
            return self.max_size
        return max(self.min_size, ex.task_slots(self.task_cpus(), self.task_gpus(), extra=0))

    def _add_actor(self, ex) -> None:
        actor = ex.runtime.create_map_actor(self._stages_ref, self.name, self.remote_args)
        self._pending_actors[ex.runtime.actor_ready(actor)] = actor

    def start(self, ex):
        super().start(ex)
        self._ex = ex
        for _ in range(self.min_size):
            self._add_actor(ex)

    def num_actors(self) -> int:
        return len(self._actors) + len(self._pending_actors)

    def pending_refs(self) -> list:
        return list(self._tasks.keys()) + list(self._pending_actors.keys())

    def _free_actor(self):
        best = None
        for actor, n in self._actors.items():
            if n < self.max_in_flight and (best is None or n < self._actors[best]):
                best = actor
        return best

    def can_launch(self, ex) -> bool:
        if self.stopped or not self._group_ready():
            return False
        if self._free_actor() is not None:
            return True
        # Scale up when every actor is busy and more input waits.
        if (not self._pending_actors and self.num_actors() < self._max_actors(ex)
                and all(n >= 1 for n in self._actors.values())):
            self._add_actor(ex)
        return False

    def _submit(self, ex, seq, group):
        actor = self._free_actor()
        self._actors[actor] += 1
        block_ref, meta_ref = ex.runtime.submit_to_actor(
            actor, seq, ex.ctx.target_max_block_size, self._inputs_for(group)
        )
        return block_ref, meta_ref, actor

    def on_ready(self, ref, ex):
        if ref in self._pending_actors:
            actor = self._pending_actors.pop(ref)
            try:
                ex.runtime.get(ref)
            except Exception as e:
                ex.annotate_error(e, self)
                raise
            self._actors[actor] = 0
            return
        super().on_ready(ref, ex)
        self._maybe_release(ex)

    def _task_finished(self, task):
        if task.actor in self._actors:
            self._actors[task.actor] -= 1

    def _maybe_release(self, ex) -> None:
        if self.is_completed() and not self._killed:
            self._kill_all(ex)

    def _kill_all(self, ex) -> None:
        self._killed = True
        for actor in list(self._actors) + list(self._pending_actors.values()):
            ex.runtime.kill(actor)
        self._actors.clear()
        self._pending_actors.clear()

    def input_done(self, index):
        super().input_done(index)
        self._maybe_release(self._ex)

    def shutdown(self, ex):
        if not self._killed:
            self._kill_all(ex)
        super().shutdown(ex)

    def waiting_only_on_actors(self) -> bool:
        return not self._tasks and bool(self._pending_actors)


class LimitOp(PhysicalOp):
    """Pass through the first ``limit`` rows, slicing the bundle that crosses the limit."""

    def __init__(self, name, input_op, limit: int):
        super().__init__(name, [input_op])
        self.remaining = limit

    def add_input(self, bundle: RefBundle, index):
        if self.remaining <= 0 or self.stopped:
            return
        if bundle.num_rows <= self.remaining:
            self.remaining -= bundle.num_rows
            self._emit(bundle)
            return
        from solray.data._internal.shuffle import slice_bundle_task

        n = self.remaining
        self.remaining = 0
        block_ref, meta_ref = slice_bundle_task(self._ex, bundle, 0, n)
        self._tasks[meta_ref] = _Task(0, block_ref, meta_ref, 0)

    def start(self, ex):
        super().start(ex)
        self._ex = ex

    def satisfied(self) -> bool:
        return self.remaining <= 0

    def on_ready(self, ref, ex):
        _, bundle = self._finish_task(ref, ex)
        self._emit(bundle)

    def is_completed(self) -> bool:
        return (self.all_inputs_done() or self.remaining <= 0) and not self._tasks


class AllToAllOp(PhysicalOp):
    """Collects every input bundle, then runs a bulk function (shuffle, sort, aggregate...).

    ``bulk_fn(bundles, ex)`` returns the output in order: ready ``RefBundle``s or pending
    ``(block_ref, meta_ref)`` task pairs, which this operator then waits on.
    """

    def __init__(self, name, input_op, bulk_fn):
        super().__init__(name, [input_op])
        self.bulk_fn = bulk_fn
        self._bundles: list[RefBundle] = []
        self._ran = False
        self._results: dict[int, RefBundle | None] = {}
        self._next_out = 0

    def add_input(self, bundle, index):
        self._bundles.append(bundle)

    def queued_input_bytes(self) -> int:
        return sum(b.size_bytes for b in self._bundles if b.owns_blocks)

    def has_queued_input(self) -> bool:
        return not self._ran

    def can_launch(self, ex) -> bool:
        return not self._ran and self.all_inputs_done() and not self.stopped

    def launch(self, ex):
        self._ran = True
        bundles, self._bundles = self._bundles, []
        outputs = self.bulk_fn(bundles, ex, self)
        for seq, out in enumerate(outputs):
            if isinstance(out, RefBundle):
                self._results[seq] = out
            else:
                block_ref, meta_ref = out
                self._tasks[meta_ref] = _Task(seq, block_ref, meta_ref, 0)
                self._results[seq] = None
        self._flush()

    def _flush(self):
        while self._next_out in self._results and self._results[self._next_out] is not None:
            self._emit(self._results.pop(self._next_out))
            self._next_out += 1

    def on_ready(self, ref, ex):
        task, bundle = self._finish_task(ref, ex)
        self._results[task.seq] = bundle
        self._flush()

    def is_completed(self) -> bool:
        return self.stopped or (self._ran and not self._tasks and not self._results)


class UnionOp(PhysicalOp):
    """Outputs every bundle of input 0, then of input 1, ... (streaming each as it comes)."""

    def __init__(self, name, inputs):
        super().__init__(name, inputs)
        self._buffers: list[list[RefBundle]] = [[] for _ in inputs]
        self._current = 0

    def add_input(self, bundle, index):
        if index == self._current:
            self._emit(bundle)
        else:
            self._buffers[index].append(bundle)

    def input_done(self, index):
        super().input_done(index)
        while self._current < len(self.inputs) and self._inputs_done[self._current]:
            self._current += 1
            if self._current < len(self.inputs):
                for b in self._buffers[self._current]:
                    self._emit(b)
                self._buffers[self._current] = []

    def queued_input_bytes(self) -> int:
        return sum(b.size_bytes for buf in self._buffers for b in buf if b.owns_blocks)

    def has_queued_input(self) -> bool:
        return any(self._buffers)


class ZipOp(AllToAllOp):
    """Collects all inputs, then zips them column-wise, aligned by row."""

    def __init__(self, name, inputs, bulk_fn):
        PhysicalOp.__init__(self, name, inputs)
        self.bulk_fn = bulk_fn
        self._per_input: list[list[RefBundle]] = [[] for _ in inputs]
        self._ran = False
        self._results = {}
        self._next_out = 0

    def add_input(self, bundle, index):
        self._per_input[index].append(bundle)

    def queued_input_bytes(self) -> int:
        return sum(b.size_bytes for buf in self._per_input for b in buf if b.owns_blocks)

    def launch(self, ex):
        self._bundles = self._per_input
        self._per_input = [[] for _ in self.inputs]
        super().launch(ex)
