"""An env that raises mid-episode: its EnvRunner is restarted and the error reported, or, with
restarts off, the env's own error reaches train()'s caller."""

from __future__ import annotations

import logging
import os

import pytest
from rllib_helpers import SMALL_MODEL, CrashingCartPole

import solray
from solray.rllib.algorithms.ppo import PPOConfig


def crashing_config(tmp_path, restart: bool) -> PPOConfig:
    return (PPOConfig()
            .environment(CrashingCartPole, env_config={"crash_at_step": 150, "marker": str(tmp_path / "crashed")})
            .env_runners(num_env_runners=1)
            .fault_tolerance(restart_failed_env_runners=restart)
            .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
            .rl_module(model_config=SMALL_MODEL)
            .debugging(seed=0))


def test_crashing_env_restarts_its_runner_and_reports_the_error(rl_cluster, tmp_path, caplog):
    algo = crashing_config(tmp_path, restart=True).build_algo()
    try:
        with caplog.at_level(logging.ERROR, logger="solray.rllib"):
            first = algo.train()  # the runner crashes at step 150 of its 200-step fragment
        assert os.path.exists(tmp_path / "crashed")
        assert first["fault_tolerance"]["num_remote_worker_restarts"] == 1
        assert first["fault_tolerance"]["num_healthy_workers"] == 1
        # The restarted runner sampled the whole train batch again; the crashed fragment is gone.
        assert first["env_runners"]["num_env_steps_sampled"] == 200
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "restarting it" in logged and "env exploded mid-episode" in logged
        assert "Traceback" in logged and "in step" in logged  # the remote traceback, down to the env
        second = algo.train()
        assert second["env_runners"]["num_env_steps_sampled"] == 200
        assert second["fault_tolerance"]["num_remote_worker_restarts"] == 1
    finally:
        algo.stop()


def test_without_restarts_the_env_error_reaches_the_caller(rl_cluster, tmp_path):
    algo = crashing_config(tmp_path, restart=False).build_algo()
    try:
        with pytest.raises(RuntimeError, match="env exploded mid-episode") as info:
            algo.train()
        assert isinstance(info.value, solray.exceptions.RayTaskError)
    finally:
        algo.stop()
