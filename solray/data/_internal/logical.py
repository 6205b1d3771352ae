"""The logical plan: what a dataset computes, as a tree of operators (no execution here).

Each ``Dataset`` holds the root of its tree; transforms wrap it in a new operator and return a
new ``Dataset``. The optimizer rewrites the tree (pushdowns), the planner turns it into physical
operators (fusing map chains), and the executor runs them.
"""

from __future__ import annotations

from typing import Any

from solray.data._internal import transforms as T
from solray.data._internal.ref_bundle import RefBundle


class LogicalOp:
    name: str = "LogicalOp"

    def __init__(self, inputs: list[LogicalOp]):
        self.inputs = inputs

    @property
    def input(self) -> LogicalOp:
        return self.inputs[0]

    def with_inputs(self, inputs: list[LogicalOp]) -> LogicalOp:
        import copy

        new = copy.copy(self)
        new.inputs = list(inputs)
        return new

    # Rows: ``"same"`` when the op keeps its input's row count, else None (unknown).
    preserves_row_count: bool = False

    def __repr__(self) -> str:
        return self.name


# --- sources ------------------------------------------------------------------------------


class Read(LogicalOp):
    def __init__(self, datasource, parallelism: int = -1, ray_remote_args: dict | None = None,
                 concurrency: int | None = None, name: str | None = None):
        super().__init__([])
        self.datasource = datasource
        self.parallelism = parallelism
        self.ray_remote_args = dict(ray_remote_args or {})
        self.concurrency = concurrency
        self.name = name or f"Read{datasource.get_name()}"


class InputData(LogicalOp):
    """Blocks that already sit in the object store (from_* APIs, materialized datasets)."""

    def __init__(self, bundles: list[RefBundle], name: str = "InputData"):
        super().__init__([])
        self.bundles = list(bundles)
        self.name = name


# --- one-to-one (map-like) ------------------------------------------------------------------


class AbstractMap(LogicalOp):
    """A transform applied block by block; consecutive ones fuse into one task."""

    def __init__(self, input_op: LogicalOp, name: str, compute=None, ray_remote_args: dict | None = None,
                 min_rows_per_bundle: int | None = None, ray_remote_args_fn=None):
        super().__init__([input_op])
        self.name = name
        self.compute = compute
        self.ray_remote_args = dict(ray_remote_args or {})
        self.min_rows_per_bundle = min_rows_per_bundle
        self.ray_remote_args_fn = ray_remote_args_fn

    def stage(self) -> T.Stage:
        raise NotImplementedError


class MapBatches(AbstractMap):
    def __init__(self, input_op, fn, *, batch_size=None, batch_format="default", zero_copy_batch=True,
                 fn_args=None, fn_kwargs=None, fn_constructor_args=None, fn_constructor_kwargs=None,
                 name=None, **kw):
        super().__init__(input_op, name or f"MapBatches({T._fn_name(fn)})",
                         min_rows_per_bundle=batch_size, **kw)
        self.fn = fn
        self.kwargs = dict(batch_size=batch_size, batch_format=batch_format, zero_copy_batch=zero_copy_batch,
                           fn_args=fn_args, fn_kwargs=fn_kwargs, fn_constructor_args=fn_constructor_args,
                           fn_constructor_kwargs=fn_constructor_kwargs)

    def stage(self):
        return T.MapBatchesStage(self.name, self.fn, **self.kwargs)


class _RowUDF(AbstractMap):
    stage_cls: type = T.MapRowsStage
    label = "Map"

    def __init__(self, input_op, fn, *, fn_args=None, fn_kwargs=None, fn_constructor_args=None,
                 fn_constructor_kwargs=None, **kw):
        super().__init__(input_op, f"{self.label}({T._fn_name(fn)})", **kw)
        self.fn = fn
        self.kwargs = dict(fn_args=fn_args, fn_kwargs=fn_kwargs, fn_constructor_args=fn_constructor_args,
                           fn_constructor_kwargs=fn_constructor_kwargs)

    def stage(self):
        return self.stage_cls(self.name, self.fn, **self.kwargs)


class MapRows(_RowUDF):
    stage_cls = T.MapRowsStage
    label = "Map"
    preserves_row_count = True


class FlatMap(_RowUDF):
    stage_cls = T.FlatMapStage
    label = "FlatMap"


class Filter(AbstractMap):
    def __init__(self, input_op, fn=None, expr=None, expr_text: str | None = None, *, fn_args=None,
                 fn_kwargs=None, fn_constructor_args=None, fn_constructor_kwargs=None, **kw):
        label = T._fn_name(fn) if fn is not None else f"expr={expr_text or expr}"
        super().__init__(input_op, f"Filter({label})", **kw)
        self.fn = fn
        self.expr = expr
        self.kwargs = dict(fn_args=fn_args, fn_kwargs=fn_kwargs, fn_constructor_args=fn_constructor_args,
                           fn_constructor_kwargs=fn_constructor_kwargs)

    def stage(self):
        return T.FilterStage(self.name, self.fn, expr=self.expr, **self.kwargs)


class Project(AbstractMap):
    preserves_row_count = True

    def __init__(self, input_op, *, select=None, drop=None, rename=None, name=None, **kw):
        if name is None:
            if select is not None:
                name = "Project"
            elif drop is not None:
                name = "DropColumns"
            else:
                name = "RenameColumns"
        super().__init__(input_op, name, **kw)
        self.select = select
        self.drop = drop
        self.rename = rename

    def stage(self):
        return T.ProjectStage(self.name, select=self.select, drop=self.drop, rename=self.rename)


class MapGroups(AbstractMap):
    def __init__(self, input_op, fn, keys, batch_format="default", *, fn_args=None, fn_kwargs=None,
                 fn_constructor_args=None, fn_constructor_kwargs=None, **kw):
        super().__init__(input_op, f"MapGroups({T._fn_name(fn)})", **kw)
        self.fn = fn
        self.keys = keys
        self.batch_format = batch_format
        self.kwargs = dict(fn_args=fn_args, fn_kwargs=fn_kwargs, fn_constructor_args=fn_constructor_args,
                           fn_constructor_kwargs=fn_constructor_kwargs)

    def stage(self):
        return T.GroupSplitStage(self.name, self.fn, self.keys, self.batch_format, **self.kwargs)


class Write(AbstractMap):
    def __init__(self, input_op, datasink, **kw):
        super().__init__(input_op, f"Write{datasink.get_name()}", **kw)
        self.datasink = datasink

    def stage(self):
        return T.WriteStage(self.name, self.datasink)


# --- global ---------------------------------------------------------------------------------


class Limit(LogicalOp):
    def __init__(self, input_op, limit: int):
        super().__init__([input_op])
        self.limit = limit
        self.name = f"limit={limit}"


class AllToAll(LogicalOp):
    """Operators that need every input block before producing output."""


class RandomShuffle(AllToAll):
    preserves_row_count = True

    def __init__(self, input_op, seed=None, num_blocks=None, ray_remote_args=None):
        super().__init__([input_op])
        self.seed = seed
        self.num_blocks = num_blocks
        self.ray_remote_args = dict(ray_remote_args or {})
        self.name = "RandomShuffle"


class RandomizeBlockOrder(AllToAll):
    preserves_row_count = True

    def __init__(self, input_op, seed=None):
        super().__init__([input_op])
        self.seed = seed
        self.name = "RandomizeBlockOrder"


class Repartition(AllToAll):
    preserves_row_count = True

    def __init__(self, input_op, num_blocks: int | None, shuffle: bool = False,
                 target_num_rows_per_block: int | None = None):
        super().__init__([input_op])
        self.num_blocks = num_blocks
        self.shuffle = shuffle
        self.target_num_rows_per_block = target_num_rows_per_block
        self.name = "Repartition"


class Sort(AllToAll):
    preserves_row_count = True

    def __init__(self, input_op, keys: list[str], descending: list[bool], boundaries=None):
        super().__init__([input_op])
        self.keys = keys
        self.descending = descending
        self.boundaries = boundaries
        self.name = "Sort"


class Aggregate(AllToAll):
    def __init__(self, input_op, keys: list[str] | None, aggs: list[Any], num_partitions=None):
        super().__init__([input_op])
        self.keys = keys
        self.aggs = aggs
        self.num_partitions = num_partitions
        self.name = "Aggregate"


class GroupPartition(AllToAll):
    """Range-partition by key so each output block holds whole groups, sorted (map_groups)."""

    preserves_row_count = True

    def __init__(self, input_op, keys: list[str], num_partitions=None):
        super().__init__([input_op])
        self.keys = keys
        self.num_partitions = num_partitions
        self.name = "Sort"


# --- n-ary ----------------------------------------------------------------------------------


class Union(LogicalOp):
    def __init__(self, inputs: list[LogicalOp]):
        super().__init__(inputs)
        self.name = "Union"


class Zip(LogicalOp):
    def __init__(self, inputs: list[LogicalOp]):
        super().__init__(inputs)
        self.name = "Zip"


# --- helpers ---------------------------------------------------------------------------------


def walk(op: LogicalOp):
    """Every operator under (and including) ``op``, children first."""
    for child in op.inputs:
        yield from walk(child)
    yield op


def exact_num_rows(op: LogicalOp) -> int | None:
    """Row count derivable from metadata alone, without running anything; else None."""
    if isinstance(op, InputData):
        return sum(b.num_rows for b in op.bundles)
    if isinstance(op, Read):
        return op.datasource.num_rows()
    if isinstance(op, Limit):
        n = exact_num_rows(op.input)
        return op.limit if n is None else min(n, op.limit)
    if isinstance(op, Union):
        counts = [exact_num_rows(i) for i in op.inputs]
        return None if any(c is None for c in counts) else sum(counts)
    if isinstance(op, Zip):
        return exact_num_rows(op.inputs[0])
    if op.preserves_row_count:
        return exact_num_rows(op.input)
    return None


def known_schema(op: LogicalOp):
    """The output schema if derivable without running anything; else None."""
    import pyarrow as pa

    if isinstance(op, InputData):
        for b in op.bundles:
            if b.schema is not None:
                return b.schema
        return None
    if isinstance(op, Read):
        return op.datasource.schema()
    if isinstance(op, (Limit, RandomShuffle, RandomizeBlockOrder, Repartition, Sort, GroupPartition)):
        return known_schema(op.input)
    if isinstance(op, Project):
        s = known_schema(op.input)
        if s is None:
            return None
        try:
            if op.select is not None:
                return pa.schema([s.field(c) for c in op.select])
            if op.drop is not None:
                return pa.schema([f for f in s if f.name not in op.drop])
            if isinstance(op.rename, list):
                if len(op.rename) != len(s):
                    return None
                return pa.schema([f.with_name(n) for f, n in zip(s, op.rename, strict=True)])
            return pa.schema([f.with_name(op.rename.get(f.name, f.name)) for f in s])
        except KeyError:
            return None
    return None


def plan_repr(op: LogicalOp, leaf_repr) -> str:
    """Ray-style plan tree: ``Op2\\n+- Op1\\n   +- Dataset(...)``."""
    lines: list[str] = []

    def visit(node: LogicalOp, depth: int) -> None:
        prefix = "" if depth == 0 else "   " * (depth - 1) + "+- "
        if not node.inputs:
            lines.append(prefix + leaf_repr(node))
            return
        lines.append(prefix + node.name)
        for child in node.inputs:
            visit(child, depth + 1)

    visit(op, 0)
    return "\n".join(lines)
