"""solray.rllib: reinforcement learning on solray (Ray RLlib's new API stack).

    from solray.rllib.algorithms.ppo import PPOConfig
    algo = PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=2).build_algo()
    print(algo.train()["env_runners"]["episode_return_mean"])

EnvRunner actors sample gymnasium envs; learners (in this process or as actors training with
torch.distributed) update the RLModules; weights travel through the object store once per update.
Names load on first use, so ``solray rllib --help`` does not import torch.
"""

from __future__ import annotations

from solray.rllib._internal.lazy import lazy_getattr

_EXPORTS = {
    "Algorithm": "solray.rllib.algorithms.algorithm",
    "AlgorithmConfig": "solray.rllib.algorithms.algorithm_config",
    "MultiAgentEnv": "solray.rllib.env.multi_agent_env",
    "PolicySpec": "solray.rllib.policy.policy",
    "register_env": "solray.rllib.env.registry",
}


__getattr__ = lazy_getattr("solray.rllib", _EXPORTS)

__all__ = sorted(_EXPORTS)
