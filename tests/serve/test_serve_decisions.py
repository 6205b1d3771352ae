"""The decision logic alone (no cluster): replica choice, autoscaling, reconciliation plans."""

import pytest

from solray.serve._internal.autoscaling import AutoscalingPolicy
from solray.serve._internal.deployment_state import RUNNING, STOPPING, DeploymentState
from solray.serve._internal.router import ReplicaScheduler
from solray.serve.config import AutoscalingConfig, HTTPOptions


def test_scheduler_prefers_less_loaded_and_respects_capacity():
    s = ReplicaScheduler()
    s.update(["a", "b"], max_ongoing=2)
    s.ongoing["a"] = 1
    assert s.choose() == "b"  # two choices among two: the idle one wins
    assert s.choose() in ("a", "b")
    assert s.choose() in ("a", "b")
    assert s.choose() is None  # both at max_ongoing_requests
    s.release("a")
    assert s.choose() == "a"


def test_scheduler_keeps_models_on_their_replica():
    s = ReplicaScheduler()
    s.update(["a", "b", "c"], max_ongoing=100)
    first = s.choose("m1")
    s.release(first)
    assert all(s.choose("m1") == first for _ in range(20))
    s.update(["x"], max_ongoing=100)  # the replica went away: the model moves
    assert s.choose("m1") == "x"


def test_autoscaling_waits_for_delays_and_clips_to_bounds():
    policy = AutoscalingPolicy(AutoscalingConfig(min_replicas=1, max_replicas=4, target_ongoing_requests=2,
                                                 upscale_delay_s=1, downscale_delay_s=5, look_back_period_s=10))
    policy.record(0, 20)
    assert policy.decide(0, 1) == 1  # wants 4, but not for long enough yet
    assert policy.decide(1.5, 1) == 4  # 20 / 2 = 10, clipped to max_replicas
    policy.samples.clear()
    policy.record(2, 0)
    assert policy.decide(2, 4) == 4
    assert policy.decide(7.5, 4) == 1


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="target_ongoing_requests"):
        AutoscalingConfig(target_ongoing_requests=0)
    with pytest.raises(ValueError, match="initial_replicas"):
        AutoscalingConfig(min_replicas=1, max_replicas=2, initial_replicas=5)
    with pytest.raises(ValueError, match="port"):
        HTTPOptions(port=70000)
    with pytest.raises(ValueError, match="Unknown http_options"):
        HTTPOptions.from_value({"prot": 1})


def _spec(version="v1", **config):
    return {"name": "D", "version": version, "def_blob": b"", "args_blob": b"",
            "config": {"num_replicas": 2, **config}}


def test_plan_rolls_new_versions_in_before_old_ones_leave():
    dep = DeploymentState("app", _spec(), now=0)
    started = dep.plan(0)["start"]
    assert len(started) == 2
    for r in started:
        dep.on_started(r.id, 1)
    dep.apply(_spec("v2"), now=2)
    plan = dep.plan(2)
    assert len(plan["start"]) == 2 and plan["stop"] == []  # old replicas keep serving
    assert len(dep.routable()) == 2
    new = plan["start"]
    dep.on_started(new[0].id, 3)
    assert dep.plan(3)["stop"] == []  # not until every new replica is up
    dep.on_started(new[1].id, 4)
    stopped = dep.plan(4)["stop"]
    assert sorted(r.id for r in stopped) == sorted(r.id for r in started)
    assert all(r.state == STOPPING for r in stopped)
    assert {r.id for r in dep.routable()} == {r.id for r in new}


def test_plan_reconfigures_in_place_and_gives_up_after_repeated_start_failures():
    dep = DeploymentState("app", _spec(num_replicas=1, user_config={"a": 1}), now=0)
    (r,) = dep.plan(0)["start"]
    dep.on_started(r.id, 0)
    dep.apply(_spec(num_replicas=1, user_config={"a": 2}), now=1)
    plan = dep.plan(1)
    assert plan["start"] == [] and plan["reconfigure"] == [r] and r.state == RUNNING
    dep.apply(_spec("v2", num_replicas=1), now=2)
    for _ in range(3):
        (bad,) = dep.plan(2)["start"]
        dep.on_start_failed(bad.id, "ValueError: broken constructor")
    assert dep.plan(3)["start"] == []
    assert dep.status() == "DEPLOY_FAILED" and "broken constructor" in dep.message
    assert [x.id for x in dep.routable()] == [r.id]  # the old version keeps serving
