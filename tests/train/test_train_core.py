"""DataParallelTrainer on a real 2-CPU cluster: ranks, reports, checkpoints, restarts after
a killed worker, errors, and the Tune trainable contract."""

from __future__ import annotations

import os
import signal
import tempfile
import threading

import pytest
from helpers import Gate, Mailbox, arrive_and_wait, post

import solray
import solray.train as train
from solray.air._internal import session as air_session
from solray.train import (
    Checkpoint,
    CheckpointConfig,
    DataParallelTrainer,
    FailureConfig,
    RunConfig,
    ScalingConfig,
)


def _epoch_loop(config):
    """Reports epochs 0..n-1 with a checkpoint each; resumes after the checkpoint's epoch.
    In the first attempt rank 1 posts its PID after epoch ``kill_after`` and waits."""
    ctx = train.get_context()
    start = 0
    checkpoint = train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            start = int(open(os.path.join(d, "epoch")).read()) + 1
        print(f"resumed at epoch {start}")
    for epoch in range(start, config["epochs"]):
        with tempfile.TemporaryDirectory() as d:
            if ctx.get_world_rank() == 0:
                open(os.path.join(d, "epoch"), "w").write(str(epoch))
            train.report({"epoch": epoch, "score": epoch * 10, "resumed_from": start,
                          "world": ctx.get_world_size(), "rank": ctx.get_world_rank()},
                         checkpoint=Checkpoint.from_directory(d) if ctx.get_world_rank() == 0 else None)
        if checkpoint is None and ctx.get_world_rank() == 1 and epoch == config.get("kill_after", -1):
            post(config["mailbox"], str(os.getpid()))
            arrive_and_wait(config["gate"])


def _fit_killing_rank1(storage: str, name: str, epochs: int, kill_after: int, max_failures: int):
    """Fit _epoch_loop on 2 workers; rank 1's process is SIGKILLed after epoch ``kill_after``
    of the first attempt."""
    mailbox, gate = Mailbox(), Gate()

    def kill():
        os.kill(int(mailbox.get(timeout=60)), signal.SIGKILL)

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    config = {"epochs": epochs, "kill_after": kill_after, "mailbox": mailbox.address, "gate": gate.address}
    trainer = DataParallelTrainer(
        _epoch_loop, train_loop_config=config, scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(storage_path=storage, name=name, failure_config=FailureConfig(max_failures=max_failures)))
    try:
        return trainer.fit()
    finally:
        gate.release()
        killer.join(timeout=5)


def test_report_checkpoints_and_result(ray_2_cpus, storage, capfd):
    def loop():
        ctx = train.get_context()
        assert (ctx.get_world_size(), ctx.get_local_world_size(), ctx.get_node_rank()) == (2, 2, 0)
        print(f"hello from rank {ctx.get_world_rank()}")
        for i in range(3):
            with tempfile.TemporaryDirectory() as d:
                open(os.path.join(d, f"rank{ctx.get_world_rank()}"), "w").write(str(i))
                train.report({"i": i, "acc": [0.5, 0.9, 0.7][i]}, checkpoint=Checkpoint.from_directory(d))

    trainer = DataParallelTrainer(
        loop, scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(storage_path=storage, name="basic", checkpoint_config=CheckpointConfig(
            num_to_keep=2, checkpoint_score_attribute="acc")))
    result = trainer.fit()
    assert result.error is None
    assert result.metrics["i"] == 2 and result.metrics["training_iteration"] == 3
    assert result.path == os.path.join(storage, "basic")
    # each round's checkpoint holds both workers' files; only the best and the latest are kept
    assert sorted(os.listdir(result.checkpoint.path)) == [".is_checkpoint", "rank0", "rank1"]
    assert [m["acc"] for _, m in result.best_checkpoints] == [0.9, 0.7]
    assert sorted(n for n in os.listdir(result.path) if n.startswith("checkpoint_")) == [
        "checkpoint_000001", "checkpoint_000002"]
    assert list(result.metrics_dataframe["i"]) == [0, 1, 2]
    loaded = train.Result.from_path(result.path)
    assert loaded.metrics["i"] == 2 and loaded.checkpoint == result.checkpoint
    out = capfd.readouterr().out
    assert "rank=0) hello from rank 0" in out and "rank=1) hello from rank 1" in out
    assert "[DataParallelTrainer] iter" in out  # the live progress line


def test_killed_worker_restarts_from_latest_checkpoint(ray_2_cpus, storage, capfd):
    result = _fit_killing_rank1(storage, "ft", epochs=4, kill_after=1, max_failures=1)
    assert result.error is None
    # the final result is as if nothing happened; the second attempt resumed after epoch 1
    assert result.metrics["epoch"] == 3 and result.metrics["score"] == 30
    assert result.metrics["resumed_from"] == 2
    with result.checkpoint.as_directory() as d:
        assert open(os.path.join(d, "epoch")).read() == "3"
    assert "resumed at epoch 2" in capfd.readouterr().out


def test_retries_exhausted_sets_result_error(ray_2_cpus, storage):
    result = _fit_killing_rank1(storage, "fail", epochs=3, kill_after=0, max_failures=0)
    assert isinstance(result.error, solray.exceptions.RayActorError)
    assert result.metrics["epoch"] == 0  # what was reported before the failure is kept
    assert os.path.exists(os.path.join(result.path, "error.txt"))


def test_training_function_error_is_the_result_error(ray_2_cpus, storage):
    def loop():
        train.report({"step": 1})
        raise ValueError("bad batch")

    result = DataParallelTrainer(loop, scaling_config=ScalingConfig(num_workers=2),
                                 run_config=RunConfig(storage_path=storage, verbose=0)).fit()
    assert result.error is not None and "bad batch" in str(result.error)
    assert result.metrics["step"] == 1


def test_resume_from_checkpoint(ray_2_cpus, storage, tmp_path):
    os.makedirs(tmp_path / "start")
    (tmp_path / "start" / "epoch").write_text("5")
    trainer = DataParallelTrainer(
        _epoch_loop, train_loop_config={"epochs": 7}, scaling_config=ScalingConfig(num_workers=1),
        resume_from_checkpoint=Checkpoint.from_directory(str(tmp_path / "start")),
        run_config=RunConfig(storage_path=f"file://{storage}", name="uri", verbose=0))  # a URI works too
    result = trainer.fit()
    assert list(result.metrics_dataframe["epoch"]) == [6]
    assert result.path == os.path.join(storage, "uri") and os.path.isdir(result.checkpoint.path)


def test_infeasible_scaling_fails_fast(ray_2_cpus):
    trainer = DataParallelTrainer(lambda: None, scaling_config=ScalingConfig(num_workers=3))
    with pytest.raises(ValueError, match=r"never be scheduled.*'CPU': 3.*'CPU': 2"):
        trainer.fit()
    gpu = DataParallelTrainer(lambda: None, scaling_config=ScalingConfig(num_workers=1, use_gpu=True))
    with pytest.raises(ValueError, match="GPU"):
        gpu.fit()


def test_bad_input_errors():
    with pytest.raises(TypeError, match="train_loop_per_worker must be a function"):
        DataParallelTrainer(42)
    with pytest.raises(ValueError, match="no argument or one"):
        DataParallelTrainer(lambda a, b: None)
    with pytest.raises(TypeError, match="scaling_config must be a ScalingConfig"):
        DataParallelTrainer(lambda: None, scaling_config={"num_workers": 2})
    with pytest.raises(TypeError, match=r"datasets\['train'\] must be a solray.data.Dataset"):
        DataParallelTrainer(lambda: None, datasets={"train": [1, 2]})
    with pytest.raises(TypeError, match="train_loop_config must be a dict"):
        DataParallelTrainer(lambda c: None, train_loop_config=[1])
    with pytest.raises(ValueError, match="num_workers"):
        ScalingConfig(num_workers=0)
    with pytest.raises(RuntimeError, match="outside a training loop"):
        train.report({"x": 1})
    with pytest.raises(RuntimeError, match="outside a training loop"):
        train.get_context()


class _TrialSession(air_session.Session):
    """The Tune side of the contract, as a trial actor's session provides it."""

    def __init__(self):
        self.reports = []

    def report(self, metrics, checkpoint=None):
        copied = checkpoint.to_directory() if checkpoint is not None else None  # Tune keeps its own copy
        self.reports.append((metrics, copied))


def test_as_trainable_merges_config_and_forwards_results(ray_2_cpus):
    def loop(config):
        for i in range(2):
            with tempfile.TemporaryDirectory() as d:
                open(os.path.join(d, "lr"), "w").write(str(config["lr"]))
                train.report({"i": i, "lr": config["lr"], "momentum": config["momentum"],
                              "pg": solray.get_runtime_context().get_placement_group_id()},
                             checkpoint=Checkpoint.from_directory(d))

    trainer = DataParallelTrainer(loop, train_loop_config={"lr": 0.1, "momentum": 0.9},
                                  scaling_config=ScalingConfig(num_workers=2))
    trainable = trainer.as_trainable()
    assert trainable._solray_bundles == [{}, {"CPU": 1}, {"CPU": 1}] and trainable._solray_strategy == "PACK"
    assert trainer._param_dict["train_loop_config"] == {"lr": 0.1, "momentum": 0.9}
    session = _TrialSession()
    # Tune reserves the bundles per trial (the empty coordinator bundle dropped) and says
    # where the workers go
    session.placement_group = solray.util.placement_group([{"CPU": 1}, {"CPU": 1}])
    session.first_worker_bundle = 0
    air_session.install(session)
    try:
        trainable({"train_loop_config": {"lr": 0.5}})
    finally:
        air_session.uninstall(session)
        solray.util.remove_placement_group(session.placement_group)
    assert {m["pg"] for m, _ in session.reports} == {session.placement_group.id.hex()}
    assert [m["i"] for m, _ in session.reports] == [0, 1]
    assert all(m["lr"] == 0.5 and m["momentum"] == 0.9 for m, _ in session.reports)
    assert open(os.path.join(session.reports[-1][1], "lr")).read() == "0.5"


def test_trainable_with_datasets_runs_when_the_trial_holds_every_cpu(ray_2_cpus):
    """The datasets are split in the driver by as_trainable(): inside a trial whose
    workers hold both CPUs no Data task has to run."""
    def loop():
        rows = sum(len(b["id"]) for b in train.get_dataset_shard("train").iter_batches(batch_size=None))
        train.report({"rows": rows})

    ds = solray.data.range(90).map_batches(lambda b: {"id": b["id"] * 2})
    trainable = DataParallelTrainer(loop, datasets={"train": ds}, scaling_config=ScalingConfig(num_workers=2),
                                    ).as_trainable()
    assert trainable._solray_datasets_prepared
    session = _TrialSession()
    session.placement_group = solray.util.placement_group([{"CPU": 1}, {"CPU": 1}])
    session.first_worker_bundle = 0
    air_session.install(session)
    try:
        trainable({})
    finally:
        air_session.uninstall(session)
        solray.util.remove_placement_group(session.placement_group)
    assert [m["rows"] for m, _ in session.reports] == [45]
