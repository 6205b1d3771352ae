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


def parse_selector(selector: dict, what: str = "label_selector") -> list:
    """Ray's string form ``{key: "v" | "!v" | "in(a,b)" | "!in(a,b)"}`` as the wire form."""
    if not isinstance(selector, dict):
        raise TypeError(f"{what} must be a dict of label key -> selector string, got {type(selector).__name__}")
    wire = []
    for key, text in selector.items():
        if not isinstance(key, str) or not key or not isinstance(text, str) or not text.strip():
            raise ValueError(f"{what}: {key!r}: {text!r} is not a label key and a selector string")
        text = text.strip()
        negate = text.startswith("!")
        body = text[1:].strip() if negate else text
        if body.startswith("in(") and body.endswith(")"):
            values = [v.strip() for v in body[3:-1].split(",") if v.strip()]
            if not values:
                raise ValueError(f"{what}: {key!r}: {text!r} names no values")
        elif "(" in body or ")" in body or "," in body:
            raise ValueError(f"{what}: {key!r}: {text!r} is not 'value', '!value', 'in(a,b)' or '!in(a,b)'")
        else:
            values = [body]
        wire.append([key, "not_in" if negate else "in", values])
    return wire
