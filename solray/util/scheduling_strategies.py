"""Scheduling strategies for ``.options(scheduling_strategy=...)`` (Ray's names and fields).

Besides these objects, ``scheduling_strategy`` takes the strings ``"DEFAULT"`` (pack onto a
node until it is busy, then spread; prefer the node holding a task's large arguments)
and ``"SPREAD"`` (spread tasks or actors across the nodes that fit them).
"""

from __future__ import annotations

from typing import Any


class PlacementGroupSchedulingStrategy:
    """Run the task or actor in a placement group's bundle.

    ``placement_group_bundle_index=-1`` means any bundle of the group. With
    ``placement_group_capture_child_tasks=True`` the tasks and actors it submits run in
    the same group by default (``None`` inherits the parent's setting).
    """

    _solray_strategy = True
    _solray_kind = "placement_group"

    def __init__(
        self,
        placement_group: Any,
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks: bool | None = None,
    ):
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def to_wire(self) -> dict:
        pg = self.placement_group
        return {
            "type": "placement_group",
            "pg_id": pg.id.hex() if pg is not None else None,
            "index": self.placement_group_bundle_index,
            "capture": bool(self.placement_group_capture_child_tasks),
        }

    def __repr__(self) -> str:
        return (
            f"PlacementGroupSchedulingStrategy(placement_group={self.placement_group!r}, "
            f"placement_group_bundle_index={self.placement_group_bundle_index}, "
            f"placement_group_capture_child_tasks={self.placement_group_capture_child_tasks})"
        )


class NodeAffinitySchedulingStrategy:
    """Run the task or actor on the node ``node_id`` (a hex id, as ``get_node_id()`` gives).

    With ``soft=False`` it runs only there, and fails (``TaskUnschedulableError`` /
    ``ActorUnschedulableError``) if that node is dead or can never fit it; with
    ``soft=True`` it prefers that node and runs elsewhere when the node is dead or full.
    """

    _solray_strategy = True
    _solray_kind = "node_affinity"

    def __init__(self, node_id: str, soft: bool = False, _spill_on_unavailable: bool = False, _fail_on_unavailable: bool = False):
        if not isinstance(node_id, str):
            raise TypeError(f"node_id must be a hex string, got {type(node_id).__name__}.")
        self.node_id = node_id
        self.soft = bool(soft)
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def to_wire(self) -> dict:
        return {
            "type": "node_affinity",
            "node_id": self.node_id,
            "soft": self.soft,
            "spill_on_unavailable": bool(self._spill_on_unavailable),
            "fail_on_unavailable": bool(self._fail_on_unavailable),
        }

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


class _LabelMatchExpression:
    _op = ""

    def __init__(self, *values: str):
        for v in values:
            if not isinstance(v, str):
                raise ValueError(f"Label values must be strings, got {v!r}.")
        self.values = list(values)

    def to_wire(self, key: str) -> list:
        return [key, self._op, self.values]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.values))})"


class In(_LabelMatchExpression):
    """The node's label has one of ``values``."""

    _op = "in"

    def __init__(self, *values: str):
        if not values:
            raise ValueError("In() needs at least one value.")
        super().__init__(*values)


class NotIn(_LabelMatchExpression):
    """The node's label has none of ``values`` (or the node lacks the label)."""

    _op = "not_in"

    def __init__(self, *values: str):
        if not values:
            raise ValueError("NotIn() needs at least one value.")
        super().__init__(*values)


class Exists(_LabelMatchExpression):
    """The node has the label, whatever its value."""

    _op = "exists"

    def __init__(self):
        super().__init__()


class DoesNotExist(_LabelMatchExpression):
    """The node lacks the label."""

    _op = "does_not_exist"

    def __init__(self):
        super().__init__()


class NodeLabelSchedulingStrategy:
    """Run on a node whose labels match every expression of ``hard``; among those, prefer
    nodes that also match ``soft``. Nodes get labels from ``add_node(labels=...)``, and every
    node has ``ray.io/node-id``.
    """

    _solray_strategy = True
    _solray_kind = "node_label"

    def __init__(self, hard: dict[str, _LabelMatchExpression], *, soft: dict[str, _LabelMatchExpression] | None = None):
        self.hard = self._check(hard, "hard")
        self.soft = self._check(soft, "soft")
        if not self.hard and not self.soft:
            raise ValueError("The `hard` and `soft` parameters of NodeLabelSchedulingStrategy cannot both be empty.")

    @staticmethod
    def _check(exprs: dict | None, what: str) -> dict:
        exprs = exprs or {}
        if not isinstance(exprs, dict):
            raise ValueError(f"The `{what}` parameter must be a dict of label name to In/NotIn/Exists/DoesNotExist.")
        for key, expr in exprs.items():
            if not isinstance(key, str) or not isinstance(expr, _LabelMatchExpression):
                raise ValueError(
                    f"The `{what}` parameter must map label names to In(), NotIn(), Exists() or "
                    f"DoesNotExist(), got {key!r}: {expr!r}."
                )
        return exprs

    def to_wire(self) -> dict:
        return {
            "type": "node_label",
            "hard": [e.to_wire(k) for k, e in self.hard.items()],
            "soft": [e.to_wire(k) for k, e in self.soft.items()],
        }

    def __repr__(self) -> str:
        return f"NodeLabelSchedulingStrategy(hard={self.hard!r}, soft={self.soft!r})"


__all__ = [
    "DoesNotExist",
    "Exists",
    "In",
    "NodeAffinitySchedulingStrategy",
    "NodeLabelSchedulingStrategy",
    "NotIn",
    "PlacementGroupSchedulingStrategy",
]
