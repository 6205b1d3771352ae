"""PPO on real EnvRunner actors: learning, results layout, checkpoints, modules, stop()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import wait_for
from rllib_helpers import (
    alive_actor_classes,
    assert_seeded_runs_reproducible,
    ppo_cartpole_config,
    train_until_return,
)

import solray
from solray.rllib.algorithms.algorithm import Algorithm
from solray.rllib.algorithms.ppo import PPO


@pytest.fixture(scope="module")
def trained(rl_cluster):
    """PPO trained on CartPole with one EnvRunner actor until mean return >= 150."""
    algo = ppo_cartpole_config().build_algo()
    results = train_until_return(algo, 150, iterations=25)
    yield algo, results
    algo.stop()


@pytest.mark.timeout(300)  # learning on a shared 2-core machine
def test_ppo_learns_cartpole_with_env_runner_actors(trained):
    algo, results = trained
    last = results[-1]
    assert last["env_runners"]["episode_return_mean"] >= 150, [r["env_runners"]["episode_return_mean"] for r in results]
    assert "SingleAgentEnvRunner" in alive_actor_classes()
    assert algo.env_runner_group.local_env_runner is None


def test_result_has_rays_key_layout(trained):
    _, results = trained
    r = results[-1]
    assert r["training_iteration"] == len(results)
    assert r["num_env_steps_sampled_lifetime"] == 2000 * len(results)
    assert r["env_runners"]["num_env_steps_sampled_lifetime"] == r["num_env_steps_sampled_lifetime"]
    assert r["time_total_s"] >= r["time_this_iter_s"] > 0
    learner = r["learners"]["default_policy"]
    for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "curr_kl_coeff", "num_module_steps_trained"):
        assert key in learner, key
    assert learner["num_module_steps_trained"] == 2000
    assert learner["num_minibatch_updates"] == 6 * math.ceil(2000 / 128)
    assert r["learners"]["__all_modules__"]["num_env_steps_trained_lifetime"] == r["num_env_steps_sampled_lifetime"]
    assert results[0]["env_runners"]["episode_return_mean"] < r["env_runners"]["episode_return_mean"]


def test_module_forward_inference_and_evaluate(trained):
    algo, _ = trained
    module = algo.get_module()
    out = module.forward_inference({"obs": torch.zeros((3, 4))})
    assert out["action_dist_inputs"].shape == (3, 2)
    numpy_out = module.forward_inference({"obs": np.zeros((1, 4), np.float32)})
    assert numpy_out["action_dist_inputs"].shape == (1, 2)
    evaluation = algo.evaluate()["env_runners"]
    assert evaluation["num_episodes"] == 10
    # Greedy actions of a policy that averages >= 150 while exploring keep the pole up a while.
    assert evaluation["episode_return_mean"] >= 100


def test_checkpoint_restore_continue(trained, tmp_path):
    algo, results = trained
    path = algo.save_to_path(str(tmp_path / "ckpt"))
    saved_weights = algo.get_weights()["default_policy"]
    saved_optimizer = algo.learner_group.get_state()["optimizers"]["default_policy"]["default"]

    restored = Algorithm.from_checkpoint(path)
    try:
        assert isinstance(restored, PPO)
        assert restored.iteration == algo.iteration
        for name, value in restored.get_weights()["default_policy"].items():
            np.testing.assert_array_equal(value, saved_weights[name])
        restored_optimizer = restored.learner_group.get_state()["optimizers"]["default_policy"]["default"]
        assert restored_optimizer["state"][0]["step"] == saved_optimizer["state"][0]["step"] > 0
        torch.testing.assert_close(restored_optimizer["state"][0]["exp_avg"], saved_optimizer["state"][0]["exp_avg"])
        before = restored.metrics.steps_sampled
        result = restored.train()
        assert result["training_iteration"] == algo.iteration + 1
        assert result["num_env_steps_sampled_lifetime"] == before + 2000
        # The restored policy starts where the saved one was, not from scratch.
        assert result["env_runners"]["episode_return_mean"] >= 100
    finally:
        restored.stop()
    result = PPO.from_checkpoint(algo.save())
    result.stop()


def test_seeded_runs_are_reproducible(rl_cluster):
    assert_seeded_runs_reproducible(ppo_cartpole_config(num_env_runners=0, train_batch_size_per_learner=500))


@pytest.mark.timeout(300)  # learning on a shared 2-core machine
def test_two_learner_actors_train_in_lockstep_and_stop_releases_actors(rl_cluster):
    config = ppo_cartpole_config(num_env_runners=1, train_batch_size_per_learner=500, num_epochs=2)
    config.learners(num_learners=2)
    baseline = alive_actor_classes()
    algo = config.build_algo()
    try:
        before = {k: v.copy() for k, v in algo.get_weights()["default_policy"].items()}
        result = algo.train()
        assert result["num_env_steps_sampled_lifetime"] == 1000
        assert result["learners"]["default_policy"]["num_module_steps_trained"] == 500
        classes = alive_actor_classes()
        assert classes.count("LearnerActor") == 2
        assert classes.count("SingleAgentEnvRunner") == baseline.count("SingleAgentEnvRunner") + 1
        learners = algo.learner_group._actors
        w0, w1 = solray.get([a.call.remote("get_weights") for a in learners])
        changed = False
        for name in before:
            np.testing.assert_allclose(w0["default_policy"][name], w1["default_policy"][name], rtol=0, atol=1e-6)
            changed |= not np.allclose(w0["default_policy"][name], before[name])
        assert changed
    finally:
        algo.stop()
    wait_for(lambda: sorted(alive_actor_classes()) == sorted(baseline), what="stop() to release every actor")
