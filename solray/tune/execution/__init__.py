"""Trial execution helpers (``solray.tune.execution``)."""

from solray.tune.execution.placement_groups import PlacementGroupFactory

__all__ = ["PlacementGroupFactory"]
