"""Tuner end to end on a real 2-CPU cluster: trainables, results, files, failures, input
checks, resources."""

from __future__ import annotations

import glob
import json
import os
import tempfile
import threading

import cloudpickle
import numpy as np
import pytest
from helpers import Gate, arrive_and_wait  # noqa: E402  (tests/ is on sys.path)

import solray
from solray import train, tune
from solray.tune import Checkpoint, FailureConfig, RunConfig, TuneConfig, Tuner
from solray.tune._internal.controller import MetricNotReported


def quadratic(config):
    for step in range(1, 6):
        # train.report and tune.report reach the same trial session
        report = train.report if step % 2 else tune.report
        report({"loss": (config["x"] - 3) ** 2 + 1 / step, "step": step})


def test_function_trainable_result_grid_and_files(ray_2_cpus, storage):
    grid = Tuner(quadratic, param_space={"x": tune.grid_search([1, 2, 3, 4])},
                 tune_config=TuneConfig(metric="loss", mode="min"),
                 run_config=RunConfig(name="quad", storage_path=storage, verbose=0)).fit()
    assert len(grid) == 4 and grid.num_errors == 0 and grid.num_terminated == 4 and not grid.errors
    assert sorted(r.config["x"] for r in grid) == [1, 2, 3, 4]
    assert grid[0].metrics["training_iteration"] == 5
    best = grid.get_best_result()
    assert best.config == {"x": 3} and best.metrics["loss"] == pytest.approx(0.2)
    assert grid.get_best_result("loss", "max", scope="all").config["x"] == 1
    assert grid.get_best_result("loss", "min", scope="avg").config["x"] == 3
    df = grid.get_dataframe()
    assert sorted(df["config/x"]) == [1, 2, 3, 4] and "loss" in df
    assert len(best.metrics_dataframe) == 5
    # the trial folder: results, params and TensorBoard events
    assert best.path.startswith(os.path.join(storage, "quad"))
    rows = [json.loads(line) for line in open(os.path.join(best.path, "result.json"))]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert open(os.path.join(best.path, "progress.csv")).readline().startswith("loss,step")
    assert json.load(open(os.path.join(best.path, "params.json"))) == {"x": 3}
    [events] = glob.glob(os.path.join(best.path, "events.out.tfevents*"))
    assert read_scalars(events)["solray/loss"] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2], rel=1e-6)
    assert Tuner.can_restore(os.path.join(storage, "quad")) and not Tuner.can_restore(storage)


def read_scalars(path):
    """``{tag: [values]}`` from a TensorBoard event file (TFRecord framing of Event protos)."""
    import struct

    from tensorboardX.proto import event_pb2

    scalars = {}
    with open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            event = event_pb2.Event.FromString(f.read(length))
            f.read(4)
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append(value.simple_value)
    return scalars


class Accumulator(tune.Trainable):
    def setup(self, config):
        self.rate = config["rate"]
        self.total = 0.0
        self.resets = 0

    def step(self):
        self.total += self.rate
        return {"total": self.total, "pid": os.getpid()}

    def save_checkpoint(self, checkpoint_dir):
        return {"total": self.total}

    def load_checkpoint(self, checkpoint):
        self.total = checkpoint["total"]

    def reset_config(self, new_config):
        self.rate = new_config["rate"]
        self.total = 0.0
        return True


def test_class_trainable_stop_checkpoints_and_reuse(ray_2_cpus, storage):
    grid = Tuner(Accumulator, param_space={"rate": tune.grid_search([1.0, 2.0, 3.0, 4.0])},
                 tune_config=TuneConfig(metric="total", mode="max", reuse_actors=True),
                 run_config=RunConfig(storage_path=storage, verbose=0, stop={"training_iteration": 3},
                                      checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True))).fit()
    assert sorted(r.metrics["total"] for r in grid) == [3.0, 6.0, 9.0, 12.0]
    best = grid.get_best_result()
    assert best.config == {"rate": 4.0}
    assert best.checkpoint is not None and os.path.basename(best.checkpoint.path) == "checkpoint_000000"
    # four trials ran in at most two actors (one per CPU): they were reused
    assert len({r.metrics["pid"] for r in grid}) <= 2


def flaky(config):
    marker = os.path.join(config["dir"], f"attempt-{config['kind']}")
    attempts = len(glob.glob(marker + "*"))
    open(f"{marker}-{attempts}", "w").close()
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start = int(open(os.path.join(folder, "step")).read())
    for step in range(start, 4):
        folder = tempfile.mkdtemp()
        open(os.path.join(folder, "step"), "w").write(str(step + 1))
        tune.report({"score": step, "resumed_from": start}, checkpoint=Checkpoint.from_directory(folder))
        if config["kind"] == "once" and attempts == 0 and step == 1:
            raise RuntimeError("transient failure")
    if config["kind"] == "always":
        raise ValueError("this trial always fails")
    if config["kind"] == "crash":
        os._exit(3)


def test_failures_are_isolated_and_retried(ray_2_cpus, storage, tmp_path):
    kinds = ["ok", "once", "always", "crash"]
    grid = Tuner(flaky, param_space={"kind": tune.grid_search(kinds), "dir": str(tmp_path)},
                 tune_config=TuneConfig(metric="score", mode="max"),
                 run_config=RunConfig(storage_path=storage, verbose=0,
                                      failure_config=FailureConfig(max_failures=1))).fit()
    by_kind = {r.config["kind"]: r for r in grid}
    assert by_kind["ok"].error is None and by_kind["ok"].metrics["score"] == 3
    # retried once, from its latest checkpoint (step 2 of 4)
    assert by_kind["once"].error is None and by_kind["once"].metrics["resumed_from"] == 2
    assert len(glob.glob(str(tmp_path / "attempt-once*"))) == 2
    assert isinstance(by_kind["always"].error, ValueError) and "always fails" in str(by_kind["always"].error)
    assert len(glob.glob(str(tmp_path / "attempt-always*"))) == 2  # first try + one retry
    assert by_kind["crash"].error is not None
    assert grid.num_errors == 2 and grid.num_terminated == 2
    assert "always fails" in open(os.path.join(by_kind["always"].path, "error.txt")).read()


def touch_and_report(config):
    open(os.path.join(config["dir"], f"started-{config['i']}"), "w").close()
    tune.report({"accuracy": 1.0})


def test_bad_input_fails_before_trials_run(ray_2_cpus, storage, tmp_path):
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        TuneConfig(metric="loss", mode="minimize")
    with pytest.raises(ValueError, match=r"tune.uniform: lower=2 must be less than upper=1"):
        Tuner(quadratic, param_space={"x": tune.uniform(2, 1)})
    with pytest.raises(ValueError, match="grid_search needs a non-empty list"):
        Tuner(quadratic, param_space={"x": {"grid_search": "abc"}})
    with pytest.raises(ValueError, match="needs metric and mode"):
        Tuner(quadratic, tune_config=TuneConfig(scheduler=tune.schedulers.ASHAScheduler()))
    with pytest.raises(ValueError, match="must take exactly one argument"):
        Tuner(lambda a, b: None).fit()
    with pytest.raises(ValueError, match="could never run"):
        Tuner(tune.with_resources(quadratic, {"cpu": 64}), param_space={"x": 1},
              run_config=RunConfig(storage_path=storage, verbose=0)).fit()
    # a metric the trainable never reports: the run stops at the first result
    with pytest.raises(MetricNotReported, match=r"without the metric 'loss'.*\['accuracy'\]"):
        Tuner(touch_and_report, param_space={"i": tune.grid_search(list(range(40))), "dir": str(tmp_path)},
              tune_config=TuneConfig(metric="loss", mode="min"),
              run_config=RunConfig(storage_path=storage, verbose=0)).fit()
    assert len(os.listdir(tmp_path)) <= 4


def sum_of_data(config, data):
    tune.report({"total": float(data.sum()) * config["scale"]})


def test_with_parameters_puts_data_once(ray_2_cpus, storage):
    data = np.ones(2_000_000)  # 16 MB
    trainable = tune.with_parameters(sum_of_data, data=data)
    assert len(cloudpickle.dumps(trainable)) < 100_000  # the array travels by reference
    grid = Tuner(trainable, param_space={"scale": tune.grid_search([1, 2, 3])},
                 run_config=RunConfig(storage_path=storage, verbose=0)).fit()
    assert sorted(r.metrics["total"] for r in grid) == [2e6, 4e6, 6e6]


def fit_in_background(tuner):
    """Run ``tuner.fit()`` in a thread (the test meanwhile drives a Gate); returns a
    function that joins it and gives the ResultGrid."""
    results = {}
    runner = threading.Thread(target=lambda: results.setdefault("grid", tuner.fit()))
    runner.start()

    def join():
        runner.join(120)
        return results["grid"]

    return join


def meet(config):
    if config.get("gate"):
        arrive_and_wait(config["gate"])
    tune.report({"pid": os.getpid(), "gpus": len(solray.get_gpu_ids())})


def test_with_resources_sets_concurrency(ray_2_cpus, storage):
    # one CPU each: two trials run at once (both reach the gate before either goes on)
    with Gate() as gate:
        join = fit_in_background(Tuner(tune.with_resources(meet, {"cpu": 1}),
                                       param_space={"i": tune.grid_search([0, 1]), "gate": gate.address},
                                       run_config=RunConfig(storage_path=storage, verbose=0)))
        gate.wait_arrivals(2, timeout=60)
    assert join().num_terminated == 2
    # two CPUs each on a 2-CPU cluster: one at a time, and max_concurrent_trials=1 alike
    for trainable, tc in ((tune.with_resources(meet, tune.PlacementGroupFactory([{"CPU": 2}])), TuneConfig()),
                          (meet, TuneConfig(max_concurrent_trials=1))):
        watch = Watch()
        grid = Tuner(trainable, param_space={"i": tune.grid_search([0, 1, 2])}, tune_config=tc,
                     run_config=RunConfig(storage_path=storage, verbose=0, callbacks=[watch])).fit()
        assert grid.num_terminated == 3 and max(watch.seen) == 1


class Watch(tune.Callback):
    """Records how many trials run each time one starts."""

    def __init__(self):
        self.seen = []

    def on_trial_start(self, iteration, trials, trial, **info):
        self.seen.append(sum(t.status == "RUNNING" for t in trials))


def slow_curve(config):
    for step in range(1, 17):
        tune.report({"loss": config["a"] / step})


def test_asha_stops_bad_trials_early(ray_2_cpus, storage):
    asha = tune.schedulers.ASHAScheduler(max_t=16, grace_period=2, reduction_factor=2)
    grid = Tuner(slow_curve, param_space={"a": tune.grid_search([1, 2, 3, 4, 5, 6, 7, 8])},
                 tune_config=TuneConfig(metric="loss", mode="min", scheduler=asha),
                 run_config=RunConfig(storage_path=storage, verbose=0)).fit()
    iterations = {r.config["a"]: r.metrics["training_iteration"] for r in grid}
    assert iterations[1] == 16  # the best runs to max_t
    assert min(iterations.values()) == 2 and sum(v < 16 for v in iterations.values()) >= 4
    assert grid.get_best_result().config == {"a": 1}


def pbt_trainable(config):
    value, start = 0.0, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            value, start = json.load(open(os.path.join(folder, "state.json")))
    arrive_and_wait(config["gate"])  # both trials run side by side
    for step in range(start, 12):
        value += config["lr"]
        folder = tempfile.mkdtemp()
        json.dump([value, step + 1], open(os.path.join(folder, "state.json"), "w"))
        tune.report({"value": value, "lr": config["lr"]}, checkpoint=Checkpoint.from_directory(folder))


def test_pbt_copies_the_best_checkpoint(ray_2_cpus, storage):
    pbt = tune.schedulers.PopulationBasedTraining(
        time_attr="training_iteration", perturbation_interval=3, quantile_fraction=0.5,
        hyperparam_mutations={"lr": [0.1, 1.0, 10.0]}, resample_probability=0.0, seed=0)
    with Gate() as gate:
        join = fit_in_background(
            Tuner(pbt_trainable, param_space={"lr": tune.grid_search([0.1, 10.0]), "gate": gate.address},
                  tune_config=TuneConfig(metric="value", mode="max", scheduler=pbt),
                  run_config=RunConfig(storage_path=storage, verbose=0)))
        gate.wait_arrivals(2, timeout=60)
    grid = join()
    assert grid.num_errors == 0 and pbt.num_perturbations >= 1
    _, loser, donor, old, new = pbt.history[0]
    assert old["lr"] == 0.1 and new["lr"] in (1.0, 10.0)
    # the exploited trial continued from the donor's value, so it ends far above 12 * 0.1
    assert min(r.metrics["value"] for r in grid) > 5


def resumable(config):
    checkpoint, start = tune.get_checkpoint(), 0
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start = json.load(open(os.path.join(folder, "step")))
    for step in range(start, 9):
        folder = tempfile.mkdtemp()
        json.dump(step + 1, open(os.path.join(folder, "step"), "w"))
        tune.report({"acc": config["a"] * (step + 1), "resumed_at": start}, checkpoint=Checkpoint.from_directory(folder))


def test_hyperband_pauses_and_resumes_from_checkpoints(ray_2_cpus, storage):
    hyperband = tune.schedulers.HyperBandScheduler(max_t=9, reduction_factor=3)
    grid = Tuner(resumable, param_space={"a": tune.grid_search(list(range(1, 10)))},
                 tune_config=TuneConfig(metric="acc", mode="max", scheduler=hyperband),
                 run_config=RunConfig(storage_path=storage, verbose=0)).fit()
    outcome = sorted((r.config["a"], r.metrics["training_iteration"], r.metrics["resumed_at"]) for r in grid)
    # Which trials pause at which rung depends on the order results arrive; what holds in
    # every order: the weakest stop after the first rung, the best reaches max_t, and a
    # trial that paused resumed from its own checkpoint (resumed_at < its last iteration).
    assert [it for _a, it, _r in outcome[:3]] == [1, 1, 1]
    assert outcome[8][:2] == (9, 9)
    resumed = [(a, it, at) for a, it, at in outcome if at > 0]
    assert resumed and all(0 < at < it for _a, it, at in resumed)


def test_optuna_in_a_tuner(ray_2_cpus, storage):
    from solray.tune.search.optuna import OptunaSearch

    for searcher in (OptunaSearch(seed=0),):
        grid = Tuner(quadratic, param_space={"x": tune.uniform(0, 6)},
                     tune_config=TuneConfig(metric="loss", mode="min", num_samples=4,
                                            search_alg=tune.search.ConcurrencyLimiter(searcher, 2)),
                     run_config=RunConfig(storage_path=storage, verbose=0)).fit()
        assert len(grid) == 4 and grid.num_errors == 0
        assert all(0 <= r.config["x"] <= 6 for r in grid)


def context_reporter(config):
    context = tune.get_context()
    tune.report({"name": context.get_trial_name(), "id": context.get_trial_id(), "i": config["i"]})


def test_names_callbacks_and_stoppers(ray_2_cpus, storage, capsys):
    events = []

    class Record(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            events.append(trial.trial_name)

    grid = Tuner(context_reporter, param_space={"i": tune.grid_search([0, 1])},
                 tune_config=TuneConfig(trial_name_creator=lambda t: f"trial-{t.config['i']}"),
                 run_config=RunConfig(storage_path=storage, verbose=1, callbacks=[Record()])).fit()
    assert sorted(r.metrics["name"] for r in grid) == ["trial-0", "trial-1"] == sorted(events)
    assert all(os.path.basename(r.path).startswith("trial-") for r in grid)
    out = capsys.readouterr().out
    assert "Trial status: 2 TERMINATED" in out and "| trial-0" in out
    # a stopper function, and the experiment-wide time budget
    grid = Tuner(slow_curve, param_space={"a": tune.grid_search([1, 2])},
                 run_config=RunConfig(storage_path=storage, verbose=0,
                                      stop=lambda trial_id, result: result["training_iteration"] >= 4)).fit()
    assert [r.metrics["training_iteration"] for r in grid] == [4, 4]
    grid = Tuner(endless, param_space={"i": tune.grid_search([0, 1, 2])},
                 tune_config=TuneConfig(time_budget_s=1.0),
                 run_config=RunConfig(storage_path=storage, verbose=0)).fit()
    assert grid.num_errors == 0 and all(r.metrics is None or r.metrics["training_iteration"] >= 1 for r in grid)


def endless(config):
    while True:
        tune.report({"alive": 1})


@solray.remote(num_cpus=1)
def in_bundle():
    return solray.get_runtime_context().get_placement_group_id()


def uses_its_group(config):
    from solray.air._internal import session
    from solray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    current = session.current()
    strategy = PlacementGroupSchedulingStrategy(current.placement_group, current.first_worker_bundle)
    group = solray.get(in_bundle.options(scheduling_strategy=strategy).remote())
    tune.report({"group": group, "mine": current.placement_group.id.hex(), "first": current.first_worker_bundle})


def test_placement_group_factory_reserves_worker_bundles(ray_2_cpus, storage):
    # the trial takes bundle 0; its workers (here: one task) go to bundle 1 of its group
    factory = tune.PlacementGroupFactory([{"CPU": 1}, {"CPU": 1}])
    grid = Tuner(tune.with_resources(uses_its_group, factory), param_space={"i": tune.grid_search([0, 1])},
                 run_config=RunConfig(storage_path=storage, verbose=0)).fit()
    assert grid.num_errors == 0, grid.errors
    for result in grid:
        assert result.metrics["group"] == result.metrics["mine"] and result.metrics["first"] == 1
