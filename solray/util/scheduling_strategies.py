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


__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]
