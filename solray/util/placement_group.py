"""Placement groups: reserve bundles of resources across nodes, then run tasks in them.

``placement_group(bundles, strategy)`` asks the control service to reserve every bundle
(all of them or none: gang scheduling) on nodes chosen by the strategy; ``ready()`` is an
``ObjectRef`` that resolves once they are reserved. Tasks and actors then run in a
bundle through ``PlacementGroupSchedulingStrategy``. A group the cluster cannot hold
stays PENDING (with a warning to the driver) until nodes that fit join. Removing a group
kills the tasks and actors running in it.
"""

from __future__ import annotations

from typing import Any

from solray import exceptions
from solray._private import ids
from solray._private.objects.object_ref import ObjectRef
from solray._private.rpc.connection import RpcError
from solray._private.scheduling.labels import parse_selector
from solray._private.scheduling.submission import current_placement
from solray._private.serialization import serializer
from solray._private.worker import state

VALID_PLACEMENT_GROUP_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class PlacementGroupID:
    """The id of a placement group: ``.hex()`` and ``.binary()`` as Ray's."""

    __slots__ = ("_id",)

    def __init__(self, binary: bytes):
        self._id = bytes(binary)

    @classmethod
    def from_hex(cls, hex_id: str) -> PlacementGroupID:
        return cls(bytes.fromhex(hex_id))

    @classmethod
    def nil(cls) -> PlacementGroupID:
        return cls(b"")

    def is_nil(self) -> bool:
        return not self._id

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupID) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __reduce__(self):
        return (PlacementGroupID, (self._id,))

    def __repr__(self) -> str:
        return f"PlacementGroupID({self.hex()})"


class PlacementGroup:
    """A handle to a placement group (picklable: pass it to tasks and actors)."""

    @staticmethod
    def empty() -> PlacementGroup:
        return PlacementGroup(PlacementGroupID.nil())

    def __init__(self, id: PlacementGroupID, bundle_cache: list[dict] | None = None):
        self.id = id
        self.bundle_cache = bundle_cache

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    @property
    def bundle_specs(self) -> list[dict]:
        """The bundles, as passed to ``placement_group`` (zero-valued entries dropped)."""
        if self.bundle_cache is None:
            entry = placement_group_table(self)
            if not entry:
                raise ValueError(f"Unknown placement group {self.id.hex()}.")
            self.bundle_cache = [entry["bundles"][i] for i in sorted(entry["bundles"])]
        return self.bundle_cache

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self) -> ObjectRef:
        """An ``ObjectRef`` that resolves (to this group) once every bundle is reserved.

        Works with ``get`` and ``wait``; if the group is removed first, ``get`` raises
        ``TaskPlacementGroupRemoved``.
        """
        worker = state.get_core_worker()
        oid = ids.object_id(ids.new_id(), 1)
        worker.store.create(oid, owned=True)
        ref = ObjectRef(oid, worker.address, _worker=worker)

        def done(fut) -> None:
            if fut.cancelled() or fut.exception() is not None:
                err: BaseException | None = exceptions.RaySystemError(
                    f"could not learn whether placement group {self.id.hex()} was created: "
                    f"{None if fut.cancelled() else fut.exception()}"
                )
            elif not fut.result():
                err = exceptions.TaskPlacementGroupRemoved(
                    f"The placement group {self.id.hex()} was removed before it was created."
                )
            else:
                err = None
            if err is None:
                worker.store.set_ready(oid, inline=serializer.serialize(self).to_inline())
            else:
                worker.store.set_ready(oid, inline=serializer.serialize_error(err).to_inline(), is_error=True)

        def start() -> None:
            worker.control.request("wait_placement_group", self.id.binary()).add_done_callback(done)

        worker.schedule(start)
        return ref

    def wait(self, timeout_seconds: float | int = 30) -> bool:
        """Wait until the group is created; False if ``timeout_seconds`` passed first."""
        from solray._private.api import wait

        ready, _ = wait([self.ready()], timeout=timeout_seconds)
        return bool(ready)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup(id={self.id.hex()})"


def _validate(bundles: Any, strategy: Any, name: Any, lifetime: Any) -> list[dict]:
    if not isinstance(bundles, (list, tuple)):
        raise ValueError(f"The type of bundles must be list, got {bundles!r}.")
    if not bundles:
        raise ValueError("The placement group `bundles` argument cannot contain an empty list.")
    clean = []
    for bundle in bundles:
        if not isinstance(bundle, dict):
            raise ValueError(f"Each bundle must be a dict of resource name to amount, got {bundle!r}.")
        for k, v in bundle.items():
            if not isinstance(k, str):
                raise ValueError(f"Resource names in bundles must be strings, got {k!r}.")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"Resource quantities in bundles must be non-negative numbers, got {k}={v!r}.")
        nonzero = {k: float(v) for k, v in bundle.items() if v > 0}
        if not nonzero:
            raise ValueError(
                f"Bundles cannot be an empty dictionary or resources with only 0 values. Bundles: {list(bundles)}"
            )
        clean.append(nonzero)
    if strategy not in VALID_PLACEMENT_GROUP_STRATEGIES:
        raise ValueError(
            f"Invalid placement group strategy {strategy!r}. Supported strategies are: "
            f"{list(VALID_PLACEMENT_GROUP_STRATEGIES)}."
        )
    if lifetime not in (None, "detached"):
        raise ValueError(f"Placement group `lifetime` argument must be either `None` or 'detached'. Got {lifetime!r}.")
    if not isinstance(name, str):
        raise TypeError(f"The placement group `name` argument must be a string, got {type(name).__name__}.")
    return clean


def placement_group(
    bundles: list[dict[str, float]],
    strategy: str = "PACK",
    name: str = "",
    lifetime: str | None = None,
    _soft_target_node_id: str | None = None,
    bundle_label_selector: list | None = None,
) -> PlacementGroup:
    """Reserve ``bundles`` on nodes chosen by ``strategy``; returns at once (see ``ready()``).

    ``PACK`` packs bundles onto as few nodes as possible, ``SPREAD`` spreads them over
    distinct nodes as far as it can, ``STRICT_PACK`` puts all on one node and
    ``STRICT_SPREAD`` each on a different node. ``lifetime="detached"`` keeps the group
    after its job ends; otherwise it is removed with the job. ``bundle_label_selector``
    (one ``{label: "v" | "!v" | "in(a,b)" | "!in(a,b)"}`` per bundle) restricts the nodes
    each bundle may use; ``_soft_target_node_id`` is the node a STRICT_PACK group prefers.
    """
    clean = _validate(bundles, strategy, name, lifetime)
    selectors = None
    if bundle_label_selector is not None:
        if not isinstance(bundle_label_selector, list) or len(bundle_label_selector) != len(clean):
            raise ValueError(
                "bundle_label_selector must be a list with one dict per bundle "
                f"({len(clean)}), got {bundle_label_selector!r}."
            )
        selectors = [parse_selector(s or {}, f"bundle_label_selector[{i}]") for i, s in enumerate(bundle_label_selector)]
    if _soft_target_node_id is not None and (not isinstance(_soft_target_node_id, str) or strategy != "STRICT_PACK"):
        raise ValueError("_soft_target_node_id must be a node id (hex string) and needs strategy='STRICT_PACK'.")
    worker = state.get_core_worker()
    pg_id = ids.new_id(18)
    spec = {
        "pg_id": pg_id,
        "name": name,
        "namespace": worker.namespace,
        "bundles": clean,
        "strategy": strategy,
        "lifetime": lifetime,
        "job_id": worker.job_id,
        "bundle_label_selector": selectors,
        "soft_target_node_id": _soft_target_node_id,
    }
    try:
        worker.control_call("create_placement_group", spec)
    except RpcError as e:
        if e.remote_type == "ValueError":
            raise ValueError(str(e).split(": ", 1)[-1]) from None
        raise
    return PlacementGroup(PlacementGroupID(pg_id), clean)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Remove the group: its bundles are freed and the tasks and actors in it are killed."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group() expects a PlacementGroup, got {type(placement_group).__name__}.")
    state.get_core_worker().control_call("remove_placement_group", placement_group.id.binary())


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live placement group named ``placement_group_name`` in this job's namespace."""
    if not placement_group_name:
        raise ValueError("Please supply a non-empty value to get_placement_group")
    worker = state.get_core_worker()
    entry = worker.control_call("get_placement_group", [placement_group_name, worker.namespace])
    if entry is None:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")
    return _from_entry(entry)


def _from_entry(entry: dict) -> PlacementGroup:
    bundles = [entry["bundles"][i] for i in sorted(entry["bundles"])]
    return PlacementGroup(PlacementGroupID.from_hex(entry["placement_group_id"]), bundles)


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """The state of one group (a dict), or of all groups keyed by their hex id."""
    worker = state.get_core_worker()
    pg_id = placement_group.id.binary() if placement_group is not None else None
    entries = [_public(e) for e in worker.control_call("placement_group_table", pg_id)]
    if placement_group is not None:
        return entries[0] if entries else {}
    return {e["placement_group_id"]: e for e in entries}


def _public(entry: dict) -> dict:
    entry = dict(entry)
    entry["bundles"] = {int(i): b for i, b in entry["bundles"].items()}
    entry["bundles_to_node_id"] = {int(i): n for i, n in entry["bundles_to_node_id"].items()}
    return entry


def get_current_placement_group() -> PlacementGroup | None:
    """The placement group the calling task or actor runs in; None in a driver or outside one."""
    placement = current_placement(state.get_core_worker(required=False))
    if not placement:
        return None
    return PlacementGroup(PlacementGroupID.from_hex(placement[0]), [dict(b) for b in placement[3]])


def check_placement_group_index(placement_group: PlacementGroup, bundle_index: int) -> None:
    if placement_group.is_empty:
        if bundle_index != -1:
            raise ValueError("If placement_group is not set, the value of placement_group_bundle_index must be -1.")
    elif bundle_index >= placement_group.bundle_count or bundle_index < -1:
        raise ValueError(
            f"placement group bundle index {bundle_index} is invalid. Valid placement group indexes: "
            f"0-{placement_group.bundle_count}"
        )


__all__ = [
    "PlacementGroup",
    "PlacementGroupID",
    "check_placement_group_index",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]
