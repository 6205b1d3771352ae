"""The streaming-split coordinator's choice of bundle per consumer (its policy alone, with
stand-in bundles: where a block lives is given rather than produced by a cluster)."""

from __future__ import annotations

from solray.data import BlockMetadata
from solray.data._internal.ref_bundle import RefBundle
from solray.data._internal.split import SplitCoordinator


class _Bundles:
    """A dataset stand-in whose execution yields bundles whose 'ref' is the node name."""

    def __init__(self, nodes: list[str]):
        self.nodes = nodes

    def _iter_bundles(self):
        for node in self.nodes:
            yield RefBundle(node, [BlockMetadata(num_rows=1, size_bytes=1)])


def _drain_alternating(coord: SplitCoordinator, n: int) -> list[list[str]]:
    got: list[list[str]] = [[] for _ in range(n)]
    live = set(range(n))
    while live:
        for split in sorted(live):
            b = coord.get(split, 1)
            if b is None:
                live.discard(split)
            else:
                got[split].append(b.ref)
    return got


def test_each_split_gets_the_blocks_on_its_node_when_there_are_some():
    layout = ["a", "a", "b", "b", "a", "b", "b", "a"]
    coord = SplitCoordinator(_Bundles(layout), 2, False, locality_hints=["a", "b"], node_of=lambda ref: ref)
    got = _drain_alternating(coord, 2)
    assert got == [["a", "a", "a", "a"], ["b", "b", "b", "b"]]


def test_without_local_blocks_a_split_still_gets_work():
    coord = SplitCoordinator(_Bundles(["a"] * 4), 2, False, locality_hints=["a", "b"], node_of=lambda ref: ref)
    got = _drain_alternating(coord, 2)
    assert sorted(got[0] + got[1]) == ["a"] * 4 and got[1]  # b takes remote blocks rather than idling


def test_without_hints_the_first_asker_gets_the_next_bundle():
    coord = SplitCoordinator(_Bundles(["a", "a", "b", "b"]), 2, False, node_of=lambda ref: ref)
    assert _drain_alternating(coord, 2) == [["a", "b"], ["a", "b"]]
