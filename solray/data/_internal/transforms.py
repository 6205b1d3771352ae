"""Block transforms that run inside tasks and actors.

A map operator is a chain of *stages* (read, map_batches, map, filter, flat_map, project,
limit, write...). Fusion is just concatenating chains: a fused task streams each block
through every stage before the next block is read, so a chain of N transforms costs one task
per input bundle, not N.

Each stage is ``apply(blocks: Iterator[Table]) -> Iterator[Table]``. Stages that call user
code catch its exceptions and add a note naming the operator, keeping the exception's type
(callers rely on ``except ValueError``).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from solray.data._internal import block as B


def _annotate(exc: BaseException, op_name: str) -> BaseException:
    note = f"(raised by the user function of Data operator {op_name})"
    if hasattr(exc, "add_note") and note not in getattr(exc, "__notes__", []):
        exc.add_note(note)
    return exc


def _fn_name(fn: Any) -> str:
    if inspect.isclass(fn):
        return fn.__name__
    return getattr(fn, "__name__", None) or type(fn).__name__


class Stage:
    """One transform in a fused chain."""

    name: str = "Stage"

    def init(self) -> None:
        """Prepare per-process state (construct a callable class once per actor/task)."""

    def apply(self, blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        raise NotImplementedError

    # Whether the stage keeps every row, one output row per input row.
    row_preserving: bool = False


class _UDFStage(Stage):
    def __init__(self, name, fn, fn_args=None, fn_kwargs=None, fn_constructor_args=None, fn_constructor_kwargs=None):
        self.name = name
        self.fn = fn
        self.fn_args = tuple(fn_args or ())
        self.fn_kwargs = dict(fn_kwargs or {})
        self.ctor_args = tuple(fn_constructor_args or ())
        self.ctor_kwargs = dict(fn_constructor_kwargs or {})
        self.is_class = inspect.isclass(fn)
        self._callable: Callable | None = None

    def init(self) -> None:
        if self._callable is not None:
            return
        if self.is_class:
            try:
                self._callable = self.fn(*self.ctor_args, **self.ctor_kwargs)
            except Exception as e:
                raise _annotate(e, self.name) from None
        else:
            self._callable = self.fn

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_callable"] = None
        return state

    def _call(self, arg):
        if self._callable is None:
            self.init()
        try:
            return self._callable(arg, *self.fn_args, **self.fn_kwargs)
        except Exception as e:
            raise _annotate(e, self.name) from None


def rebatch(blocks: Iterable[pa.Table], batch_size: int | None) -> Iterator[pa.Table]:
    """Re-cut a stream of blocks into tables of exactly ``batch_size`` rows (last may be short)."""
    if batch_size is None:
        for b in blocks:
            if b.num_rows:
                yield b
        return
    pending: list[pa.Table] = []
    have = 0
    for b in blocks:
        offset = 0
        while offset < b.num_rows:
            take = min(batch_size - have, b.num_rows - offset)
            pending.append(b.slice(offset, take))
            have += take
            offset += take
            if have == batch_size:
                yield B.concat(pending)
                pending, have = [], 0
    if have:
        yield B.concat(pending)


class MapBatchesStage(_UDFStage):
    def __init__(self, name, fn, batch_size=None, batch_format="default", zero_copy_batch=True, **kw):
        super().__init__(name, fn, **kw)
        self.batch_size = batch_size
        self.batch_format = batch_format
        self.zero_copy_batch = zero_copy_batch

    def _to_block(self, out) -> pa.Table:
        try:
            return B.batch_to_block(out)
        except TypeError:
            raise TypeError(
                f"{self.name}: the function returned {type(out).__name__}; map_batches "
                "functions must return a dict of column name to array, a pandas.DataFrame or a "
                "pyarrow.Table (or yield them)"
            ) from None
        except ValueError as e:
            raise ValueError(f"{self.name}: the function returned an invalid batch: {e}") from None

    def apply(self, blocks):
        for table in rebatch(blocks, self.batch_size):
            batch = B.block_to_batch(table, self.batch_format)
            if not self.zero_copy_batch and isinstance(batch, dict):
                batch = {k: v.copy() for k, v in batch.items()}
            out = self._call(batch)
            if inspect.isgenerator(out) or (
                isinstance(out, Iterator) and not isinstance(out, (dict, pa.Table))
            ):
                try:
                    for item in out:
                        yield self._to_block(item)
                except Exception as e:
                    raise _annotate(e, self.name) from None
            else:
                yield self._to_block(out)


class MapRowsStage(_UDFStage):
    row_preserving = True

    def apply(self, blocks):
        for table in blocks:
            out_rows = []
            for row in B.iter_rows(table):
                out = self._call(row)
                if not isinstance(out, dict):
                    raise TypeError(
                        f"{self.name}: the function must return a dict (one row), got "
                        f"{type(out).__name__}: {out!r:.200}"
                    )
                out_rows.append(out)
            if out_rows:
                yield B.rows_to_block(out_rows)


class FlatMapStage(_UDFStage):
    def apply(self, blocks):
        for table in blocks:
            out_rows = []
            for row in B.iter_rows(table):
                out = self._call(row)
                if isinstance(out, dict):
                    raise TypeError(
                        f"{self.name}: flat_map functions must return a list (or iterator) of "
                        "dicts, got a dict"
                    )
                try:
                    items = list(out)
                except TypeError:
                    raise TypeError(
                        f"{self.name}: flat_map functions must return a list of dicts, got "
                        f"{type(out).__name__}"
                    ) from None
                out_rows.extend(items)
            if out_rows:
                yield B.rows_to_block(out_rows)


class FilterStage(_UDFStage):
    def __init__(self, name, fn=None, expr=None, **kw):
        super().__init__(name, fn, **kw)
        self.expr = expr  # a pyarrow.compute.Expression

    def init(self) -> None:
        if self.fn is not None:
            super().init()

    def apply(self, blocks):
        for table in blocks:
            if self.expr is not None:
                try:
                    out = table.filter(self.expr)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                    raise ValueError(f"{self.name}: cannot evaluate filter expression: {e}") from None
            else:
                mask = []
                for row in B.iter_rows(table):
                    keep = self._call(row)
                    if not isinstance(keep, (bool, int)) and type(keep).__name__ != "bool_":
                        raise TypeError(
                            f"{self.name}: filter functions must return a bool, got "
                            f"{type(keep).__name__}"
                        )
                    mask.append(bool(keep))
                out = table.filter(pa.array(mask, type=pa.bool_())) if mask else table
            if out.num_rows:
                yield out


class ProjectStage(Stage):
    """select_columns / drop_columns / rename_columns."""

    row_preserving = True

    def __init__(self, name, select=None, drop=None, rename=None):
        self.name = name
        self.select = list(select) if select is not None else None
        self.drop = list(drop) if drop is not None else None
        self.rename = (list(rename) if isinstance(rename, list) else dict(rename)) if rename is not None else None

    def apply(self, blocks):
        for table in blocks:
            names = table.column_names
            if self.select is not None:
                missing = [c for c in self.select if c not in names]
                if missing:
                    raise ValueError(
                        f"{self.name}: column(s) {missing} not found; the dataset has columns {names}"
                    )
                table = table.select(self.select)
            if self.drop is not None:
                missing = [c for c in self.drop if c not in names]
                if missing:
                    raise ValueError(
                        f"{self.name}: column(s) {missing} not found; the dataset has columns {names}"
                    )
                table = table.drop_columns(self.drop)
            if isinstance(self.rename, list):
                if len(self.rename) != table.num_columns:
                    raise ValueError(
                        f"{self.name}: got {len(self.rename)} new names for {table.num_columns} columns "
                        f"{table.column_names}"
                    )
                table = table.rename_columns(self.rename)
            elif self.rename is not None:
                missing = [c for c in self.rename if c not in table.column_names]
                if missing:
                    raise ValueError(
                        f"{self.name}: column(s) {missing} not found; the dataset has columns "
                        f"{table.column_names}"
                    )
                table = table.rename_columns([self.rename.get(c, c) for c in table.column_names])
            yield table


class LimitStage(Stage):
    """Stop after ``n`` rows: a task never needs to produce more than the global limit."""

    def __init__(self, n: int):
        self.name = f"limit={n}"
        self.n = n

    def apply(self, blocks):
        remaining = self.n
        for table in blocks:
            if remaining <= 0:
                return
            if table.num_rows > remaining:
                table = table.slice(0, remaining)
            remaining -= table.num_rows
            yield table


class GroupSplitStage(_UDFStage):
    """map_groups: each input block holds whole groups, sorted by key; call fn per group."""

    def __init__(self, name, fn, keys, batch_format="default", **kw):
        super().__init__(name, fn, **kw)
        self.keys = list(keys)
        self.batch_format = batch_format

    def apply(self, blocks):
        from solray.data._internal.aggregation import group_boundaries

        for table in blocks:
            if table.num_rows == 0:
                continue
            for start, end in group_boundaries(table, self.keys):
                group = table.slice(start, end - start)
                out = self._call(B.block_to_batch(group, self.batch_format))
                items = out if inspect.isgenerator(out) else [out]
                for item in items:
                    try:
                        yield B.batch_to_block(item)
                    except TypeError:
                        raise TypeError(
                            f"{self.name}: map_groups functions must return a dict of arrays, a "
                            f"pandas.DataFrame or a pyarrow.Table, got {type(item).__name__}"
                        ) from None


class WriteStage(Stage):
    """Write the task's blocks through a datasink; outputs one row holding its return value."""

    def __init__(self, name, datasink):
        self.name = name
        self.datasink = datasink

    def apply(self, blocks):
        from solray.data._internal.task_context import TaskContext

        counts = [0, 0]

        def counted():
            for b in blocks:
                counts[0] += b.num_rows
                counts[1] += B.table_nbytes(b)
                yield b

        result = self.datasink.write(counted(), TaskContext.current())
        yield B.dict_to_block(
            {
                "write_result": B._object_array([result]),
                "num_rows": [counts[0]],
                "size_bytes": [counts[1]],
            }
        )


# ---------------------------------------------------------------------------------------
# Running a chain


def _input_blocks(inputs: tuple, input_files: list[str]) -> Iterator[pa.Table]:
    from solray.data.datasource import ReadTask

    for item in inputs:
        if isinstance(item, ReadTask):
            if item.metadata is not None and item.metadata.input_files:
                input_files.extend(item.metadata.input_files)
            for blk in item():
                yield B.batch_to_block(blk) if not isinstance(blk, pa.Table) else blk
        else:
            yield from B.as_blocks(item)


def run_chain(stages: list[Stage], inputs: tuple, target_max_block_size: int | None):
    """Run ``inputs`` through ``stages``; return ``(blocks, metadata list)`` for the object store."""
    start, cpu_start = time.perf_counter(), time.process_time()
    input_files: list[str] = []
    stream: Iterator[pa.Table] = _input_blocks(inputs, input_files)
    for stage in stages:
        stream = stage.apply(stream)
    builder = B.BlockBuilder(target_max_block_size)
    for table in stream:
        if not isinstance(table, pa.Table):
            table = B.batch_to_block(table)
        builder.add(table)
    blocks = builder.finish()
    stats = B.ExecStats(
        wall_s=time.perf_counter() - start,
        cpu_s=time.process_time() - cpu_start,
        node_id=_node_id(),
    )
    metas = [B.metadata_for(b, input_files) for b in blocks]
    value: Any = blocks[0] if len(blocks) == 1 else blocks
    return value, TaskResult(metas, stats)


_NODE_ID: list = []


def _node_id() -> str | None:
    if not _NODE_ID:
        import solray

        if not solray.is_initialized():  # running in-process (tests): don't start a cluster
            return None
        try:
            _NODE_ID.append(solray.get_runtime_context().get_node_id())
        except Exception:
            _NODE_ID.append(None)
    return _NODE_ID[0]


class TaskResult:
    """The small second return of every Data task: block metadata plus the task's stats."""

    __slots__ = ("metas", "stats")

    def __init__(self, metas: list, stats: B.ExecStats | None = None):
        self.metas = metas
        self.stats = stats

    def __reduce__(self):
        return TaskResult, (self.metas, self.stats)
