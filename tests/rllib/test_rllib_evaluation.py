"""Evaluation on its own EnvRunner actors: after training, or in parallel to it."""

from __future__ import annotations

import pytest
from rllib_helpers import SMALL_MODEL

from solray.rllib.algorithms.ppo import PPOConfig


def small_ppo(**evaluation) -> PPOConfig:
    return (PPOConfig().environment("CartPole-v1")
            .env_runners(num_env_runners=0)
            .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
            .rl_module(model_config=SMALL_MODEL)
            .evaluation(evaluation_interval=1, evaluation_num_env_runners=1, **evaluation)
            .debugging(seed=0))


def test_parallel_evaluation_runs_during_training_on_the_previous_weights(rl_cluster):
    # The first weights are published at build (seq no 1); each PPO iteration publishes one more.
    algo = small_ppo(evaluation_parallel_to_training=True, evaluation_duration="auto").build_algo()
    try:
        for iteration in (1, 2):
            evaluation = algo.train()["evaluation"]["env_runners"]
            assert evaluation["weights_seq_no"] == iteration  # started before this iteration's update
            assert evaluation["num_episodes"] >= 1
            assert evaluation["episode_return_mean"] > 0
    finally:
        algo.stop()


def test_parallel_evaluation_with_a_fixed_duration_runs_exactly_that_many_episodes(rl_cluster):
    algo = small_ppo(evaluation_parallel_to_training=True, evaluation_duration=3).build_algo()
    try:
        evaluation = algo.train()["evaluation"]["env_runners"]
        assert evaluation["num_episodes"] == 3
        assert evaluation["weights_seq_no"] == 1
    finally:
        algo.stop()


def test_sequential_evaluation_uses_the_weights_just_trained(rl_cluster):
    algo = small_ppo(evaluation_duration=2).build_algo()
    try:
        evaluation = algo.train()["evaluation"]["env_runners"]
        assert evaluation["weights_seq_no"] == 2
        assert evaluation["num_episodes"] == 2
    finally:
        algo.stop()


@pytest.mark.parametrize("evaluation, message", [
    (dict(evaluation_parallel_to_training=True, evaluation_num_env_runners=0), "evaluation_num_env_runners"),
    (dict(evaluation_duration="auto"), "evaluation_parallel_to_training"),
])
def test_evaluation_settings_that_cannot_work_fail_at_build(evaluation, message):
    config = small_ppo().evaluation(**evaluation)
    with pytest.raises(ValueError, match=message):
        config.build_algo()


def test_evaluation_duration_must_be_auto_or_positive():
    with pytest.raises(ValueError, match="evaluation_duration"):
        PPOConfig().evaluation(evaluation_duration=0)
    with pytest.raises(ValueError, match="evaluation_duration"):
        PPOConfig().evaluation(evaluation_duration="forever")
