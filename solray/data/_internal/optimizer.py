"""Logical rewrites applied before planning: push projections, filters and limits into reads.

Rules never mutate the user's plan (datasets share operators); they rebuild the path they
change. Fusion of map chains happens in the planner, where compute strategies are known.
"""

from __future__ import annotations

from solray.data._internal import logical as L


def optimize(op: L.LogicalOp) -> L.LogicalOp:
    op = _rewrite(op, _push_projection_and_filter)
    op = _rewrite(op, _push_limit)
    return op


def _rewrite(op: L.LogicalOp, rule) -> L.LogicalOp:
    new_inputs = [_rewrite(child, rule) for child in op.inputs]
    if any(a is not b for a, b in zip(new_inputs, op.inputs, strict=True)):
        op = op.with_inputs(new_inputs)
    return rule(op)


def _replace_read(read: L.Read, datasource) -> L.Read:
    new = read.with_inputs([])
    new.datasource = datasource
    return new


def _push_projection_and_filter(op: L.LogicalOp) -> L.LogicalOp:
    if isinstance(op, L.Project) and isinstance(op.input, L.Read) and not op.ray_remote_args \
            and op.compute is None:
        read = op.input
        ds = read.datasource
        if op.rename is None and ds.supports_projection_pushdown():
            columns = None
            if op.select is not None:
                columns = list(op.select)
            elif op.drop is not None:
                schema = ds.schema()
                if schema is not None and all(c in schema.names for c in op.drop):
                    columns = [n for n in schema.names if n not in op.drop]
            if columns is not None:
                schema = ds.schema()
                if schema is None or all(c in schema.names for c in columns):
                    return _replace_read(read, ds.apply_projection(columns))
    if isinstance(op, L.Filter) and op.fn is None and op.expr is not None \
            and isinstance(op.input, L.Read) and op.input.datasource.supports_filter_pushdown():
        read = op.input
        return _replace_read(read, read.datasource.apply_filter(op.expr))
    return op


def _push_limit(op: L.LogicalOp) -> L.LogicalOp:
    if not isinstance(op, L.Limit):
        return op
    child = op.input
    if isinstance(child, L.Limit):
        return _push_limit(L.Limit(child.input, min(op.limit, child.limit)))
    # A limit commutes with one-row-in-one-row-out transforms: run them on fewer rows.
    if isinstance(child, (L.MapRows, L.Project)) and child.compute is None:
        inner = _push_limit(L.Limit(child.input, op.limit))
        return child.with_inputs([inner])
    if isinstance(child, L.Read) and child.datasource.supports_limit_pushdown():
        return L.Limit(_replace_read(child, child.datasource.apply_limit(op.limit)), op.limit)
    return op
