"""The streaming executor's decisions, driven by an in-process fake runtime (no cluster).

The fake runs each task's code in this process but completes tasks only when the executor
waits, in an order the test chooses, so ordering, backpressure and limit handling are tested
deterministically.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pyarrow as pa
import pytest

from solray.data import DataContext
from solray.data._internal import logical as L
from solray.data._internal.datasource.range import RangeDatasource
from solray.data._internal.executor import StreamingExecutor
from solray.data._internal.optimizer import optimize
from solray.data._internal.planner import Planner
from solray.data._internal.tasks import MapWorker, _run
from solray.data.compute import ActorPoolStrategy


class FakeRef:
    _ids = itertools.count()

    def __init__(self, value=None, ready=True):
        self.id = next(self._ids)
        self.value = value
        self.ready = ready
        self.sibling = None

    def __hash__(self):
        return self.id

    def __eq__(self, other):
        return isinstance(other, FakeRef) and other.id == self.id


def _resolve(x):
    return x.value if isinstance(x, FakeRef) else x


class FakeRuntime:
    """Runs task code eagerly but reports completion only when the executor waits."""

    def __init__(self, cpus=2, object_store_memory=10**9, complete="fifo"):
        self.total_cpus = cpus
        self.total_gpus = 0
        self.object_store_memory = object_store_memory
        self.complete = complete
        self.pending: list[FakeRef] = []
        self.max_pending = 0
        self.submitted = 0
        self.actors_created = 0
        self.killed = 0

    def put(self, value):
        return FakeRef(value)

    def get(self, ref, timeout=None):
        assert ref.ready, "get() of an unfinished task"
        if isinstance(ref.value, Exception):
            raise ref.value
        return ref.value

    def _task(self, fn, args):
        self.submitted += 1
        try:
            blocks, meta = fn(*[_resolve(a) for a in args])
        except Exception as e:  # surfaces on get(meta_ref)
            blocks, meta = e, e
        block_ref, meta_ref = FakeRef(blocks, ready=False), FakeRef(meta, ready=False)
        meta_ref.sibling = block_ref
        self.pending.append(meta_ref)
        self.max_pending = max(self.max_pending, len(self.pending))
        return block_ref, meta_ref

    def submit_map(self, stages_ref, task_idx, op_name, target, inputs, remote_args):
        return self._task(lambda *ins: _run(stages_ref.value, task_idx, op_name, target, ins), inputs)

    def submit_fn(self, fn, args, num_returns=1, remote_args=None):
        self.submitted += 1
        out = fn(*[_resolve(a) for a in args])
        if num_returns == 1:
            return FakeRef(out)
        return [FakeRef(v) for v in out]

    def create_map_actor(self, stages_ref, op_name, remote_args):
        self.actors_created += 1
        return MapWorker(copy.deepcopy(stages_ref.value), op_name)  # each actor unpickles its own

    def actor_ready(self, actor):
        return FakeRef(True)

    def submit_to_actor(self, actor, task_idx, target, inputs):
        return self._task(lambda *ins: actor.run(task_idx, target, *ins), inputs)

    def kill(self, actor):
        self.killed += 1

    def wait(self, refs, num_returns=1, timeout=None):
        ready = [r for r in refs if r.ready]
        if not ready and timeout != 0:
            candidates = [r for r in self.pending if r in set(refs)]
            assert candidates, "executor waits on nothing that can finish"
            r = candidates[-1] if self.complete == "lifo" else candidates[0]
            self._finish(r)
            ready = [r]
        return ready[:num_returns], [r for r in refs if r not in ready[:num_returns]]

    def _finish(self, ref):
        ref.ready = True
        if ref.sibling is not None:
            ref.sibling.ready = True
        self.pending.remove(ref)


def run_plan(op, runtime, ctx=None):
    ctx = ctx or DataContext()
    ctx.enable_progress_bars = False
    ops = Planner(ctx, runtime.total_cpus).plan(optimize(op))
    ex = StreamingExecutor(ops, ctx, runtime)
    out = []
    for bundle in ex.run():
        value = bundle.ref.value
        tables = value if isinstance(value, list) else [value]
        out.extend(tables)
    return pa.concat_tables(out) if out else None, ex, ops


def _range(n, blocks):
    return L.Read(RangeDatasource(n), parallelism=blocks)


def _double(batch):
    return {"id": batch["id"] * 2}


def test_outputs_keep_input_order_when_tasks_finish_out_of_order():
    rt = FakeRuntime(complete="lifo")
    op = L.MapBatches(_range(100, 10), _double)
    table, _, _ = run_plan(op, rt)
    assert table.column("id").to_pylist() == [2 * i for i in range(100)]


def test_map_chain_fuses_into_one_operator_and_one_task_per_block():
    rt = FakeRuntime()
    op = L.MapRows(L.Filter(L.MapBatches(_range(40, 4), _double), fn=lambda r: r["id"] % 4 == 0),
                   lambda r: {"id": r["id"] + 1})
    table, ex, ops = run_plan(op, rt)
    assert [o.name for o in ops] == ["Input", "ReadRange->MapBatches(_double)->Filter(<lambda>)->Map(<lambda>)"]
    assert rt.submitted == 4
    assert table.column("id").to_pylist() == [i * 4 + 1 for i in range(20)]


def test_backpressure_bounds_in_flight_work():
    # 20 blocks of 80 KB each, a 200 KB budget: never more than a few tasks outstanding.
    def grow(batch):
        return {"x": np.zeros((len(batch["id"]), 1000), dtype=np.uint8)}

    rt = FakeRuntime(cpus=8)
    ctx = DataContext()
    ctx.execution_options.resource_limits.object_store_memory = 200_000
    table, ex, _ = run_plan(L.MapBatches(_range(1600, 20), grow), rt, ctx)
    assert table.num_rows == 1600
    # Before the first output is measured a task is charged a quarter of the budget.
    assert rt.max_pending <= 4
    assert ex.stats.peak_bytes <= 200_000 + 80_000


def test_cpu_limit_caps_concurrency():
    rt = FakeRuntime(cpus=16)
    ctx = DataContext()
    ctx.execution_options.resource_limits.cpu = 2
    run_plan(L.MapBatches(_range(100, 20), _double), rt, ctx)
    assert rt.max_pending <= 3  # 2 running + 1 queued


def test_limit_stops_upstream_early():
    rt = FakeRuntime(cpus=2)
    op = L.Limit(L.MapBatches(_range(1000, 100), _double), 5)
    table, _, _ = run_plan(op, rt)
    assert table.column("id").to_pylist() == [0, 2, 4, 6, 8]
    assert rt.submitted < 10


def test_limit_pushdown_through_row_maps_into_read():
    op = optimize(L.Limit(L.MapRows(_range(1000, 10), lambda r: r), 7))
    assert isinstance(op, L.MapRows)
    assert isinstance(op.input, L.Limit) and op.input.input.datasource.num_rows() == 7


def test_projection_pushdown_into_read():
    op = optimize(L.Project(_range(10, 2), select=["id"]))
    assert isinstance(op, L.Read)


def test_actor_pool_constructs_class_once_per_actor():
    class AddOne:
        inits = 0

        def __init__(self):
            AddOne.inits += 1

        def __call__(self, batch):
            return {"id": batch["id"] + 1}

    rt = FakeRuntime(cpus=2)
    op = L.MapBatches(_range(50, 10), AddOne, compute=ActorPoolStrategy(size=2))
    table, _, ops = run_plan(op, rt)
    assert table.column("id").to_pylist() == list(range(1, 51))
    assert rt.actors_created == 2 and AddOne.inits == 2
    assert rt.killed == 2  # actors released when the operator finished
    assert ops[-1].name == "ReadRange->MapBatches(AddOne)"


def test_task_error_names_the_operator():
    def boom(batch):
        raise KeyError("nope")

    rt = FakeRuntime()
    with pytest.raises(KeyError) as info:
        run_plan(L.MapBatches(_range(10, 2), boom), rt)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "MapBatches(boom)" in notes


def test_all_to_all_sort_and_union():
    rt = FakeRuntime()
    data = L.MapBatches(_range(30, 3), lambda b: {"id": 29 - b["id"]})
    table, _, _ = run_plan(L.Sort(data, ["id"], [False]), rt)
    assert table.column("id").to_pylist() == list(range(30))
    table, _, _ = run_plan(L.Union([_range(3, 1), _range(2, 1)]), rt)
    assert table.column("id").to_pylist() == [0, 1, 2, 0, 1]
