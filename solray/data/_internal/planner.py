"""Logical plan -> physical operators, fusing consecutive map-like transforms.

Fusion rules (a fused operator runs one task per input bundle through the whole chain):
- task -> task: fused when both ask for the same resources;
- task -> actor pool: the task chain (a read, projections...) moves into the actors;
- actor pool -> cheap task transform with default resources: appended to the actor chain;
- a limit after a map adds a per-task row cap to the chain (the global limit still applies).
"""

from __future__ import annotations

import inspect

from solray.data._internal import logical as L
from solray.data._internal import shuffle as S
from solray.data._internal.operators import (
    ActorPoolMapOp,
    AllToAllOp,
    InputOp,
    LimitOp,
    MapOp,
    PhysicalOp,
    UnionOp,
    ZipOp,
)
from solray.data._internal.transforms import LimitStage
from solray.data.compute import ActorPoolStrategy, TaskPoolStrategy

_RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory", "resources", "accelerator_type")


def _resources(args: dict) -> tuple:
    norm = dict(args)
    if norm.get("num_cpus") is None:
        norm["num_cpus"] = 1
    return tuple((k, repr(norm.get(k))) for k in _RESOURCE_KEYS) + tuple(
        sorted((k, repr(v)) for k, v in norm.items() if k not in _RESOURCE_KEYS)
    )


def _is_default(args: dict) -> bool:
    return _resources(args) == _resources({})


def resolve_compute(op: L.AbstractMap):
    """The compute strategy a map op runs with (actor pool for callable classes)."""
    compute = op.compute
    fn = getattr(op, "fn", None)
    if isinstance(compute, ActorPoolStrategy):
        return compute
    if fn is not None and inspect.isclass(fn):
        return ActorPoolStrategy(min_size=1, max_size=None)
    if isinstance(compute, TaskPoolStrategy):
        return compute
    return TaskPoolStrategy()


def autodetect_parallelism(datasource, parallelism: int, ctx, cpus: float) -> int:
    if parallelism and parallelism > 0:
        return int(parallelism)
    mem = datasource.estimate_inmemory_data_size()
    min_safe, max_reasonable = 1, 2**31
    if mem:
        min_safe = max(1, int(mem // (ctx.target_max_block_size or 2**27)))
        max_reasonable = max(1, int(mem // max(1, ctx.target_min_block_size)))
    return max(min(ctx.read_op_min_num_blocks, max_reasonable), min_safe, int(cpus * 2))


class Planner:
    def __init__(self, ctx, total_cpus: float):
        self.ctx = ctx
        self.total_cpus = total_cpus

    def plan(self, root: L.LogicalOp) -> list[PhysicalOp]:
        out = self._plan(root)
        ops: list[PhysicalOp] = []
        seen: set[int] = set()

        def visit(op: PhysicalOp) -> None:
            if id(op) in seen:
                return
            seen.add(id(op))
            for i, child in enumerate(op.inputs):
                child.downstream = (op, i)
                visit(child)
            ops.append(op)

        visit(out)
        return ops

    # --- per logical operator -----------------------------------------------------------------
    def _plan(self, op: L.LogicalOp) -> PhysicalOp:
        if isinstance(op, L.Read):
            n = autodetect_parallelism(op.datasource, op.parallelism, self.ctx, self.total_cpus)
            read_tasks = op.datasource.get_read_tasks(n)
            source = InputOp("Input", read_tasks)
            mop = MapOp(op.name, source, [], op.ray_remote_args, concurrency_cap=op.concurrency)
            mop.fusable = True
            return mop
        if isinstance(op, L.InputData):
            return InputOp(op.name, op.bundles)
        if isinstance(op, L.AbstractMap):
            return self._plan_map(op)
        if isinstance(op, L.Limit):
            child = self._plan(op.input)
            if isinstance(child, MapOp):
                child.stages.append(LimitStage(op.limit))
                child.fusable = False
            return LimitOp(op.name, child, op.limit)
        if isinstance(op, L.RandomShuffle):
            return AllToAllOp(op.name, self._plan(op.input),
                              S.shuffle_bulk(op.seed, op.num_blocks, op.ray_remote_args))
        if isinstance(op, L.RandomizeBlockOrder):
            return AllToAllOp(op.name, self._plan(op.input), S.randomize_order_bulk(op.seed))
        if isinstance(op, L.Repartition):
            child = self._plan(op.input)
            if op.shuffle:
                return AllToAllOp(op.name, child, S.shuffle_bulk(None, op.num_blocks))
            return AllToAllOp(op.name, child, S.repartition_bulk(op.num_blocks, op.target_num_rows_per_block))
        if isinstance(op, L.Sort):
            return AllToAllOp(op.name, self._plan(op.input), S.sort_bulk(op.keys, op.descending, op.boundaries))
        if isinstance(op, L.Aggregate):
            return AllToAllOp(op.name, self._plan(op.input),
                              S.aggregate_bulk(op.keys, op.aggs, op.num_partitions))
        if isinstance(op, L.GroupPartition):
            return AllToAllOp(op.name, self._plan(op.input), S.group_partition_bulk(op.keys, op.num_partitions))
        if isinstance(op, L.Union):
            return UnionOp(op.name, [self._plan(i) for i in op.inputs])
        if isinstance(op, L.Zip):
            return ZipOp(op.name, [self._plan(i) for i in op.inputs], S.zip_bulk())
        raise NotImplementedError(f"no physical plan for {type(op).__name__}")

    def _plan_map(self, op: L.AbstractMap) -> PhysicalOp:
        child = self._plan(op.input)
        compute = resolve_compute(op)
        stage = op.stage()
        is_actor = isinstance(compute, ActorPoolStrategy)
        cap = compute.size if isinstance(compute, TaskPoolStrategy) else None
        # A write that must gather rows across blocks runs as its own operator so it can bundle
        # its inputs (a fused read task only sees its own blocks).
        gathers = isinstance(op, L.Write) and op.min_rows_per_bundle
        if isinstance(child, MapOp) and getattr(child, "fusable", False) and op.ray_remote_args_fn is None \
                and not gathers:
            child_actor = isinstance(child, ActorPoolMapOp)
            if not child_actor and not is_actor and _resources(child.remote_args) == _resources(op.ray_remote_args) \
                    and (cap is None or child.concurrency_cap in (None, cap)):
                return self._fuse_into(child, op, stage, cap)
            if not child_actor and is_actor and _is_default(child.remote_args) and child.concurrency_cap is None:
                new = self._actor_op(child.name + "->" + op.name, child.inputs[0], child.stages + [stage], op, compute)
                new.min_rows_per_bundle = _max_opt(child.min_rows_per_bundle, op.min_rows_per_bundle)
                return new
            if child_actor and not is_actor and _is_default(op.ray_remote_args) and cap is None \
                    and not isinstance(op, L.Write):
                return self._fuse_into(child, op, stage, None)
        if is_actor:
            return self._actor_op(op.name, child, [stage], op, compute)
        mop = MapOp(op.name, child, [stage], op.ray_remote_args, min_rows_per_bundle=op.min_rows_per_bundle,
                    concurrency_cap=cap)
        mop.fusable = True
        return mop

    def _fuse_into(self, child: MapOp, op: L.AbstractMap, stage, cap) -> MapOp:
        child.stages.append(stage)
        child.name = f"{child.name}->{op.name}"
        child.stats.name = child.name
        child.min_rows_per_bundle = _max_opt(child.min_rows_per_bundle, op.min_rows_per_bundle)
        if cap is not None:
            child.concurrency_cap = cap
        return child

    def _actor_op(self, name, child, stages, op: L.AbstractMap, compute: ActorPoolStrategy) -> ActorPoolMapOp:
        max_in_flight = compute.max_tasks_in_flight_per_actor or self.ctx.max_tasks_in_flight_per_actor
        aop = ActorPoolMapOp(
            name, child, stages, op.ray_remote_args,
            min_size=compute.min_size, max_size=compute.max_size,
            max_tasks_in_flight=max_in_flight, min_rows_per_bundle=op.min_rows_per_bundle,
        )
        aop.fusable = True
        return aop


def _max_opt(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
