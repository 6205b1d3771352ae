"""Scheduler and stopper decisions as pure logic: trials are plain objects, no cluster."""

from __future__ import annotations

import random

import pytest

from solray import tune
from solray.tune._internal.trial import Trial
from solray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
    TrialScheduler,
)
from solray.tune.schedulers.pbt import explore
from solray.tune.stopper import (
    CombinedStopper,
    ExperimentPlateauStopper,
    MaximumIterationStopper,
    TimeoutStopper,
    TrialPlateauStopper,
    as_stopper,
)

CONTINUE, STOP, PAUSE, NOOP = TrialScheduler.CONTINUE, TrialScheduler.STOP, TrialScheduler.PAUSE, TrialScheduler.NOOP


def make_trials(n, config=None):
    trials = [Trial(f"t{i}", dict(config or {}), f"t{i}", f"t{i}", None) for i in range(n)]
    for t in trials:
        t.status = "RUNNING"
    return trials


class FakeController:
    """Records what a scheduler asks of the controller."""

    def __init__(self, trials, more=False):
        self.trials = trials
        self.stopped, self.resumed, self.restarted = [], [], []
        self.more = more

    def stop_trial(self, trial):
        self.stopped.append(trial.trial_id)
        trial.status = "TERMINATED"

    def resume_trial(self, trial):
        self.resumed.append(trial.trial_id)
        trial.status = "PENDING"

    def restart_trial(self, trial, config, checkpoint):
        self.restarted.append((trial.trial_id, config, checkpoint))

    def more_trials_coming(self):
        return self.more


def test_fifo_never_stops_and_runs_pending_first():
    trials = make_trials(3)
    trials[1].status, trials[2].status = "PAUSED", "PENDING"
    fifo = FIFOScheduler()
    assert fifo.on_trial_result(None, trials[0], {"x": 1}) == CONTINUE
    assert fifo.choose_trial_to_run(FakeController(trials)) is trials[2]


def test_asha_stops_trials_below_the_rung_cutoff():
    asha = ASHAScheduler(metric="acc", mode="max", grace_period=1, max_t=9, reduction_factor=3)
    trials = make_trials(4)
    for t in trials:
        asha.on_trial_add(None, t)
    # rung at t=1: the first trial sets the bar, worse ones stop, better ones go on
    assert asha.on_trial_result(None, trials[0], {"training_iteration": 1, "acc": 0.5}) == CONTINUE
    assert asha.on_trial_result(None, trials[1], {"training_iteration": 1, "acc": 0.9}) == CONTINUE
    assert asha.on_trial_result(None, trials[2], {"training_iteration": 1, "acc": 0.1}) == STOP
    assert asha.on_trial_result(None, trials[3], {"training_iteration": 2, "acc": 0.95}) == CONTINUE
    # between rungs nothing is judged again
    assert asha.on_trial_result(None, trials[0], {"training_iteration": 2, "acc": 0.0}) == CONTINUE
    # rung at t=3
    assert asha.on_trial_result(None, trials[1], {"training_iteration": 3, "acc": 0.9}) == CONTINUE
    assert asha.on_trial_result(None, trials[0], {"training_iteration": 3, "acc": 0.2}) == STOP
    # max_t stops everyone
    assert asha.on_trial_result(None, trials[1], {"training_iteration": 9, "acc": 1.0}) == STOP


def test_asha_mode_min_and_validation():
    asha = ASHAScheduler(metric="loss", mode="min", grace_period=1, max_t=10, reduction_factor=2)
    a, b = make_trials(2)
    asha.on_trial_add(None, a)
    asha.on_trial_add(None, b)
    asha.on_trial_result(None, a, {"training_iteration": 1, "loss": 1.0})
    assert asha.on_trial_result(None, b, {"training_iteration": 1, "loss": 5.0}) == STOP
    with pytest.raises(ValueError, match="reduction_factor"):
        ASHAScheduler(reduction_factor=1)
    with pytest.raises(ValueError, match="max_t"):
        ASHAScheduler(grace_period=10, max_t=5)
    with pytest.raises(ValueError, match="needs metric and mode"):
        ASHAScheduler().on_trial_add(None, a)


def test_hyperband_pauses_at_milestones_then_keeps_the_best():
    hb = HyperBandScheduler(metric="acc", mode="max", max_t=9, reduction_factor=3)
    # brackets: s=2 holds ceil(3/3 * 9) = 9 trials starting at 1 iteration
    trials = make_trials(9)
    controller = FakeController(trials)
    for t in trials:
        hb.on_trial_add(controller, t)
    decisions = []
    for i, t in enumerate(trials[:-1]):
        decisions.append(hb.on_trial_result(controller, t, {"training_iteration": 1, "acc": i / 10}))
        t.status = "PAUSED"
    assert decisions == [PAUSE] * 8
    # the last arrival completes the bracket: the best 9/3 = 3 go on, the rest stop
    assert hb.on_trial_result(controller, trials[8], {"training_iteration": 1, "acc": 0.95}) == CONTINUE
    assert sorted(controller.resumed) == ["t6", "t7"]
    assert sorted(controller.stopped) == [f"t{i}" for i in range(6)]
    # next milestone is 3 iterations
    assert hb.on_trial_result(controller, trials[8], {"training_iteration": 2, "acc": 0.95}) == CONTINUE
    assert hb.on_trial_result(controller, trials[8], {"training_iteration": 3, "acc": 0.95}) == PAUSE


def test_hyperband_waits_for_more_trials_only_while_they_may_come():
    hb = HyperBandScheduler(metric="acc", mode="max", max_t=9, reduction_factor=3)
    a, b = make_trials(2)
    controller = FakeController([a, b], more=False)
    hb.on_trial_add(controller, a)
    hb.on_trial_add(controller, b)
    assert hb.on_trial_result(controller, a, {"training_iteration": 1, "acc": 0.1}) == PAUSE
    a.status = "PAUSED"
    # bracket not full but no more trials: halve now; b (the best) goes on, a stops
    assert hb.on_trial_result(controller, b, {"training_iteration": 1, "acc": 0.9}) == CONTINUE
    assert controller.stopped == ["t0"]


def test_median_stopping_rule():
    rule = MedianStoppingRule(time_attr="training_iteration", metric="acc", mode="max", grace_period=2,
                              min_samples_required=2)
    trials = make_trials(4)
    for t in trials:
        rule.on_trial_add(None, t)
    for step in (1, 2, 3):
        for t, level in zip(trials[:3], (0.5, 0.5, 0.5), strict=True):
            assert rule.on_trial_result(None, t, {"training_iteration": step, "acc": level}) == CONTINUE
    assert rule.on_trial_result(None, trials[3], {"training_iteration": 1, "acc": 0.1}) == CONTINUE  # grace
    assert rule.on_trial_result(None, trials[3], {"training_iteration": 2, "acc": 0.2}) == STOP
    soft = MedianStoppingRule(time_attr="training_iteration", metric="acc", mode="max", grace_period=0,
                              min_samples_required=1, hard_stop=False)
    a, b = make_trials(2)
    soft.on_trial_result(None, a, {"training_iteration": 1, "acc": 1.0})
    assert soft.on_trial_result(None, b, {"training_iteration": 1, "acc": 0.0}) == PAUSE


def test_pbt_exploits_the_top_and_explores():
    pbt = PopulationBasedTraining(time_attr="training_iteration", metric="score", mode="max",
                                  perturbation_interval=2, quantile_fraction=0.5, resample_probability=0.0,
                                  hyperparam_mutations={"lr": tune.uniform(0.001, 1.0), "opt": ["a", "b", "c"]},
                                  seed=3)
    good, bad = make_trials(2, {"lr": 0.5, "opt": "b"})
    controller = FakeController([good, bad])
    for t in (good, bad):
        pbt.on_trial_add(controller, t)
    good.checkpoint = "ckpt-of-good"
    assert pbt.on_trial_result(controller, good, {"training_iteration": 1, "score": 10}) == CONTINUE
    assert pbt.on_trial_result(controller, bad, {"training_iteration": 1, "score": 1}) == CONTINUE
    assert pbt.on_trial_result(controller, good, {"training_iteration": 2, "score": 10}) == CONTINUE  # top
    assert pbt.on_trial_result(controller, bad, {"training_iteration": 2, "score": 1}) == NOOP
    [(trial_id, config, checkpoint)] = controller.restarted
    assert trial_id == "t1" and checkpoint == "ckpt-of-good"
    assert config["lr"] in (pytest.approx(0.5 * 1.2), pytest.approx(0.5 * 0.8))
    assert config["opt"] in ("a", "c")  # a neighbour of "b"
    assert pbt.num_perturbations == 1


def test_pbt_explore_and_validation():
    rng = random.Random(0)
    new = explore({"a": 10, "nested": {"m": 0.5}}, {"a": [1, 10, 100], "nested": {"m": lambda: 7.0}},
                  resample_probability=1.0, perturbation_factors=(1.2, 0.8), rng=rng)
    assert new["a"] in (1, 10, 100) and new["nested"]["m"] == 7.0
    with pytest.raises(ValueError, match="hyperparam_mutations or custom_explore_fn"):
        PopulationBasedTraining(metric="m", mode="max")
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        PopulationBasedTraining(mode="maximum", hyperparam_mutations={"a": [1]})


def test_stoppers():
    dict_stop = as_stopper({"training_iteration": 3, "acc": 0.9})
    assert not dict_stop("t", {"training_iteration": 2, "acc": 0.5})
    assert dict_stop("t", {"training_iteration": 2, "acc": 0.95})
    fn_stop = as_stopper(lambda trial_id, result: result["x"] > 1)
    assert fn_stop("t", {"x": 2}) and not fn_stop("t", {"x": 0})
    with pytest.raises(ValueError, match="expected a dict, a function or a tune.Stopper"):
        as_stopper(5)
    max_iter = MaximumIterationStopper(2)
    assert [max_iter("t", {}), max_iter("t", {})] == [False, True]
    plateau = TrialPlateauStopper("loss", std=0.01, num_results=3, grace_period=3)
    assert [plateau("t", {"loss": v}) for v in (5, 1, 1.0, 1.0, 1.0)] == [False, False, False, True, True]
    experiment = ExperimentPlateauStopper("loss", top=2, std=0.001, mode="min")
    experiment("a", {"loss": 1.0})
    assert experiment("b", {"loss": 1.0}) and experiment.stop_all()
    timeout = TimeoutStopper(1000)
    assert not timeout.stop_all()
    combined = CombinedStopper(MaximumIterationStopper(1), TimeoutStopper(1000))
    assert combined("t", {}) and not combined.stop_all()
