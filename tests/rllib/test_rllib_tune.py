"""RLlib algorithms as Tune class trainables: a grid search over PPO's learning rate."""

from __future__ import annotations

import os

import pytest
from rllib_helpers import SMALL_MODEL

from solray import tune
from solray.air import RunConfig
from solray.rllib.algorithms.algorithm import Algorithm
from solray.rllib.algorithms.ppo import PPO, PPOConfig
from solray.rllib.algorithms.registry import get_algorithm_class


@pytest.mark.timeout(300)  # learning on a shared 2-core machine
def test_tuner_grid_searches_ppo(rl_cluster, tmp_path):
    config = (PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=0)
              .training(lr=tune.grid_search([1e-4, 1e-3]), train_batch_size=400, minibatch_size=100, num_epochs=1)
              .rl_module(model_config=SMALL_MODEL).debugging(seed=0))
    assert get_algorithm_class("PPO") is PPO
    tuner = tune.Tuner(PPO, param_space=config.to_dict(),
                       run_config=RunConfig(stop={"training_iteration": 2}, storage_path=str(tmp_path),
                                            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True)))
    results = tuner.fit()
    assert not results.errors
    assert sorted(r.config["lr"] for r in results) == [1e-4, 1e-3]
    for result in results:
        assert result.metrics["training_iteration"] == 2
        assert result.metrics["num_env_steps_sampled_lifetime"] == 800
        assert "episode_return_mean" in result.metrics["env_runners"]
        assert result.checkpoint is not None
        with result.checkpoint.as_directory() as folder:
            assert os.path.exists(os.path.join(folder, "algorithm_state.pkl"))
            restored = Algorithm.from_checkpoint(folder)
            try:
                assert restored.iteration == 2 and restored.config.lr == result.config["lr"]
            finally:
                restored.stop()


def test_tuner_by_algorithm_name_with_a_config_and_a_nested_stop_metric(rl_cluster, tmp_path):
    """Ray's form: ``Tuner("PPO", param_space=config, stop={"env_runners/...": x})``; the
    registered env comes from ``tune.register_env``."""
    import gymnasium as gym

    tune.register_env("cartpole-from-tune", lambda env_config: gym.make("CartPole-v1"))
    config = (PPOConfig().environment("cartpole-from-tune").env_runners(num_env_runners=0)
              .training(train_batch_size=400, minibatch_size=100, num_epochs=1)
              .rl_module(model_config=SMALL_MODEL).debugging(seed=0))
    # Any return at all meets the first criterion: the nested key must be found to stop at 1.
    stop = {"env_runners/episode_return_mean": 1.0, "training_iteration": 3}
    results = tune.Tuner("PPO", param_space=config,
                         run_config=RunConfig(stop=stop, storage_path=str(tmp_path))).fit()
    assert not results.errors and len(results) == 1
    assert results[0].metrics["training_iteration"] == 1
    with pytest.raises(ValueError, match="no trainable is registered under that name"):
        tune.Tuner("NoSuchAlgo").fit()
