"""Placement groups: the bundle-placement decision (pure), a node's bundle table (pure),
then real clusters: one node (creation, tasks and actors in bundles, capture of child
tasks, removal, infeasible groups) and several nodes (strategies across nodes, groups
that wait for a node to join, bundles re-placed after their node died, lifetimes).
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from cluster_helpers import node_id_here, start_cluster
from helpers import Gate, arrive_and_wait, wait_for

import solray as ray
from solray._private.control.placement_groups import assign_bundles
from solray._private.scheduling.bundles import BundleTable, group_demand, original_resources
from solray._private.scheduling.labels import parse_selector
from solray._private.scheduling.resources import NodeResources
from solray.exceptions import RayActorError, TaskPlacementGroupRemoved
from solray.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from solray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

# ---------------------------------------------------------------------------- the decision

NODES = {"a": {"CPU": 4.0}, "b": {"CPU": 2.0, "GPU": 1.0}, "c": {"CPU": 1.0}}


def test_pack_puts_the_group_on_one_node_when_it_fits():
    placed = assign_bundles([{"CPU": 1}, {"CPU": 1}], "PACK", NODES)
    assert len(set(placed.values())) == 1
    # best fit: the smallest node that holds both
    assert set(placed.values()) == {"b"}


def test_pack_spills_over_to_more_nodes_when_it_must():
    placed = assign_bundles([{"CPU": 3}, {"CPU": 2}], "PACK", NODES)
    assert placed == {0: "a", 1: "b"}


def test_strict_pack_needs_a_single_node():
    assert assign_bundles([{"CPU": 2}, {"CPU": 2}], "STRICT_PACK", NODES) == {0: "a", 1: "a"}
    assert assign_bundles([{"CPU": 3}, {"CPU": 2}], "STRICT_PACK", NODES) is None


def test_spread_uses_distinct_nodes_and_reuses_when_it_runs_out():
    placed = assign_bundles([{"CPU": 1}] * 3, "SPREAD", NODES)
    assert sorted(placed.values()) == ["a", "b", "c"]
    placed = assign_bundles([{"CPU": 1}] * 5, "SPREAD", NODES)
    assert set(placed.values()) == {"a", "b", "c"}


def test_bundle_label_selectors_restrict_each_bundle():
    labels = {"a": {"zone": "east"}, "b": {"zone": "west", "gpu": "yes"}, "c": {"zone": "west"}}
    west = parse_selector({"zone": "west"})
    not_gpu = parse_selector({"gpu": "!yes"})
    placed = assign_bundles([{"CPU": 1}, {"CPU": 1}], "SPREAD", NODES, selectors=[west, not_gpu], labels=labels)
    assert placed[0] in ("b", "c") and placed[1] in ("a", "c")
    in_east = parse_selector({"zone": "in(east,north)"})
    assert assign_bundles([{"CPU": 1}] * 2, "STRICT_PACK", NODES, selectors=[in_east, west], labels=labels) is None
    assert assign_bundles([{"CPU": 2}], "PACK", NODES, selectors=[west], labels=labels) == {0: "b"}


def test_soft_target_node_is_preferred_when_it_fits():
    assert assign_bundles([{"CPU": 1}] * 2, "STRICT_PACK", NODES, soft_target="a") == {0: "a", 1: "a"}
    # It does not fit on c: the group goes where it fits, as without a target.
    assert set(assign_bundles([{"CPU": 1}] * 2, "STRICT_PACK", NODES, soft_target="c").values()) == {"b"}


@pytest.mark.parametrize("selector", [{"zone": ""}, {"zone": "in()"}, {"zone": "a,b"}, ["zone"], {"": "x"}])
def test_bad_label_selectors_are_rejected(selector):
    with pytest.raises((ValueError, TypeError)):
        parse_selector(selector)


def test_strict_spread_needs_distinct_nodes_and_finds_the_matching():
    assert assign_bundles([{"CPU": 1}] * 4, "STRICT_SPREAD", NODES) is None
    # The CPU bundle must leave node b to the GPU bundle: a greedy pass in order would not.
    placed = assign_bundles([{"CPU": 1}, {"GPU": 1}, {"CPU": 4}], "STRICT_SPREAD", NODES)
    assert placed == {0: "c", 1: "b", 2: "a"}


def test_assignment_counts_earlier_bundles_of_the_same_group():
    # Each bundle fits node b alone, but not both: the second goes elsewhere.
    placed = assign_bundles([{"CPU": 2}, {"CPU": 2}], "PACK", {"b": {"CPU": 2.0}, "c": {"CPU": 2.0}})
    assert sorted(placed.values()) == ["b", "c"]


def test_infeasible_and_custom_resources():
    assert assign_bundles([{"GPU": 2}], "PACK", NODES) is None
    assert assign_bundles([{"CPU": 1, "GPU": 1}], "SPREAD", NODES) == {0: "b"}


def test_replacing_lost_bundles_keeps_the_others():
    fixed = {0: "a"}
    placed = assign_bundles([{"CPU": 1}, {"CPU": 1}], "STRICT_SPREAD", NODES, fixed)
    assert placed[0] == "a" and placed[1] in ("b", "c")
    assert assign_bundles([{"CPU": 1}, {"CPU": 1}], "STRICT_PACK", {"b": {"CPU": 2.0}}, {0: "a"}) is None
    assert assign_bundles([{"CPU": 1}], "PACK", NODES, {0: "c"}) == {0: "c"}


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError):
        assign_bundles([{"CPU": 1}], "BOGUS", NODES)


# ---------------------------------------------------------------------------- a node's bundles


def test_bundle_table_reserves_all_or_nothing_and_releases_exactly():
    res = NodeResources({"CPU": 4, "GPU": 2, "custom": 1})
    table = BundleTable(res)
    assert not table.reserve("pg1", [[0, {"CPU": 3}], [1, {"CPU": 2}]])
    assert res.available == res.total
    assert table.reserve("pg1", [[0, {"CPU": 1, "GPU": 1}], [1, {"CPU": 2, "custom": 1}]])
    assert res.available["CPU"] == 1 and res.available["GPU"] == 1 and res.available["custom"] == 0
    assert res.total["CPU_group_pg1"] == 3 and res.total["CPU_group_0_pg1"] == 1
    assert res.total["CPU_group_1_pg1"] == 2 and res.total["custom_group_1_pg1"] == 1
    assert res.total["bundle_group_pg1"] == 2000 and res.total["bundle_group_0_pg1"] == 1000
    # A task in bundle 0 asks for the indexed and the wildcard names.
    demand = group_demand({"CPU": 1, "GPU": 1}, "pg1", 0)
    assert res.can_acquire(demand)
    gpus = res.acquire(demand) or table.acquire_gpus(demand)
    assert gpus == table.bundles[("pg1", 0)].gpu_ids
    assert not res.can_acquire(group_demand({"CPU": 1}, "pg1", 0))
    assert res.can_acquire(group_demand({"CPU": 2}, "pg1", -1))
    res.release(demand, gpus)
    table.release_gpus(demand, gpus)
    assert table.release("pg1") == [0, 1]
    assert res.total == {"CPU": 4, "GPU": 2, "custom": 1}
    assert res.available == res.total and res.gpu_free == {0: 1.0, 1: 1.0}


def test_releasing_a_lease_after_its_group_went_leaves_no_trace():
    res = NodeResources({"CPU": 2})
    table = BundleTable(res)
    table.reserve("pg2", [[0, {"CPU": 1}]])
    demand = group_demand({"CPU": 1}, "pg2", 0)
    res.acquire(demand)
    table.release("pg2")  # removed while the task still held its lease
    res.release(demand, [])
    assert res.total == {"CPU": 2} and res.available == {"CPU": 2}


def test_group_names_map_back_to_plain_resources():
    demand = group_demand({"CPU": 2, "GPU": 0.5}, "ab12", 1)
    assert original_resources(demand) == {"CPU": 2, "GPU": 0.5}
    assert group_demand({}, "ab12", -1) == {"bundle_group_ab12": 0.001}


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "bundles, strategy",
    [
        ([], "PACK"),
        ([{}], "PACK"),
        ([{"CPU": 0}], "PACK"),
        ([{"CPU": 1}, {"GPU": 0, "CPU": 0}], "PACK"),
        ([{"CPU": -1}], "PACK"),
        ({"CPU": 1}, "PACK"),
        ([{"CPU": 1}], "BOGUS"),
    ],
)
def test_bad_placement_group_arguments_raise_value_error(bundles, strategy):
    with pytest.raises(ValueError):
        placement_group(bundles, strategy=strategy)


def test_bad_lifetime_raises_value_error():
    with pytest.raises(ValueError, match="lifetime"):
        placement_group([{"CPU": 1}], lifetime="forever")


# ---------------------------------------------------------------------------- one node


@pytest.fixture(scope="module")
def one_node():
    ray.init(num_cpus=4, num_gpus=2, resources={"custom": 2})
    yield
    ray.shutdown()


@ray.remote
def in_group():
    pg = get_current_placement_group()
    return pg.id.hex() if pg is not None else None


@ray.remote(num_cpus=1)
def parent_of_child():
    """Waits on a child while holding its bundle's only CPU (lent while blocked)."""
    return ray.get(in_group.remote())


@ray.remote(num_gpus=1)
def gpu_env():
    return os.environ.get("CUDA_VISIBLE_DEVICES"), ray.get_runtime_context().get_assigned_resources()


@ray.remote
def hold(address):
    arrive_and_wait(address)
    return "released"


def test_create_ready_table_and_remove(one_node):
    pg = placement_group([{"CPU": 1, "GPU": 1}, {"CPU": 1, "custom": 1}], strategy="PACK", name="t1")
    assert isinstance(ray.get(pg.ready(), timeout=30), PlacementGroup)
    assert pg.wait(10)
    assert pg.bundle_specs == [{"CPU": 1, "GPU": 1}, {"CPU": 1, "custom": 1}] and pg.bundle_count == 2
    entry = placement_group_table(pg)
    assert entry["placement_group_id"] == pg.id.hex()
    assert entry["name"] == "t1" and entry["strategy"] == "PACK" and entry["state"] == "CREATED"
    assert entry["bundles"] == {0: {"CPU": 1, "GPU": 1}, 1: {"CPU": 1, "custom": 1}}
    node = ray.get_runtime_context().get_node_id()
    assert entry["bundles_to_node_id"] == {0: node, 1: node}
    assert pg.id.hex() in placement_group_table()
    avail = ray.available_resources()
    assert avail["CPU"] == 2 and avail["GPU"] == 1 and avail["custom"] == 1
    assert avail[f"CPU_group_{pg.id.hex()}"] == 2 and avail[f"GPU_group_0_{pg.id.hex()}"] == 1
    assert ray.cluster_resources()["CPU"] == 4

    remove_placement_group(pg)
    assert placement_group_table(pg)["state"] == "REMOVED"

    def freed():
        a = ray.available_resources()
        return a.get("CPU") == 4 and a.get("GPU") == 2 and not any("_group_" in k for k in a)

    wait_for(freed, what="the group's resources to come back")


def test_tasks_and_actors_run_in_their_bundle(one_node):
    pg = placement_group([{"CPU": 1}, {"CPU": 1, "GPU": 1}])
    ray.get(pg.ready(), timeout=30)
    in0 = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)
    in1 = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=1)
    assert ray.get(in_group.options(scheduling_strategy=in0).remote()) == pg.id.hex()
    assert ray.get(in_group.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote()) == pg.id.hex()
    # The GPU task gets the bundle's GPU; it sees plain resource names.
    visible, assigned = ray.get(gpu_env.options(scheduling_strategy=in1).remote())
    assert visible in ("0", "1") and assigned == {"CPU": 1.0, "GPU": 1.0}
    # The legacy options do the same.
    assert ray.get(in_group.options(placement_group=pg, placement_group_bundle_index=0).remote()) == pg.id.hex()

    @ray.remote(num_cpus=1)
    class Member:
        def where(self):
            return get_current_placement_group().id.hex(), ray.get_runtime_context().get_placement_group_id()

    m = Member.options(scheduling_strategy=in0).remote()
    assert ray.get(m.where.remote()) == (pg.id.hex(), pg.id.hex())
    # The bundle's CPU is the actor's: a second one-CPU task in bundle 0 waits.
    with Gate() as gate:
        waiting = hold.options(num_cpus=1, scheduling_strategy=in0).remote(gate.address)
        ready, _ = ray.wait([waiting], timeout=0.3)
        assert not ready
        ray.kill(m)
        gate.wait_arrivals(1)
    assert ray.get(waiting) == "released"
    assert get_current_placement_group() is None  # the driver runs in no group
    remove_placement_group(pg)


def test_child_tasks_are_captured_only_when_asked(one_node):
    pg = placement_group([{"CPU": 1}])
    ray.get(pg.ready(), timeout=30)
    captured = PlacementGroupSchedulingStrategy(pg, 0, placement_group_capture_child_tasks=True)
    # The child needs the bundle's only CPU, which its waiting parent lends it.
    assert ray.get(parent_of_child.options(scheduling_strategy=captured).remote(), timeout=30) == pg.id.hex()
    not_captured = PlacementGroupSchedulingStrategy(pg, 0)
    assert ray.get(parent_of_child.options(scheduling_strategy=not_captured).remote(), timeout=30) is None
    remove_placement_group(pg)


def test_submission_checks_bundle_index_and_shape(one_node):
    pg = placement_group([{"CPU": 1}, {"custom": 1}])
    with pytest.raises(ValueError, match="index"):
        in_group.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 2)).remote()
    with pytest.raises(ValueError, match="cannot fit"):
        in_group.options(num_cpus=2, scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote()
    with pytest.raises(ValueError, match="cannot fit"):
        in_group.options(num_cpus=1, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 1)).remote()
    with pytest.raises(ValueError):
        in_group.options(placement_group_bundle_index=1).remote()
    remove_placement_group(pg)


def test_named_groups(one_node):
    pg = placement_group([{"CPU": 1}], name="named-pg")
    found = get_placement_group("named-pg")
    assert found == pg and found.bundle_specs == [{"CPU": 1}]
    with pytest.raises(ValueError, match="already"):
        placement_group([{"CPU": 1}], name="named-pg")
    remove_placement_group(pg)
    with pytest.raises(ValueError, match="named-pg"):
        get_placement_group("named-pg")


def test_infeasible_group_stays_pending_with_a_warning(one_node, capfd):
    pg = placement_group([{"CPU": 3}, {"CPU": 3}], strategy="STRICT_PACK")
    assert not pg.wait(0.5)
    assert placement_group_table(pg)["state"] == "PENDING"
    seen: list[str] = []

    def warned():
        seen.append(capfd.readouterr().err)
        return pg.id.hex() in "".join(seen)

    wait_for(warned, what="the infeasible warning")
    assert "PENDING" in "".join(seen)
    # A task waiting for the group is not an infeasible task of its own; it fails when the
    # group is removed.
    ref = in_group.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    ready_ref = pg.ready()
    remove_placement_group(pg)
    with pytest.raises(TaskPlacementGroupRemoved):
        ray.get(ref, timeout=30)
    with pytest.raises(TaskPlacementGroupRemoved):
        ray.get(ready_ref, timeout=30)


def test_removal_kills_what_runs_in_the_group(one_node):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}])
    ray.get(pg.ready(), timeout=30)

    @ray.remote(num_cpus=1)
    class Member:
        def ping(self):
            return "pong"

    actor = Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    assert ray.get(actor.ping.remote()) == "pong"
    with Gate() as gate:
        task = hold.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 1)).remote(gate.address)
        gate.wait_arrivals(1)
        remove_placement_group(pg)
        with pytest.raises(TaskPlacementGroupRemoved):
            ray.get(task, timeout=30)
    with pytest.raises(RayActorError, match="placement group"):
        ray.get(actor.ping.remote(), timeout=30)
    # New work for the removed group fails at once.
    with pytest.raises(TaskPlacementGroupRemoved):
        ray.get(in_group.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote(), timeout=30)
    late = Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    with pytest.raises(RayActorError):
        ray.get(late.ping.remote(), timeout=30)
    wait_for(lambda: ray.available_resources().get("CPU") == 4, what="CPUs freed")


def test_exported_from_solray_util():
    assert ray.util.placement_group is placement_group
    assert ray.util.remove_placement_group is remove_placement_group
    assert ray.util.scheduling_strategies.PlacementGroupSchedulingStrategy is PlacementGroupSchedulingStrategy


# ---------------------------------------------------------------------------- several nodes


@pytest.fixture(scope="module")
def nodes(one_node_done):
    with start_cluster(head_cpus=1, nodes=({"num_cpus": 2}, {"num_cpus": 2})) as cluster:
        head, *others = cluster.list_all_nodes()
        yield SimpleNamespace(cluster=cluster, ids={n.node_id for n in cluster.list_all_nodes()}, head=head)


@pytest.fixture(scope="module")
def one_node_done():
    """Multi-node tests run after the one-node cluster is gone (one driver at a time)."""
    if ray.is_initialized():
        ray.shutdown()


@ray.remote(num_cpus=0)
def where():
    return node_id_here()


def _on(pg, i):
    return where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i))


def test_strategies_across_nodes(nodes):
    spread = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    ray.get(spread.ready(), timeout=30)
    placed = placement_group_table(spread)["bundles_to_node_id"]
    assert set(placed.values()) == nodes.ids
    # Tasks follow their bundle to its node.
    assert ray.get([_on(spread, i).remote() for i in range(3)]) == [placed[i] for i in range(3)]
    remove_placement_group(spread)

    packed = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    ray.get(packed.ready(), timeout=30)
    (home,) = set(placement_group_table(packed)["bundles_to_node_id"].values())
    assert home != nodes.head.node_id  # only the 2-CPU nodes hold both
    assert set(ray.get([_on(packed, -1).remote() for _ in range(4)])) == {home}
    remove_placement_group(packed)


def test_label_selectors_and_soft_target_on_a_real_cluster(nodes):
    """Bundles follow their label selectors (every node carries ray.io/node-id), a STRICT_PACK
    group goes to its soft target node, and tasks take label_selector= as in Ray 2.60."""
    others = sorted(nodes.ids - {nodes.head.node_id})
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD",
                         bundle_label_selector=[{"ray.io/node-id": others[0]}, {"ray.io/node-id": others[1]}])
    ray.get(pg.ready(), timeout=30)
    assert placement_group_table(pg)["bundles_to_node_id"] == {0: others[0], 1: others[1]}
    remove_placement_group(pg)
    wait_for(lambda: ray.available_resources().get("CPU") == 5, what="the first group's CPUs to be free")
    packed = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK", _soft_target_node_id=others[1])
    ray.get(packed.ready(), timeout=30)
    assert set(placement_group_table(packed)["bundles_to_node_id"].values()) == {others[1]}
    remove_placement_group(packed)
    assert ray.get(where.options(label_selector={"ray.io/node-id": others[0]}).remote(), timeout=30) == others[0]
    with pytest.raises(ValueError, match="label_selector"):
        where.options(label_selector={"zone": "in()"})
    with pytest.raises(ValueError, match="one dict per bundle"):
        placement_group([{"CPU": 1}], bundle_label_selector=[{}, {}])


def test_actor_in_a_bundle_on_another_node(nodes):
    pg = placement_group([{"CPU": 2}])
    ray.get(pg.ready(), timeout=30)
    (home,) = placement_group_table(pg)["bundles_to_node_id"].values()

    @ray.remote(num_cpus=1)
    class Member:
        def where(self):
            return node_id_here(), ray.get(where.remote())  # a captured child

    actor = Member.options(
        scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0, placement_group_capture_child_tasks=True)
    ).remote()
    assert ray.get(actor.where.remote(), timeout=30) == (home, home)
    remove_placement_group(pg)
    with pytest.raises(RayActorError):
        ray.get(actor.where.remote(), timeout=30)


def test_group_waits_for_a_node_that_fits_and_follows_lost_bundles(nodes):
    pg = placement_group([{"CPU": 1, "special": 1}], strategy="PACK")
    assert not pg.wait(0.3)
    node = nodes.cluster.add_node(num_cpus=1, resources={"special": 1})
    try:
        ray.get(pg.ready(), timeout=30)
        assert placement_group_table(pg)["bundles_to_node_id"] == {0: node.node_id}
        assert ray.get(_on(pg, 0).remote()) == node.node_id
        # The node dies: the bundle waits for another node that fits, then moves there.
        nodes.cluster.remove_node(node, allow_graceful=False)
        wait_for(lambda: placement_group_table(pg)["state"] == "RESCHEDULING", what="RESCHEDULING")
        assert placement_group_table(pg)["bundles_to_node_id"] == {}
        node = nodes.cluster.add_node(num_cpus=1, resources={"special": 1})
        wait_for(lambda: placement_group_table(pg)["state"] == "CREATED", what="re-placed")
        assert placement_group_table(pg)["bundles_to_node_id"] == {0: node.node_id}
        assert ray.get(_on(pg, 0).remote(), timeout=30) == node.node_id
    finally:
        remove_placement_group(pg)
        nodes.cluster.remove_node(node)


def test_groups_live_as_long_as_their_job_unless_detached(nodes):
    scoped = placement_group([{"CPU": 1}], name="scoped")
    detached = placement_group([{"CPU": 1}], name="kept", lifetime="detached")
    ray.get([scoped.ready(), detached.ready()], timeout=30)
    ray.shutdown()
    ray.init(address=nodes.cluster.address, namespace="other")
    table = placement_group_table()
    assert table[scoped.id.hex()]["state"] == "REMOVED"
    assert table[detached.id.hex()]["state"] == "CREATED"
    remove_placement_group(detached)


def _lookup_group(name):
    try:
        return get_placement_group(name)
    except (ValueError, ConnectionError):
        return None


def test_groups_survive_a_head_restart(nodes):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD", name="survivor", lifetime="detached")
    ray.get(pg.ready(), timeout=30)
    placed = placement_group_table(pg)["bundles_to_node_id"]
    nodes.cluster.restart_head()
    again = wait_for(lambda: _lookup_group("survivor"), 30, "the group after the restart")
    assert again == pg
    entry = placement_group_table(pg)
    assert entry["state"] == "CREATED" and entry["bundles_to_node_id"] == placed
    assert ray.get([_on(pg, i).remote() for i in range(2)], timeout=30) == [placed[0], placed[1]]
    remove_placement_group(pg)
    wait_for(lambda: not any("_group_" in k for k in ray.available_resources()), what="bundles freed")
