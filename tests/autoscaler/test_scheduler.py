"""The autoscaler's state machine: plain calls, no processes."""

from __future__ import annotations

import pytest

from solray.autoscaler import Autoscaler, AutoscalerConfig, Demand, NodeState, NodeType

CPU2 = NodeType("cpu2", {"CPU": 2}, min_workers=0, max_workers=4)
GPU = NodeType("gpu", {"CPU": 4, "GPU": 1}, min_workers=0, max_workers=1)


def head(cpus=1.0, free=None):
    return NodeState("head", None, {"CPU": cpus, "memory": 1e9}, {"CPU": cpus if free is None else free, "memory": 1e9})


def worker(pid, t=CPU2, free=None):
    total = dict(t.resources)
    return NodeState(pid, t.name, total, dict(total) if free is None else free)


def scaler(**kw):
    kw.setdefault("idle_timeout_s", 10)
    return Autoscaler(AutoscalerConfig({t.name: t for t in (CPU2, GPU)}, **kw))


def test_bin_packs_pending_tasks_onto_the_fewest_nodes():
    d = scaler().update([head(free=0)], Demand([{"CPU": 1}] * 5), now=0)
    assert d.launch == {"cpu2": 3}  # 5 one-CPU tasks -> three 2-CPU nodes
    d = scaler().update([head(free=1)], Demand([{"CPU": 1}] * 5), now=0)
    assert d.launch == {"cpu2": 2}  # one runs on the head's free CPU


def test_gpu_demand_picks_the_gpu_type_and_max_workers_caps():
    d = scaler().update([head()], Demand([{"GPU": 1, "CPU": 1}] * 3), now=0)
    assert d.launch == {"gpu": 1}
    assert d.infeasible == []
    d = scaler().update([head()], Demand([{"GPU": 2}]), now=0)
    assert d.launch == {} and d.infeasible == [{"GPU": 2}]


def test_launching_nodes_count_as_capacity():
    starting = NodeState("w1", "cpu2", {"CPU": 2}, {"CPU": 2}, launching=True)
    d = scaler().update([head(free=0), starting], Demand([{"CPU": 1}] * 3), now=0)
    assert d.launch == {"cpu2": 1}


def test_global_max_workers_and_upscaling_speed():
    d = scaler(max_workers=2).update([head(free=0)], Demand([{"CPU": 1}] * 20), now=0)
    assert d.launch == {"cpu2": 2}
    big = NodeType("big", {"CPU": 1}, max_workers=100)
    s = Autoscaler(AutoscalerConfig({"big": big}, upscaling_speed=1.0))
    nodes = [head(free=0)] + [worker(f"w{i}", big, {"CPU": 0}) for i in range(9)]
    d = s.update(nodes, Demand([{"CPU": 1}] * 50), now=0)
    assert d.launch == {"big": 10}  # at most 100% growth per pass (10 nodes)


def test_min_workers_are_kept():
    t = NodeType("cpu2", {"CPU": 2}, min_workers=2, max_workers=4)
    s = Autoscaler(AutoscalerConfig({"cpu2": t}, idle_timeout_s=0))
    assert s.update([head()], Demand(), now=0).launch == {"cpu2": 2}
    d = s.update([head(), worker("a", t), worker("b", t)], Demand(), now=100)
    assert d.terminate == []


def test_idle_nodes_go_after_the_timeout_only():
    s = scaler()
    nodes = [head(), worker("a"), worker("b", free={"CPU": 1})]
    assert s.update(nodes, Demand(), now=0).terminate == []
    assert s.update(nodes, Demand(), now=9.9).terminate == []
    assert s.update(nodes, Demand(), now=10).terminate == ["a"]  # b is busy
    nodes[2] = worker("b")  # b is seen idle from t=15: its idle clock starts then
    assert s.update(nodes[:1] + nodes[2:], Demand(), now=15).terminate == []
    assert s.update(nodes[:1] + nodes[2:], Demand(), now=24).terminate == []
    assert s.update(nodes[:1] + nodes[2:], Demand(), now=25).terminate == ["b"]


def test_placement_groups_and_strict_pack():
    pg = {"bundles": [{"CPU": 1}, {"CPU": 1}], "strategy": "STRICT_PACK"}
    d = scaler().update([head(free=0)], Demand(placement_groups=[pg]), now=0)
    assert d.launch == {"cpu2": 1}
    pg = {"bundles": [{"CPU": 2}] * 2, "strategy": "PACK"}
    assert scaler().update([head(free=0)], Demand(placement_groups=[pg]), now=0).launch == {"cpu2": 2}


def test_request_resources_packs_onto_whole_nodes_and_keeps_them():
    s = scaler()
    d = s.update([head(cpus=1, free=0)], Demand(requested=[{"CPU": 1}] * 3), now=0)
    assert d.launch == {"cpu2": 1}  # the head's 1 CPU counts (in total, not free)
    nodes = [head(), worker("a")]
    assert s.update(nodes, Demand(requested=[{"CPU": 1}] * 3), now=100).terminate == []
    assert s.update(nodes, Demand(), now=200).terminate == []  # idle clock restarted
    assert s.update(nodes, Demand(), now=210).terminate == ["a"]


@pytest.mark.parametrize("kw, words", [
    ({"idle_timeout_s": -1}, "idle timeout"),
    ({"upscaling_speed": 0}, "upscaling_speed"),
])
def test_bad_config(kw, words):
    with pytest.raises(ValueError, match=words):
        AutoscalerConfig({}, **kw)
    with pytest.raises(ValueError, match="min_workers <= max_workers"):
        AutoscalerConfig({"x": NodeType("x", {"CPU": 1}, min_workers=3, max_workers=1)})
