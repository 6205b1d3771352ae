"""Where an algorithm's actors go when it runs as a Tune trial.

Tune reserves the bundles of ``Algorithm.default_resource_request`` as one placement group
and starts the trial in bundle 0; the env runners, learners and evaluation runners then take
bundles 1, 2, ... in that order, so a trial never uses more than it reserved. Outside a
placement group (a plain driver) actors are scheduled anywhere.
"""

from __future__ import annotations

from typing import Any


class BundleAllocator:
    def __init__(self) -> None:
        from solray.util.placement_group import get_current_placement_group

        self.placement_group = get_current_placement_group()
        self.next_bundle = 1

    def options(self) -> dict[str, Any]:
        """Actor options for the next actor: its bundle, or nothing outside a placement group."""
        pg = self.placement_group
        if pg is None or self.next_bundle >= pg.bundle_count:
            return {}
        from solray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        index = self.next_bundle
        self.next_bundle += 1
        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index)}
