"""Default models beyond the MLP: conv encoders for images, the LSTM, and complete_episodes sampling."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from rllib_helpers import BlockImageEnv, CueMemoryEnv, RepeatRewardedActionEnv, TwoAgentGuessing

from solray.rllib._internal.env_factory import resolve_env_creator
from solray.rllib._internal.env_runner import SingleAgentEnvRunner
from solray.rllib._internal.learner import to_tensors
from solray.rllib._internal.module_specs import build_module_specs
from solray.rllib._internal.modules import action_dist_size
from solray.rllib._internal.sequences import build_sequences, sequence_inputs, state_columns
from solray.rllib.algorithms.dqn import DQNConfig
from solray.rllib.algorithms.ppo import PPOConfig
from solray.rllib.algorithms.ppo.ppo import PPO
from solray.rllib.core import DEFAULT_MODULE_ID
from solray.rllib.core.columns import Columns
from solray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from solray.rllib.core.rl_module.rl_module import RLModuleSpec

IMAGE_MODEL = {"conv_filters": [[8, 4, 2], [16, 3, 2]], "head_fcnet_hiddens": [32]}
LSTM_MODEL = {"use_lstm": True, "lstm_cell_size": 32, "fcnet_hiddens": [32], "max_seq_len": 8}
PREV_MODEL = {**LSTM_MODEL, "lstm_use_prev_action": True, "lstm_use_prev_reward": True}
FAST_PPO = dict(lr=1e-3, num_epochs=6, train_batch_size_per_learner=1000, minibatch_size=200, vf_loss_coeff=0.5)


def ppo_config(env, model: dict, num_env_runners: int = 1, **training) -> PPOConfig:
    return (PPOConfig().environment(env)
            .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=4)
            .training(**{**FAST_PPO, **training})
            .rl_module(model_config=model)
            .debugging(seed=0))


def make_runner(config: PPOConfig, env) -> SingleAgentEnvRunner:
    """An EnvRunner in this process, with the modules the algorithm would build."""
    creator = resolve_env_creator(env)
    specs, _ = build_module_specs(config, creator, PPO.default_module_class, "PPO", None)
    return SingleAgentEnvRunner(config, 1, creator, specs, PPO.postprocess_fragment)


def train_until(algo, target: float, max_iters: int) -> list[float]:
    returns = []
    for _ in range(max_iters):
        returns.append(algo.train()["env_runners"]["episode_return_mean"])
        if returns[-1] >= target:
            break
    return returns


# --- CNN ---------------------------------------------------------------------------------------
@pytest.mark.timeout(200)
def test_ppo_with_conv_filters_learns_where_the_block_is(rl_cluster):
    algo = ppo_config(BlockImageEnv, IMAGE_MODEL, gamma=0.9).build_algo()
    try:
        returns = train_until(algo, 8.0, 12)
        # 10 images per episode, four quadrants: chance is 2.5.
        assert returns[-1] >= 8.0, returns
        module = algo.get_module()
        assert any(isinstance(m, torch.nn.Conv2d) for m in module.modules())
        images = np.stack([BlockImageEnv().reset(seed=s)[0] for s in range(4)])
        assert module.forward_inference({"obs": images})["action_dist_inputs"].shape == (4, 4)
    finally:
        algo.stop()


def test_image_batches_keep_shape_and_uint8():
    runner = make_runner(ppo_config(BlockImageEnv, IMAGE_MODEL), BlockImageEnv)
    batch = runner.sample(num_steps=3)["batches"][DEFAULT_MODULE_ID]
    assert batch[Columns.OBS].shape == (12, 12, 12, 1) and batch[Columns.OBS].dtype == np.uint8
    assert batch[Columns.NEXT_OBS].shape == (12, 12, 12, 1)
    assert runner.policy_nets[DEFAULT_MODULE_ID] is None  # conv modules act in torch


def test_dqn_module_builds_and_acts_on_images(rl_cluster):
    config = (DQNConfig().environment(BlockImageEnv)
              .env_runners(num_env_runners=0, rollout_fragment_length=8)
              .training(train_batch_size=16, num_steps_sampled_before_learning_starts=16)
              .rl_module(model_config=IMAGE_MODEL)
              .reporting(min_sample_timesteps_per_iteration=32)
              .debugging(seed=0))
    algo = config.build_algo()
    try:
        result = algo.train()
        assert "qf_loss" in result["learners"]["default_policy"]
        module = algo.get_module()
        image = BlockImageEnv().reset(seed=0)[0][None]
        assert module.q_values(torch.from_numpy(image)).shape == (1, 4)
        actions, _ = module.compute_actions(image, False, np.random.default_rng(0))
        assert actions.shape == (1,) and 0 <= actions[0] < 4
    finally:
        algo.stop()


@pytest.mark.parametrize("size,features", [(84, 256 * 11 * 11), (42, 256 * 11 * 11), (64, 128 * 4 * 4)])
def test_rays_default_conv_filters_for_common_sizes(size, features):
    spec = RLModuleSpec(module_class=PPO.default_module_class,
                        observation_space=gym.spaces.Box(0, 255, (size, size, 3), np.uint8),
                        action_space=gym.spaces.Discrete(3), model_config=DefaultModelConfig())
    module = spec.build()
    assert module.encoder.out_size == features
    out = module.forward_inference({"obs": np.zeros((2, size, size, 3), np.uint8)})
    assert out["action_dist_inputs"].shape == (2, 3)


def test_image_size_without_default_filters_fails_at_build_time():
    with pytest.raises(ValueError, match=r"No default conv_filters .*\(12, 12, 1\).*set model_config conv_filters"):
        ppo_config(BlockImageEnv, {}, num_env_runners=0).build_algo()
    with pytest.raises(ValueError, match="conv_filters entry"):
        ppo_config(BlockImageEnv, {"conv_filters": [[8, 4]]}, num_env_runners=0).build_algo()


# --- LSTM --------------------------------------------------------------------------------------
def test_sequence_builder_cuts_pads_and_masks():
    # Two env pieces: env 0 has 7 steps with an episode ending after step 2; env 1 has 4 steps.
    n = 11
    terminated = np.zeros(n, bool)
    terminated[2] = True
    seg_end = np.zeros(n, bool)
    seg_end[[6, 10]] = True
    batch = {Columns.OBS: np.arange(1, n + 1, dtype=np.float32)[:, None], Columns.TERMINATEDS: terminated,
             Columns.TRUNCATEDS: np.zeros(n, bool), "seg_end": seg_end,
             **state_columns({"h": np.arange(n, dtype=np.float32)[:, None, None] * 10})}
    seqs = build_sequences(batch, 3, (Columns.OBS,))
    # chains [0..2], [3..6], [7..10] -> sequences of at most 3 steps
    assert seqs["seq_lens"].tolist() == [3, 3, 1, 3, 1]
    assert seqs[Columns.LOSS_MASK].tolist() == [[True] * 3, [True] * 3, [True, False, False],
                                                [True] * 3, [True, False, False]]
    assert seqs[Columns.OBS][..., 0].tolist() == [[1, 2, 3], [4, 5, 6], [7, 0, 0], [8, 9, 10], [11, 0, 0]]
    assert seqs["state_in/h"][:, 0, 0].tolist() == [0, 30, 60, 70, 100]  # the state at each start


def test_lstm_runner_resets_state_at_episode_starts_and_bootstraps_cut_pieces():
    runner = make_runner(ppo_config(CueMemoryEnv, LSTM_MODEL), CueMemoryEnv)
    batch = runner.sample(num_steps=6)["batches"][DEFAULT_MODULE_ID]
    assert batch["state_in/h"].shape == (24, 1, 32)
    starts = np.r_[True, batch[Columns.EPS_ID][1:] != batch[Columns.EPS_ID][:-1]]
    first_of_episode = starts & (batch[Columns.OBS][:, 1] == 1.0)  # the cue step
    assert first_of_episode.sum() >= 4
    assert not batch["state_in/h"][first_of_episode].any()
    assert batch["state_in/h"][~starts].any(axis=(1, 2)).all()  # carried within episodes
    # Bootstrapped values only where a piece is cut mid-episode (every env's last step here).
    cut = batch["seg_end"] & ~batch[Columns.TERMINATEDS]
    assert cut.sum() == 4 and (batch[Columns.VALUES_BOOTSTRAPPED][~cut] == 0).all()
    assert np.isfinite(batch[Columns.ADVANTAGES]).all()
    # Replayed as sequences of 3 (some start mid-episode, from the recorded state), the module
    # reproduces what it computed while acting.
    seqs = build_sequences(batch, 3, (Columns.OBS,))
    module = runner.modules[DEFAULT_MODULE_ID]
    with torch.no_grad():
        out = module.forward_train({"obs": torch.from_numpy(seqs["obs"]),
                                    "state_in": {k: torch.from_numpy(seqs[f"state_in/{k}"]) for k in "hc"}})
    mask = seqs[Columns.LOSS_MASK]
    np.testing.assert_allclose(out["action_dist_inputs"].numpy()[mask], batch[Columns.ACTION_DIST_INPUTS], atol=1e-5)
    np.testing.assert_allclose(out["vf_preds"].numpy()[mask], batch[Columns.VF_PREDS], atol=1e-5)


@pytest.mark.timeout(200)
def test_ppo_lstm_learns_to_remember_the_cue(rl_cluster):
    algo = ppo_config(CueMemoryEnv, LSTM_MODEL, gamma=0.99, lambda_=0.95).build_algo()
    try:
        returns = train_until(algo, 0.95, 15)
        # A memoryless policy sees zeros at the last step: it cannot beat 0.5.
        assert returns[-1] >= 0.95, returns
        module = algo.get_module()
        state = module.get_initial_state()
        assert set(state) == {"h", "c"} and tuple(state["h"].shape) == (1, 32)
        batch_state = {k: v.expand(2, -1, -1) for k, v in state.items()}
        cues = np.array([[1.0, 1.0], [-1.0, 1.0]], np.float32)
        out = module.forward_inference({"obs": cues, "state_in": batch_state})
        for _ in range(3):
            out = module.forward_inference({"obs": np.zeros((2, 2), np.float32), "state_in": out["state_out"]})
        assert out["action_dist_inputs"].argmax(-1).tolist() == [1, 0]  # each remembers its own cue
        evaluation = algo.evaluate()["env_runners"]
        assert evaluation["episode_return_mean"] >= 0.9
    finally:
        algo.stop()


def test_lstm_options_that_are_not_supported_fail_clearly():
    with pytest.raises(ValueError, match="use_lstm=True is not supported by DefaultDQNTorchRLModule"):
        DQNConfig().environment(CueMemoryEnv).rl_module(model_config=LSTM_MODEL).build_algo()
    with pytest.raises(ValueError, match="single-agent"):
        PPOConfig().environment(TwoAgentGuessing).rl_module(model_config=LSTM_MODEL).build_algo()


def _pieces(batch: dict) -> list[dict]:
    """An env-major batch split into its env pieces (env 0 first)."""
    bounds = np.r_[0, np.flatnonzero(batch["seg_end"]) + 1]
    return [{k: v[a:b] for k, v in batch.items()} for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@pytest.mark.parametrize("batch_mode", ["truncate_episodes", "complete_episodes"])
def test_runner_records_prev_action_and_reward_per_episode(batch_mode):
    config = ppo_config(RepeatRewardedActionEnv, PREV_MODEL).environment(env_config={"length": 5})
    runner = make_runner(config.env_runners(batch_mode=batch_mode), RepeatRewardedActionEnv)
    module = runner.modules[DEFAULT_MODULE_ID]
    last: list[dict | None] = [None] * 4  # each env's last step of the previous call
    for _ in range(2):  # the second call goes on with the episodes the first one left running
        batch = runner.sample(num_steps=7)["batches"][DEFAULT_MODULE_ID]
        assert batch[Columns.PREV_ACTIONS].dtype == np.int64 and batch[Columns.PREV_REWARDS].dtype == np.float32
        for env, piece in enumerate(_pieces(batch)):
            before = last[env]
            # the step before each row in its env: the previous row, or the previous call's last one
            prev_eps = np.r_[before[Columns.EPS_ID] if before else -1, piece[Columns.EPS_ID][:-1]]
            prev_act = np.r_[before[Columns.ACTIONS] if before else 0, piece[Columns.ACTIONS][:-1]]
            prev_rew = np.r_[before[Columns.REWARDS] if before else 0, piece[Columns.REWARDS][:-1]]
            first = piece[Columns.EPS_ID] != prev_eps
            assert first[0] == (before is None or batch_mode == "complete_episodes")
            assert first.sum() >= 1 and (~first).sum() >= 4
            np.testing.assert_array_equal(piece[Columns.PREV_ACTIONS], np.where(first, 0, prev_act))
            np.testing.assert_array_equal(piece[Columns.PREV_REWARDS], np.where(first, 0.0, prev_rew))
            if before is not None and not first[0]:
                # A piece cut mid-episode was bootstrapped with the value this step computed
                # while acting (same weights, state and previous action / reward).
                np.testing.assert_allclose(before[Columns.VALUES_BOOTSTRAPPED], piece[Columns.VF_PREDS][0],
                                           atol=1e-5)
            last[env] = {k: v[-1] for k, v in piece.items()}
        assert batch[Columns.PREV_REWARDS].any()
        # Replayed as the learner's sequences, the module reproduces what it computed while acting.
        seqs = build_sequences(batch, 3, (Columns.OBS,))
        with torch.no_grad():
            out = module.forward_train(sequence_inputs(to_tensors(seqs)))
        mask = seqs[Columns.LOSS_MASK]
        np.testing.assert_allclose(out["action_dist_inputs"].numpy()[mask], batch[Columns.ACTION_DIST_INPUTS],
                                   atol=1e-5)
        np.testing.assert_allclose(out["vf_preds"].numpy()[mask], batch[Columns.VF_PREDS], atol=1e-5)


@pytest.mark.timeout(200)
def test_ppo_lstm_with_prev_action_and_reward_keeps_the_rewarded_action(rl_cluster):
    algo = ppo_config(RepeatRewardedActionEnv, PREV_MODEL, lr=3e-3, gamma=0.5).build_algo()
    try:
        returns = train_until(algo, 8.5, 15)
        # 10 steps, 2 actions: without the previous action and reward nothing beats 5 (best: 9.5).
        assert returns[-1] >= 8.5, returns
        assert algo.evaluate()["env_runners"]["episode_return_mean"] >= 8.5  # greedy, fed the same way
        module = algo.get_module()
        state = {k: v[None] for k, v in module.get_initial_state().items()}
        first = module.forward_inference({"obs": np.zeros((1, 1), np.float32), "state_in": state,
                                          "prev_actions": np.zeros(1, np.int64), "prev_rewards": np.zeros(1)})
        action = int(first["action_dist_inputs"].argmax(-1))
        hit, miss = (module.forward_inference({"obs": np.zeros((1, 1), np.float32), "state_in": first["state_out"],
                                               "prev_actions": np.array([action]),
                                               "prev_rewards": np.array([reward], np.float32)})
                     for reward in (1.0, 0.0))
        assert int(hit["action_dist_inputs"].argmax(-1)) == action  # rewarded: repeat it
        assert int(miss["action_dist_inputs"].argmax(-1)) != action  # not: try another
    finally:
        algo.stop()


@pytest.mark.parametrize("action_space", [gym.spaces.Discrete(3), gym.spaces.Box(-1.0, 1.0, (2,), np.float32)])
def test_forward_inference_takes_prev_actions_and_rewards(action_space):
    spec = RLModuleSpec(module_class=PPO.default_module_class, observation_space=gym.spaces.Box(-1, 1, (4,)),
                        action_space=action_space, model_config=PREV_MODEL)
    module = spec.build()
    extra = 3 if isinstance(action_space, gym.spaces.Discrete) else 2
    assert module.lstm.input_size == 32 + extra + 1  # encoder output, previous action, previous reward
    state = {k: v.expand(2, -1, -1) for k, v in module.get_initial_state().items()}
    actions = np.array([0, 1]) if extra == 3 else np.array([[0.5, -0.5], [0.1, 0.2]], np.float32)
    batch = {"obs": np.zeros((2, 4), np.float32), "state_in": state, "prev_actions": actions,
             "prev_rewards": np.array([0.0, 1.0], np.float32)}
    out = module.forward_inference(batch)
    assert out["action_dist_inputs"].shape == (2, action_dist_size(action_space))
    assert out["state_out"]["h"].shape == (2, 1, 32)
    for key in ("prev_actions", "prev_rewards"):  # each reaches the LSTM
        changed = module.forward_inference({**batch, key: 1 - batch[key]})
        assert not torch.allclose(changed["state_out"]["h"], out["state_out"]["h"])
    # With a time dimension: one previous action / reward per step.
    seq = module.forward_inference({**batch, "obs": np.zeros((2, 5, 4), np.float32),
                                    "prev_actions": np.repeat(actions[:, None], 5, axis=1),
                                    "prev_rewards": np.zeros((2, 5), np.float32)})
    assert seq["action_dist_inputs"].shape == (2, 5, action_dist_size(action_space))
    for key in ("prev_actions", "prev_rewards"):
        with pytest.raises(ValueError, match=f"batch\\['{key}'\\]"):
            module.forward_inference({k: v for k, v in batch.items() if k != key})


# --- complete_episodes -------------------------------------------------------------------------
@pytest.mark.parametrize("model", [{"fcnet_hiddens": [16]}, LSTM_MODEL])
def test_complete_episodes_returns_only_whole_episodes(model):
    config = ppo_config("CartPole-v1", model).env_runners(batch_mode="complete_episodes")
    runner = make_runner(config, config.env)
    for _ in range(3):
        out = runner.sample(num_steps=30)
        batch = out["batches"][DEFAULT_MODULE_ID]
        done = batch[Columns.TERMINATEDS] | batch[Columns.TRUNCATEDS]
        assert (done[batch["seg_end"]]).all()  # every env's piece ends with its episode
        assert batch["seg_end"].sum() == 4
        ends = np.flatnonzero(batch["seg_end"])
        assert (np.diff(np.r_[-1, ends]) >= 30).all()  # each env stepped at least the quota
        # Whole episodes: each starts at a reset (first steps of CartPole are near zero).
        starts = np.r_[0, np.flatnonzero(done)[:-1] + 1]
        assert (np.abs(batch[Columns.OBS][starts]) <= 0.05).all()
        assert out["metrics"]["num_env_steps"] == len(done) >= 120
        assert sum(out["metrics"]["episode_lengths"]) == len(done)


@pytest.mark.timeout(120)
def test_complete_episodes_train_step_and_multi_agent_refusal(rl_cluster):
    algo = ppo_config("CartPole-v1", {"fcnet_hiddens": [16]}, train_batch_size_per_learner=400,
                      minibatch_size=100).env_runners(batch_mode="complete_episodes").build_algo()
    try:
        result = algo.train()
        assert result["num_env_steps_sampled_lifetime"] >= 400
        assert result["env_runners"]["num_episodes"] >= 4
    finally:
        algo.stop()
    with pytest.raises(ValueError, match="complete_episodes.*single-agent"):
        PPOConfig().environment(TwoAgentGuessing).env_runners(batch_mode="complete_episodes").build_algo()
