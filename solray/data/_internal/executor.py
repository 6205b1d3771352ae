"""The streaming executor: runs physical operators concurrently with bounded memory.

One loop, in the consuming thread:
  1. hand finished tasks to their operators (non-blocking poll);
  2. move operator outputs downstream; stop everything upstream of a satisfied limit;
  3. launch work, downstream operators first, while the execution's memory budget allows;
  4. yield the next output bundle to the consumer, or block until some task finishes.

Backpressure: every launch is charged the operator's expected output bytes; queued bundles
(operator outputs not yet consumed downstream) are charged their real size. Nothing launches
past ``budget_bytes`` except to guarantee progress (an operator with nothing in flight and
nothing queued below it), so a dataset larger than the object store streams through with a
bounded working set. Because the consumer drives the loop, a slow consumer throttles the
whole pipeline.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator

from solray.data._internal.operators import LimitOp, PhysicalOp
from solray.data._internal.progress import ProgressManager
from solray.data._internal.ref_bundle import RefBundle
from solray.data._internal.runtime import Runtime
from solray.data._internal.stats import ExecutionStats

logger = logging.getLogger("solray.data")

_ACTOR_STALL_S = 0.5


class StreamingExecutor:
    def __init__(self, ops: list[PhysicalOp], ctx, runtime: Runtime | None = None, *,
                 max_output_bundles: int = 2, dataset_name: str = "dataset"):
        self.ops = ops  # topologically sorted; the last one produces the output
        self.ctx = ctx
        self.runtime = runtime or Runtime()
        self.output_op = ops[-1]
        self._output: deque[RefBundle] = deque()
        self.max_output_bundles = max_output_bundles
        limits = ctx.execution_options.resource_limits
        self.cpu_limit = float(limits.cpu) if limits.cpu is not None else self.runtime.total_cpus
        self.gpu_limit = float(limits.gpu) if limits.gpu is not None else self.runtime.total_gpus
        if limits.object_store_memory is not None:
            self.budget_bytes = float(limits.object_store_memory)
        else:
            self.budget_bytes = ctx.object_store_memory_limit_fraction * self.runtime.object_store_memory
        self._owner: dict = {}
        self.stats = ExecutionStats([op.stats for op in ops if not _is_source(op)])
        self.progress = ProgressManager([op for op in ops if not _is_source(op)], ctx)
        self.dataset_name = dataset_name

    # --- resources ------------------------------------------------------------------------
    def task_slots(self, cpus: float, gpus: float = 0.0, extra: int = 1) -> int:
        n = math.floor(self.cpu_limit / cpus + 1e-9) if cpus > 0 else int(2 * self.cpu_limit) + 2
        if gpus > 0:
            n = min(n, math.floor(self.gpu_limit / gpus + 1e-9))
        return max(1, n) + extra

    def usage_bytes(self) -> float:
        total = sum(b.size_bytes for b in self._output if b.owns_blocks)
        for op in self.ops:
            total += op.outqueue_bytes() + op.queued_input_bytes() + op.inflight_bytes()
        return total

    def _check_resources(self) -> None:
        """Fail fast on a transform no node can ever run (it would wait forever)."""
        from solray.data._internal.operators import MapOp

        for op in self.ops:
            if not isinstance(op, MapOp):
                continue
            cpus, gpus = op.task_cpus(), op.task_gpus()
            if gpus > self.runtime.total_gpus:
                raise ValueError(
                    f"Data operator {op.name} asks for num_gpus={gpus} per task, but the cluster has "
                    f"{self.runtime.total_gpus:g} GPUs"
                )
            if cpus > self.runtime.total_cpus:
                raise ValueError(
                    f"Data operator {op.name} asks for num_cpus={cpus} per task, but the cluster has "
                    f"{self.runtime.total_cpus:g} CPUs"
                )

    # --- errors ----------------------------------------------------------------------------
    def annotate_error(self, exc: BaseException, op: PhysicalOp) -> None:
        note = f"(while executing Data operator {op.name} of {self.dataset_name})"
        if hasattr(exc, "add_note") and note not in getattr(exc, "__notes__", []):
            exc.add_note(note)

    # --- the loop --------------------------------------------------------------------------
    def run(self) -> Iterator[RefBundle]:
        logger.debug("Executing %s: %s", self.dataset_name, " -> ".join(op.name for op in self.ops))
        self._check_resources()
        try:
            for op in self.ops:
                op.start(self)
            while True:
                self._poll(block=False)
                self._route()
                self._schedule()
                self._route()
                self.stats.peak_bytes = max(self.stats.peak_bytes, self.usage_bytes())
                if self._output:
                    bundle = self._output.popleft()
                    self.stats.output_rows += bundle.num_rows
                    yield bundle
                    continue
                if self._all_done():
                    break
                if not self._poll(block=True):
                    if not self._force_launch():
                        raise RuntimeError(
                            "Data execution stalled: no work in flight and no operator can run. "
                            + "; ".join(f"{op.name}: done={op.is_completed()}" for op in self.ops)
                        )
        finally:
            for op in self.ops:
                try:
                    op.shutdown(self)
                except Exception:  # pragma: no cover - best effort cleanup
                    logger.debug("shutdown of %s failed", op.name, exc_info=True)
                op.stats.finish()
            self._output.clear()
            self.stats.finish()
            self.progress.close()

    def _all_done(self) -> bool:
        return not self._output and all(op.is_completed() and not op.outqueue for op in self.ops)

    def _pending(self) -> list:
        self._owner = {}
        for op in self.ops:
            if op.stopped:
                continue
            for ref in op.pending_refs():
                self._owner[ref] = op
        return list(self._owner.keys())

    def _poll(self, block: bool) -> bool:
        """Dispatch finished refs to their operators; with ``block``, wait for at least one."""
        refs = self._pending()
        if not refs:
            return False
        ready, _ = self.runtime.wait(refs, num_returns=len(refs), timeout=0)
        if not ready and block:
            # Tasks always finish; an actor may never start if other operators hold the CPUs it
            # needs. When only actor starts are pending, wake up now and then to let upstream
            # work run past the memory budget (its results free those CPUs when it completes).
            only_actors = all(getattr(op, "waiting_only_on_actors", lambda: False)() or
                              not op.pending_refs() for op in self.ops)
            ready, _ = self.runtime.wait(refs, num_returns=1, timeout=_ACTOR_STALL_S if only_actors else None)
            if not ready:
                self._force_launch()
                return True
        for ref in ready:
            op = self._owner.get(ref)
            if op is not None and not op.stopped:
                op.on_ready(ref, self)
        return True

    def _route(self) -> None:
        for op in self.ops:
            while op.outqueue:
                item = op.outqueue.popleft()
                if op.downstream is None:
                    self._output.append(item)
                    self.progress.update(op, item)
                    continue
                target, index = op.downstream
                if not _is_source(op):
                    self.progress.update(op, item)
                target.add_input(item, index)
                if isinstance(target, LimitOp) and target.satisfied():
                    self._stop_upstream(target)
            if op.is_completed() and not op._done_notified and not op.outqueue:
                op._done_notified = True
                op.stats.finish()
                self.progress.finish(op)
                if op.downstream is not None:
                    target, index = op.downstream
                    target.input_done(index)

    def _stop_upstream(self, op: PhysicalOp) -> None:
        for up in op.inputs:
            if not up.stopped:
                up.stop(self)
            self._stop_upstream(up)

    def _within_budget(self, op: PhysicalOp) -> bool:
        if self.usage_bytes() + op.est_task_output_bytes(self) <= self.budget_bytes:
            return True
        # Progress guarantee: an operator with nothing in flight and nothing waiting below it
        # may always run one task.
        if op.num_active_tasks() > 0 or op.outqueue:
            return False
        if op.downstream is None:
            return not self._output
        target, _ = op.downstream
        return target.queued_input_bytes() == 0 and not target.outqueue

    def _schedule(self) -> None:
        output_full = len(self._output) >= self.max_output_bundles
        for op in reversed(self.ops):
            if op is self.output_op and output_full:
                continue
            while op.can_launch(self) and self._within_budget(op):
                op.launch(self)
                self._route()

    def _force_launch(self) -> bool:
        for op in reversed(self.ops):
            if op.can_launch(self):
                op.launch(self)
                return True
        # Actor pools scale from can_launch(); give them one more look.
        return bool(self._pending())


def _is_source(op: PhysicalOp) -> bool:
    return not op.inputs
