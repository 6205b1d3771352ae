"""Multi-agent: two policies trained side by side on a MultiAgentEnv."""

from __future__ import annotations

import pytest
import torch
from rllib_helpers import TwoAgentGuessing

from solray.rllib.algorithms.ppo import PPOConfig
from solray.rllib.policy.policy import PolicySpec


def two_policy_config(mapping) -> PPOConfig:
    return (PPOConfig().environment(TwoAgentGuessing, env_config={"length": 10})
            .env_runners(num_env_runners=1)
            .multi_agent(policies={"policy_a": PolicySpec(), "policy_b": PolicySpec()}, policy_mapping_fn=mapping)
            .training(lr=3e-3, train_batch_size=400, minibatch_size=100, num_epochs=4, entropy_coeff=0.0)
            .rl_module(model_config={"fcnet_hiddens": [16]})
            .debugging(seed=0))


def test_two_policies_learn_their_own_agents(rl_cluster):
    algo = two_policy_config(lambda agent_id, episode, **kw: f"policy_{agent_id}").build_algo()
    try:
        for _ in range(6):
            result = algo.train()
        runners = result["env_runners"]
        assert set(result["learners"]) == {"policy_a", "policy_b", "__all_modules__"}
        assert set(runners["agent_episode_returns_mean"]) == {"a", "b"}
        assert set(runners["module_episode_returns_mean"]) == {"policy_a", "policy_b"}
        # Each agent's reward needs the opposite action; each policy learned its own.
        assert runners["module_episode_returns_mean"]["policy_a"] > 8
        assert runners["module_episode_returns_mean"]["policy_b"] > 8
        obs_a, obs_b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
        logits_a = algo.get_module("policy_a").forward_inference({"obs": obs_a})["action_dist_inputs"]
        logits_b = algo.get_module("policy_b").forward_inference({"obs": obs_b})["action_dist_inputs"]
        assert logits_a.argmax().item() == 0 and logits_b.argmax().item() == 1
        evaluation = algo.evaluate()["env_runners"]  # greedy: every step rewarded for both agents
        assert evaluation["num_episodes"] >= 10
        assert evaluation["module_episode_returns_mean"] == {"policy_a": 10.0, "policy_b": 10.0}
    finally:
        algo.stop()


def test_mapping_to_an_unknown_policy_fails_at_build_time(rl_cluster):
    with pytest.raises(ValueError, match="policy_mapping_fn returned 'policy_c' for agent 'b'"):
        two_policy_config(lambda agent_id, episode, **kw: "policy_a" if agent_id == "a" else "policy_c").build_algo()
