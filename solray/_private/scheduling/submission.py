"""From a task's or actor's scheduling options to what its lease request carries.

``resolve`` turns the ``scheduling_strategy`` option (a string or a strategy object from
``solray.util.scheduling_strategies``), the legacy ``placement_group=`` options, and the
placement group the calling task runs in (when it captures child tasks) into three
things: the strategy in wire form (a string or a dict the node daemons and the control
service interpret), the resource demand (rewritten into the group's bundle resources
for a placement group), and the placement the worker runs under (``TaskSpec.placement``:
``[pg hex, bundle index, capture child tasks, bundle specs]``), so that tasks it submits
can default into the same group and ``get_current_placement_group`` can answer.
"""

from __future__ import annotations

from typing import Any

from solray._private.scheduling.bundles import group_demand
from solray._private.scheduling.resources import fits, normalize

_DEFAULT = "default"


def current_placement(worker: Any) -> list | None:
    """The placement group the calling code runs in (a task's, else its actor's)."""
    if worker is None:
        return None
    return worker.context.placement or getattr(worker, "actor_placement", None)


def resolve(worker: Any, options: dict, resources: dict, what: str) -> tuple[Any, dict, list | None]:
    """Return ``(wire strategy, demand, placement)`` for one submission."""
    strategy = options.get("scheduling_strategy")
    if options.get("label_selector") and strategy is None:
        # Ray 2.60's label_selector={"zone": "us-west"}: a hard label constraint.
        from solray._private.scheduling.labels import parse_selector

        return {"type": "node_label", "hard": parse_selector(options["label_selector"]), "soft": []}, resources, None
    index = options.get("placement_group_bundle_index", -1)
    capture = options.get("placement_group_capture_child_tasks")
    if strategy is None:
        pg = options.get("placement_group", _DEFAULT)
        if pg is None:
            pg = _DEFAULT
    elif getattr(strategy, "_solray_kind", None) == "placement_group":
        pg = strategy.placement_group
        index = strategy.placement_group_bundle_index
        capture = strategy.placement_group_capture_child_tasks
    else:
        wire = strategy if isinstance(strategy, str) else strategy.to_wire()
        return wire, resources, None
    if index is None:
        index = -1
    current = current_placement(worker)
    if capture is None:
        capture = bool(current and current[2])
    if isinstance(pg, str) and pg == _DEFAULT:
        if current and current[2]:  # the parent captures its child tasks into its group
            pg_hex, bundles = current[0], current[3]
        else:
            pg_hex = bundles = None
    elif pg is None or getattr(pg, "is_empty", False):
        pg_hex = bundles = None
    else:
        pg_hex = pg.id.hex()
        bundles = pg.bundle_specs
    if pg_hex is None:
        if index != -1:
            raise ValueError(
                "If placement_group is not set, the value of placement_group_bundle_index "
                f"must be -1, got {index}."
            )
        return "DEFAULT", resources, None
    _check(bundles, index, resources, what)
    wire = {"type": "placement_group", "pg_id": pg_hex, "index": index, "capture": bool(capture)}
    placement = [pg_hex, index, bool(capture), [dict(b) for b in bundles]]
    return wire, group_demand(resources, pg_hex, index), placement


def _check(bundles: list, index: Any, resources: dict, what: str) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not -1 <= index < len(bundles):
        raise ValueError(
            f"placement group bundle index {index} is invalid: valid indices are -1 (any bundle) "
            f"and 0-{len(bundles) - 1}."
        )
    demand = normalize(resources)
    candidates = bundles if index == -1 else [bundles[index]]
    if demand and not any(fits(demand, normalize(b)) for b in candidates):
        where = "any bundle" if index == -1 else f"bundle {index}"
        raise ValueError(
            f"Cannot schedule {what} with the placement group because the resource request "
            f"{demand} cannot fit into {where} of the placement group, {bundles}."
        )
