"""``solray rllib train``: progress rows each iteration, stop criteria, checkpoints, bad input."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner

from solray.cli.main import cli
from solray.rllib.algorithms.algorithm import Algorithm


def test_rllib_train_prints_a_row_per_iteration_and_stops(rl_cluster, tmp_path):
    config = {"train_batch_size": 400, "minibatch_size": 100, "num_epochs": 1, "seed": 0,
              "model_config": {"fcnet_hiddens": [16]}}
    result = CliRunner().invoke(cli, [
        "rllib", "train", "--algo", "PPO", "--env", "CartPole-v1",
        "--stop", json.dumps({"training_iteration": 3}), "--config", json.dumps(config),
        "--checkpoint-at-end", "--storage-path", str(tmp_path)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["iter", "env", "steps"])
    rows = [line.split() for line in lines[header + 1:header + 4]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert [r[1] for r in rows] == ["400", "800", "1,200"]
    checkpoint = lines[-2].removeprefix("Checkpoint: ")
    assert checkpoint == os.path.join(str(tmp_path), "checkpoint_000003")
    restored = Algorithm.from_checkpoint(checkpoint)
    try:
        assert restored.iteration == 3
    finally:
        restored.stop()


def test_rllib_train_reports_bad_input_cleanly(rl_cluster):
    runner = CliRunner()
    bad_key = runner.invoke(cli, ["rllib", "train", "--algo", "PPO", "--env", "CartPole-v1", "--config", '{"lrr": 1}'])
    assert bad_key.exit_code != 0 and "'lrr'" in bad_key.output and "Traceback" not in bad_key.output
    bad_env = runner.invoke(cli, ["rllib", "train", "--algo", "PPO", "--env", "Nope-v0"])
    assert bad_env.exit_code != 0 and "Unknown env 'Nope-v0'" in bad_env.output
    bad_algo = runner.invoke(cli, ["rllib", "train", "--algo", "XYZ", "--env", "CartPole-v1"])
    assert bad_algo.exit_code != 0 and "Unknown RLlib algorithm 'XYZ'" in bad_algo.output
    bad_stop = runner.invoke(cli, ["rllib", "train", "--algo", "PPO", "--env", "CartPole-v1", "--stop", "[1]"])
    assert bad_stop.exit_code != 0 and "--stop must be a JSON object" in bad_stop.output
