"""Node labels: does a node's ``{key: value}`` labels match a selector?

A selector is the wire form of ``NodeLabelSchedulingStrategy``'s ``hard`` or ``soft`` dict:
``[[key, operator, values], ...]``, every entry must hold. Operators: ``in`` (the label
has one of the values), ``not_in`` (it has none of them, or the node lacks the label),
``exists`` and ``does_not_exist``. Every node carries ``ray.io/node-id``.
"""

from __future__ import annotations

NODE_ID_LABEL = "ray.io/node-id"


def matches(labels: dict, selector: list | None) -> bool:
    for key, op, values in selector or ():
        value = labels.get(key)
        if op == "in":
            ok = value is not None and value in values
        elif op == "not_in":
            ok = value is None or value not in values
        elif op == "exists":
            ok = value is not None
        elif op == "does_not_exist":
            ok = value is None
        else:
            raise ValueError(f"unknown label operator {op!r}")
        if not ok:
            return False
    return True
