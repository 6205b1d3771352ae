"""AlgorithmConfig: builder checks, dict round trips, bad input refused at build time, envs."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import pytest
from rllib_helpers import SMALL_MODEL, DictObsEnv

from solray.rllib.algorithms.algorithm_config import AlgorithmConfig
from solray.rllib.algorithms.dqn import DQNConfig
from solray.rllib.algorithms.ppo import PPO, PPOConfig
from solray.rllib.algorithms.registry import get_algorithm_class
from solray.rllib.algorithms.sac import SACConfig
from solray.rllib.env.registry import register_env


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ValueError, match=r"unknown config key 'num_env_runner'.*Did you mean 'num_env_runners'"):
        PPOConfig().env_runners(num_env_runner=2)
    with pytest.raises(ValueError, match="'clip_parm'"):
        PPOConfig().training(clip_parm=0.2)
    with pytest.raises(ValueError, match="'clip_param'"):  # a PPO key is not a DQN key
        DQNConfig().training(clip_param=0.2)
    with pytest.raises(ValueError, match="'not_a_key'"):
        PPOConfig().update_from_dict({"not_a_key": 1})


def test_wrong_types_and_values_are_named():
    with pytest.raises(TypeError, match="'lr' must be int or float, got str"):
        PPOConfig().training(lr="fast")
    with pytest.raises(TypeError, match="'num_env_runners' must be int"):
        PPOConfig().env_runners(num_env_runners=1.5)
    with pytest.raises(ValueError, match="'gamma' must be in"):
        PPOConfig().training(gamma=1.5)
    with pytest.raises(TypeError, match="'use_gae' must be bool"):
        PPOConfig().training(use_gae=1)
    with pytest.raises(TypeError, match="'num_env_runners'"):
        config = PPOConfig()
        config.num_env_runners = "two"


def test_builders_chain_and_dicts_round_trip():
    config = (PPOConfig().environment("CartPole-v1", env_config={"render_mode": None})
              .env_runners(num_env_runners=2, num_envs_per_env_runner=3, rollout_fragment_length=50)
              .learners(num_learners=0).training(lr=1e-3, gamma=0.95, lambda_=0.9, num_epochs=3)
              .rollouts(num_rollout_workers=1)  # Ray's older names still work
              .training(num_sgd_iter=4).debugging(seed=3))
    assert config.num_env_runners == 1 and config.num_epochs == 4 and config["lambda_"] == 0.9
    copy = PPOConfig.from_dict(config.to_dict())
    assert copy.to_dict() == config.to_dict()
    assert copy.algo_class is PPO and get_algorithm_class("PPO") is PPO
    assert isinstance(get_algorithm_class("SAC", return_config=True)[1], SACConfig)
    with pytest.raises(ValueError, match="Unknown RLlib algorithm 'PPX'"):
        get_algorithm_class("PPX")
    assert PPOConfig().lr == 5e-5 and DQNConfig().train_batch_size == 32  # Ray's defaults
    assert isinstance(PPOConfig().training(lr=[[0, 1e-3], [1000, 1e-4]]), AlgorithmConfig)  # schedules


def test_bad_envs_and_spaces_fail_at_build_time():
    with pytest.raises(ValueError, match="Unknown env 'NoSuchEnv-v9'"):
        PPOConfig().environment("NoSuchEnv-v9").build_algo()
    with pytest.raises(ValueError, match="Unsupported observation space.*Dict"):
        PPOConfig().environment(DictObsEnv).build_algo()
    with pytest.raises(ValueError, match="DQN needs a Discrete action space"):
        DQNConfig().environment("Pendulum-v1").build_algo()
    with pytest.raises(ValueError, match="SAC needs a continuous"):
        SACConfig().environment("CartPole-v1").build_algo()
    with pytest.raises(ValueError, match="No environment set"):
        PPOConfig().build_algo()


def test_tf2_without_tensorflow_names_the_package(monkeypatch):
    find_spec = importlib.util.find_spec
    # TensorFlow is installed for the tf2 tests: make this process see it as missing.
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "tensorflow" else find_spec(name, *args))
    with pytest.raises(ImportError, match="pip install tensorflow"):
        PPOConfig().environment("CartPole-v1").framework("tf2").build_algo()
    with pytest.raises(ValueError, match="'framework' must be one of"):
        PPOConfig().framework("mxnet")


class ScaledRewardCartPole(gym.Wrapper):
    def __init__(self, env_config):
        super().__init__(gym.make("CartPole-v1"))
        self.scale = env_config["scale"]
        self.worker_index = env_config.worker_index

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(action)
        return obs, reward * self.scale, term, trunc, info


def test_registered_env_with_config_and_vectorized_runners(rl_cluster):
    register_env("scaled_cartpole", lambda cfg: ScaledRewardCartPole(cfg))
    algo = (PPOConfig().environment("scaled_cartpole", env_config={"scale": 2.0})
            .env_runners(num_env_runners=1, num_envs_per_env_runner=4)
            .training(train_batch_size=400, minibatch_size=100, num_epochs=1)
            .rl_module(model_config=SMALL_MODEL).build_algo())
    try:
        result = algo.train()
        runner = result["env_runners"]
        assert result["num_env_steps_sampled_lifetime"] == 400
        # Rewards are doubled: each episode returns twice its length.
        assert runner["episode_return_mean"] == pytest.approx(2 * runner["episode_len_mean"])
        envs = algo.env_runner_group.foreach_env_runner(lambda r: [e.worker_index for e in r.envs])
        assert envs == [[1, 1, 1, 1]]
    finally:
        algo.stop()
