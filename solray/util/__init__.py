"""Utilities on top of the core API (Ray's ``ray.util``)."""

from __future__ import annotations

from solray._private.serialization.inspect import inspect_serializability
from solray.util import queue, scheduling_strategies
from solray.util.actor_pool import ActorPool
from solray.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = [
    "ActorPool",
    "PlacementGroup",
    "get_current_placement_group",
    "get_placement_group",
    "inspect_serializability",
    "placement_group",
    "placement_group_table",
    "queue",
    "remove_placement_group",
    "scheduling_strategies",
]


def __getattr__(name: str):
    # ``solray.util.state`` and ``solray.util.metrics`` load on first use: most programs
    # never need them, and ``import solray`` stays fast.
    if name in ("state", "metrics"):
        import importlib

        return importlib.import_module(f"solray.util.{name}")
    raise AttributeError(f"module 'solray.util' has no attribute {name!r}")
