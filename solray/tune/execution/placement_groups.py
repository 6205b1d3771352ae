"""``PlacementGroupFactory``: the resources of one trial as placement-group bundles.

Bundle 0 is the trial actor's own ("head") bundle; the others are for the workers it
starts (a Trainer's training workers), which find the group through the trial's session.
"""

from __future__ import annotations

from typing import Any

from solray.util.placement_group import VALID_PLACEMENT_GROUP_STRATEGIES

_ALIASES = {"cpu": "CPU", "gpu": "GPU", "CPU": "CPU", "GPU": "GPU"}


def normalize_resources(resources: dict, where: str) -> dict[str, float]:
    """``{"cpu": 1, "gpu": 0.5, "custom": 1}`` as ``{"CPU": 1, "GPU": 0.5, "custom": 1}``;
    zero amounts dropped, negative or non-numeric ones rejected."""
    if not isinstance(resources, dict):
        raise TypeError(f"{where}: resources must be a dict, got {type(resources).__name__}")
    out: dict[str, float] = {}
    for key, amount in resources.items():
        if key in ("extra_cpu", "extra_gpu"):
            raise ValueError(f"{where}: {key!r} is not supported; use a PlacementGroupFactory for extra bundles")
        if not isinstance(amount, (int, float)) or isinstance(amount, bool) or amount < 0:
            raise ValueError(f"{where}: {key}={amount!r} must be a number >= 0")
        if amount:
            out[_ALIASES.get(key, key)] = out.get(_ALIASES.get(key, key), 0) + amount
    return out


class PlacementGroupFactory:
    """``PlacementGroupFactory([{"CPU": 1}, {"CPU": 2}, {"CPU": 2}], strategy="PACK")``:
    the trial actor takes the first bundle; the rest are reserved with it, all or none."""

    def __init__(self, bundles: list[dict[str, float]], strategy: str = "PACK", *args: Any, **kwargs: Any):
        if not isinstance(bundles, (list, tuple)) or not bundles:
            raise ValueError(f"PlacementGroupFactory: bundles must be a non-empty list of dicts, got {bundles!r}")
        if strategy not in VALID_PLACEMENT_GROUP_STRATEGIES:
            raise ValueError(
                f"PlacementGroupFactory(strategy={strategy!r}): must be one of "
                f"{', '.join(VALID_PLACEMENT_GROUP_STRATEGIES)}"
            )
        self._bundles = [normalize_resources(b, "PlacementGroupFactory") for b in bundles]
        self.strategy = strategy
        self._args, self._kwargs = args, kwargs

    @property
    def bundles(self) -> list[dict[str, float]]:
        return [dict(b) for b in self._bundles]

    @property
    def head_bundle_is_empty(self) -> bool:
        return not self._bundles[0]

    @property
    def head_cpus(self) -> float:
        return self._bundles[0].get("CPU", 0.0)

    @property
    def required_resources(self) -> dict[str, float]:
        """The sum over all bundles."""
        total: dict[str, float] = {}
        for bundle in self._bundles:
            for key, amount in bundle.items():
                total[key] = total.get(key, 0) + amount
        return total

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupFactory) and (other._bundles, other.strategy) == (
            self._bundles, self.strategy)

    def __hash__(self) -> int:
        return hash((tuple(tuple(sorted(b.items())) for b in self._bundles), self.strategy))

    def __repr__(self) -> str:
        return f"PlacementGroupFactory(bundles={self._bundles}, strategy={self.strategy!r})"


def resource_dict_to_pg_factory(resources: dict | None) -> PlacementGroupFactory:
    """A plain resources dict (``{"cpu": 1, "gpu": 0}``) as a one-bundle factory."""
    bundle = normalize_resources(resources or {"CPU": 1}, "tune.with_resources")
    return PlacementGroupFactory([bundle])
