"""The algorithms' math on hand-checked numbers (no cluster): GAE and prioritized replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from solray.rllib._internal.replay_buffer import PrioritizedReplayBuffer, make_replay_buffer
from solray.rllib.algorithms.ppo import PPOConfig
from solray.rllib.algorithms.ppo.ppo_learner import compute_gae


class ValueIsFirstFeature:
    """A stand-in module whose value of an observation is its first feature."""

    def compute_values(self, batch):
        return batch["obs"][:, 0].clone()


def test_gae_bootstraps_truncation_and_cuts_but_not_termination():
    # Two env pieces back to back: [s0, s1 (terminated)] and [s2, s3 (fragment cut)].
    batch = {
        "obs": np.array([[1.0], [2.0], [3.0], [4.0]], np.float32),
        "new_obs": np.array([[2.0], [9.0], [4.0], [5.0]], np.float32),
        "rewards": np.array([1.0, 1.0, 0.5, 0.5], np.float32),
        "terminateds": np.array([False, True, False, False]),
        "truncateds": np.zeros(4, bool),
        "seg_end": np.array([False, True, False, True]),
    }
    config = PPOConfig().training(gamma=0.9, lambda_=0.5)
    out = compute_gae(ValueIsFirstFeature(), batch, config)
    g, lam = 0.9, 0.5
    d1 = 1.0 + 0 - 2.0                      # terminated: no bootstrap from new_obs (value 9)
    d0 = 1.0 + g * 2.0 - 1.0
    d3 = 0.5 + g * 5.0 - 4.0                # cut: bootstrap from the next observation
    d2 = 0.5 + g * 4.0 - 3.0
    expected = [d0 + g * lam * d1, d1, d2 + g * lam * d3, d3]
    np.testing.assert_allclose(out["advantages"], expected, rtol=1e-6)
    np.testing.assert_allclose(out["value_targets"], np.array(expected) + [1, 2, 3, 4], rtol=1e-6)


def test_prioritized_replay_prefers_large_td_errors_and_corrects_with_weights():
    buffer = make_replay_buffer({"type": "PrioritizedEpisodeReplayBuffer", "capacity": 4, "alpha": 1.0,
                                 "beta": 1.0}, seed=0)
    assert isinstance(buffer, PrioritizedReplayBuffer)
    rows = {"obs": np.arange(6, dtype=np.float32)[:, None], "new_obs": np.zeros((6, 1), np.float32),
            "actions": np.zeros(6, np.int64), "rewards": np.zeros(6, np.float32), "terminateds": np.zeros(6, bool)}
    buffer.add(rows)
    assert len(buffer) == 4  # a ring: rows 4 and 5 overwrote rows 0 and 1
    assert sorted(buffer.data["obs"][:, 0]) == [2.0, 3.0, 4.0, 5.0]
    buffer.update_priorities(np.arange(4), np.array([9.0, 1.0, 1.0, 1.0]))
    sample = buffer.sample(2000)
    share = np.mean(sample["batch_indexes"] == 0)
    assert share == pytest.approx(0.75, abs=0.05)  # priority 9 of 12
    # Importance weights undo the bias: the over-sampled row weighs 1/9 of the others.
    assert sample["weights"][sample["batch_indexes"] == 0][0] == pytest.approx(1 / 9, rel=1e-3)
    with pytest.raises(ValueError, match="Unknown replay buffer type"):
        make_replay_buffer({"type": "Nope"}, seed=0)


def test_default_module_acting_matches_torch_forward():
    from solray.rllib._internal.env_factory import resolve_env_creator
    from solray.rllib._internal.module_specs import build_module_specs
    from solray.rllib._internal.modules import DefaultPPOTorchRLModule

    config = PPOConfig().environment("CartPole-v1").rl_module(model_config={"fcnet_hiddens": [8, 8]})
    specs, _ = build_module_specs(config, resolve_env_creator("CartPole-v1"), DefaultPPOTorchRLModule, "PPO", None)
    module = specs["default_policy"].build()
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    numpy_logits = module.numpy_policy()(obs)
    torch_logits = module.forward_inference({"obs": torch.from_numpy(obs)})["action_dist_inputs"].numpy()
    np.testing.assert_allclose(numpy_logits, torch_logits, rtol=1e-5, atol=1e-6)
