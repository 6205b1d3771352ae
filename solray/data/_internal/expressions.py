"""String filter expressions -> ``pyarrow.compute.Expression`` (vectorised, pushable to Parquet).

Grammar: Python expression syntax over column names and literals: comparisons (chained too),
``and``/``or``/``not`` (or ``&``/``|``/``~``), ``+ - * /``, ``col in [..]``, ``col is None``,
``col is not None``. Column names that are not identifiers can be written ``col("my col")``.
"""

from __future__ import annotations

import ast
import operator

import pyarrow.compute as pc

_CMP = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.BitAnd: operator.and_, ast.BitOr: operator.or_}


def parse_expression(expr) -> pc.Expression:
    if isinstance(expr, pc.Expression):
        return expr
    if not isinstance(expr, str):
        raise TypeError(f"filter expr must be a string or a pyarrow.compute.Expression, got {type(expr).__name__}")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"invalid filter expression {expr!r}: {e.msg}") from None
    try:
        return _convert(tree.body)
    except ValueError as e:
        raise ValueError(f"invalid filter expression {expr!r}: {e}") from None


def _literal(node):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand)
    raise ValueError(f"expected a literal, got {ast.dump(node)}")


def _convert(node):
    if isinstance(node, ast.BoolOp):
        values = [_convert(v) for v in node.values]
        out = values[0]
        for v in values[1:]:
            out = (out & v) if isinstance(node.op, ast.And) else (out | v)
        return out
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return ~_convert(node.operand)
        if isinstance(node.op, ast.USub):
            inner = node.operand
            if isinstance(inner, ast.Constant):
                return pc.scalar(-inner.value)
            return pc.negate(_convert(inner))
        raise ValueError("unsupported unary operator")
    if isinstance(node, ast.Compare):
        left = node.left
        out = None
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                term = _convert(left).isin(_literal(right))
                if isinstance(op, ast.NotIn):
                    term = ~term
            elif isinstance(op, (ast.Is, ast.IsNot)):
                if not (isinstance(right, ast.Constant) and right.value is None):
                    raise ValueError("'is' only compares with None")
                term = _convert(left).is_null()
                if isinstance(op, ast.IsNot):
                    term = ~term
            elif type(op) in _CMP:
                term = _CMP[type(op)](_convert(left), _convert(right))
            else:
                raise ValueError(f"unsupported comparison {type(op).__name__}")
            out = term if out is None else (out & term)
            left = right
        return out
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        return _BIN[type(node.op)](_convert(node.left), _convert(node.right))
    if isinstance(node, ast.Name):
        if node.id in ("True", "False", "None"):
            return pc.scalar({"True": True, "False": False, "None": None}[node.id])
        return pc.field(node.id)
    if isinstance(node, ast.Constant):
        return pc.scalar(node.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "col" \
            and len(node.args) == 1 and isinstance(node.args[0], ast.Constant):
        return pc.field(node.args[0].value)
    raise ValueError(f"unsupported syntax: {ast.unparse(node) if hasattr(ast, 'unparse') else node}")
