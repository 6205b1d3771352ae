"""Envs and settings the RLlib tests share (importable by EnvRunner actors by reference)."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np

from solray.rllib.env.multi_agent_env import MultiAgentEnv

# PPO settings that learn CartPole in a few tens of thousands of steps (Ray's tuned example).
FAST_CARTPOLE_PPO = dict(lr=3e-4, num_epochs=6, vf_loss_coeff=0.01, train_batch_size_per_learner=2000,
                         minibatch_size=128)
SMALL_MODEL = {"fcnet_hiddens": [32], "fcnet_activation": "linear", "vf_share_layers": True}


def alive_actor_classes() -> list[str]:
    from solray.util.state import list_actors

    return [a.class_name for a in list_actors(filters=[("state", "=", "ALIVE")])]


class CrashingCartPole(gym.Env):
    """CartPole that raises on step ``crash_at_step`` the first time any copy gets there
    (a marker file makes the crash happen once across processes)."""

    def __init__(self, config: dict) -> None:
        self.env = gym.make("CartPole-v1")
        self.observation_space, self.action_space = self.env.observation_space, self.env.action_space
        self.crash_at = config["crash_at_step"]
        self.marker = config["marker"]
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        self.steps += 1
        if self.steps == self.crash_at and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            raise RuntimeError("env exploded mid-episode")
        return self.env.step(action)


class DictObsEnv(gym.Env):
    """An env whose observation space the default modules cannot take (Dict)."""

    def __init__(self, config: dict | None = None) -> None:
        self.observation_space = gym.spaces.Dict({"a": gym.spaces.Discrete(2)})
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return {"a": 0}, {}

    def step(self, action):
        return {"a": 0}, 0.0, True, False, {}


class TwoAgentGuessing(MultiAgentEnv):
    """Two agents each rewarded for matching a target: agent "a" wants 0, agent "b" wants 1.

    Each policy can only learn its own target, so two trained policies end up acting differently.
    """

    def __init__(self, config: dict | None = None) -> None:
        self.possible_agents = ["a", "b"]
        self.agents = list(self.possible_agents)
        space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_spaces = {"a": space, "b": space}
        self.action_spaces = {"a": gym.spaces.Discrete(2), "b": gym.spaces.Discrete(2)}
        self.length = (config or {}).get("length", 10)
        self.t = 0
        super().__init__()

    def _obs(self):
        return {"a": np.array([1.0, 0.0], np.float32), "b": np.array([0.0, 1.0], np.float32)}

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return self._obs(), {}

    def step(self, action_dict):
        self.t += 1
        rewards = {"a": float(action_dict["a"] == 0), "b": float(action_dict["b"] == 1)}
        done = self.t >= self.length
        return self._obs(), rewards, {"__all__": done}, {"__all__": False}, {}


class BlockImageEnv(gym.Env):
    """12x12x1 uint8 images with one bright 4x4 block in one of four quadrants (jittered inside
    it); the right action is the block's quadrant (reward 1). Episodes of ``length`` images."""

    def __init__(self, config: dict | None = None) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (12, 12, 1), np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self.length = (config or {}).get("length", 10)
        self.rng = np.random.default_rng()

    def _image(self):
        self.quadrant = int(self.rng.integers(4))
        image = np.zeros((12, 12, 1), np.uint8)
        row, col = 6 * (self.quadrant // 2) + self.rng.integers(3), 6 * (self.quadrant % 2) + self.rng.integers(3)
        image[row:row + 4, col:col + 4] = 255
        return image

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        return self._image(), {}

    def step(self, action):
        reward = float(int(action) == self.quadrant)
        self.t += 1
        return self._image(), reward, False, self.t >= self.length, {}


class CueMemoryEnv(gym.Env):
    """A cue (+1 or -1) is shown at t=0 only, then zeros; at the last of ``length`` steps the
    action that repeats the cue (1 for +1, 0 for -1) earns 1. Without memory: 0.5 on average."""

    def __init__(self, config: dict | None = None) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.length = (config or {}).get("length", 4)
        self.rng = np.random.default_rng()

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t, self.cue = 0, int(self.rng.integers(2))
        return np.array([2.0 * self.cue - 1.0, 1.0], np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t >= self.length
        reward = float(done and int(action) == self.cue)
        return np.zeros(2, np.float32), reward, done, False, {}


def ppo_cartpole_config(num_env_runners: int = 1, **training):
    from solray.rllib.algorithms.ppo import PPOConfig

    return (PPOConfig().environment("CartPole-v1")
            .env_runners(num_env_runners=num_env_runners)
            .training(**{**FAST_CARTPOLE_PPO, **training})
            .rl_module(model_config=SMALL_MODEL)
            .debugging(seed=0))


# DQN settings that learn CartPole (mean greedy return >= 150) within about 8 iterations.
DQN_CARTPOLE_TRAINING = dict(lr=5e-4, train_batch_size=64, num_steps_sampled_before_learning_starts=500,
                             target_network_update_freq=500, epsilon=[[0, 1.0], [4000, 0.02]],
                             training_intensity=32.0,
                             replay_buffer_config={"type": "PrioritizedEpisodeReplayBuffer", "capacity": 20000})


def dqn_cartpole_config(**training):
    from solray.rllib.algorithms.dqn import DQNConfig

    return (DQNConfig().environment("CartPole-v1")
            .env_runners(num_env_runners=1, rollout_fragment_length=16)
            .training(**{**DQN_CARTPOLE_TRAINING, **training})
            .rl_module(model_config={"fcnet_hiddens": [64], "fcnet_activation": "relu"})
            .reporting(min_sample_timesteps_per_iteration=1000)
            .evaluation(evaluation_duration=5)
            .debugging(seed=0))


def train_until_return(algo, threshold: float, iterations: int) -> list[dict]:
    """Every result of ``train()`` until ``env_runners/episode_return_mean`` reaches ``threshold``."""
    results = []
    for _ in range(iterations):
        results.append(algo.train())
        if results[-1]["env_runners"]["episode_return_mean"] >= threshold:
            break
    return results


def train_until_greedy_return(algo, threshold: float, iterations: int) -> tuple[float, float, dict]:
    """Train, evaluating greedily after every iteration that updated the module, until the
    best evaluation reaches ``threshold``; returns (first evaluation, best, last learner metrics)."""
    first = algo.evaluate()["env_runners"]["episode_return_mean"]
    best, learner = 0.0, {}
    for _ in range(iterations):
        learner = algo.train()["learners"].get("default_policy", {}) or learner
        if learner:
            best = max(best, algo.evaluate()["env_runners"]["episode_return_mean"])
            if best >= threshold:
                break
    return first, best, learner


def assert_target_network_restored(algo, path: str) -> None:
    """A checkpoint restores the target network exactly (DQN-style learners)."""
    restored = type(algo).from_checkpoint(algo.save_to_path(path))
    try:
        saved = algo.learner_group.get_state()["extra"]["default_policy"]["target"]
        again = restored.learner_group.get_state()["extra"]["default_policy"]["target"]
        for name in saved:
            np.testing.assert_array_equal(np.asarray(saved[name]), np.asarray(again[name]))
    finally:
        restored.stop()


class RepeatRewardedActionEnv(gym.Env):
    """Blank observations; a hidden target action is drawn per episode and each of ``length``
    steps earns 1 when the action hits it. Only the previous action and reward tell where the
    target is: with them a policy finds and keeps it (about length - 1), without them it
    cannot beat chance (length / n)."""

    def __init__(self, config: dict | None = None) -> None:
        self.n = (config or {}).get("n", 2)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(self.n)
        self.length = (config or {}).get("length", 10)
        self.rng = np.random.default_rng()

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t, self.target = 0, int(self.rng.integers(self.n))
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), float(int(action) == self.target), False, self.t >= self.length, {}


def assert_dqn_learns_cartpole(algo, iterations: int, checkpoint_path: str) -> None:
    """DQN (any framework) reaches a greedy return >= 150, refreshed its target network, and a
    checkpoint restores that target network exactly."""
    first, best, learner = train_until_greedy_return(algo, 150, iterations)
    assert {"qf_loss", "qf_mean", "td_error_mean", "last_target_update_ts"} <= set(learner)
    assert learner["last_target_update_ts"] > 0  # the target network was refreshed
    assert best >= 150 > first, (first, best)
    assert_target_network_restored(algo, checkpoint_path)


def assert_seeded_runs_reproducible(config) -> None:
    """Two seeded builds of ``config`` give the same returns and weights after two iterations."""
    def run():
        algo = config.build_algo()
        try:
            returns = [algo.train()["env_runners"]["episode_return_mean"] for _ in range(2)]
            return returns, algo.get_weights()["default_policy"]
        finally:
            algo.stop()

    (returns_a, weights_a), (returns_b, weights_b) = run(), run()
    assert returns_a == returns_b
    for name in weights_a:
        np.testing.assert_array_equal(np.asarray(weights_a[name]), np.asarray(weights_b[name]))
