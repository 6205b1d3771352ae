"""DQN and SAC on real EnvRunner actors: DQN learns CartPole, SAC improves on Pendulum."""

from __future__ import annotations

import pytest
from rllib_helpers import (
    assert_dqn_learns_cartpole,
    dqn_cartpole_config,
)

from solray.rllib.algorithms.sac import SACConfig


@pytest.mark.timeout(300)  # learning on a shared 2-core machine
def test_dqn_learns_cartpole(rl_cluster, tmp_path):
    algo = dqn_cartpole_config().build_algo()
    try:
        assert_dqn_learns_cartpole(algo, iterations=8, checkpoint_path=str(tmp_path / "dqn"))
    finally:
        algo.stop()


@pytest.mark.timeout(300)  # learning on a shared 2-core machine
def test_sac_improves_on_pendulum(rl_cluster):
    config = (SACConfig().environment("Pendulum-v1")
              .env_runners(num_env_runners=1, rollout_fragment_length=8)
              .training(actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3, train_batch_size=128,
                        num_steps_sampled_before_learning_starts=1000, training_intensity=128.0,
                        replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 20000})
              .rl_module(model_config={"fcnet_hiddens": [64, 64], "fcnet_activation": "relu"})
              .reporting(min_sample_timesteps_per_iteration=1000)
              .evaluation(evaluation_duration=5)
              .debugging(seed=0))
    algo = config.build_algo()
    try:
        before = algo.evaluate()["env_runners"]["episode_return_mean"]
        for _ in range(4):
            result = algo.train()
        learner = result["learners"]["default_policy"]
        assert {"qf_loss", "policy_loss", "alpha_value"} <= set(learner)
        assert learner["alpha_value"] < 1.0  # entropy tuning moved alpha
        after = algo.evaluate()["env_runners"]["episode_return_mean"]
        print(f"SAC greedy return before {before:.0f}, after {after:.0f}")
        assert after > before + 300, (before, after)
    finally:
        algo.stop()
