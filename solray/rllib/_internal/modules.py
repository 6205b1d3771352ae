"""The default torch RLModules: PPO's actor-critic, DQN's Q-network and SAC's actor + twin critics.

Each module knows how it acts while sampling (``compute_actions``), so an EnvRunner needs no
algorithm-specific code: it calls ``compute_actions`` on a batch of encoded observations and
stores what comes back (actions plus extra columns such as ``action_logp``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from solray.rllib._internal.distributions import for_action_space
from solray.rllib._internal.env_factory import ObsEncoder
from solray.rllib._internal.numpy_policy import NumpyMLP, categorical, diag_gaussian
from solray.rllib.core.columns import Columns
from solray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from solray.rllib.core.rl_module.rl_module import RLModule

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "swish": nn.SiLU, "silu": nn.SiLU, "elu": nn.ELU,
                "linear": None, None: None}


def mlp(in_size: int, hiddens: list[int], activation: str | None, out_size: int | None = None) -> nn.Sequential:
    """Linear layers with ``activation`` between them, and an optional linear output layer."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; use one of {sorted(k for k in _ACTIVATIONS if k)}")
    layers: list[nn.Module] = []
    size = in_size
    for hidden in hiddens:
        layers.append(nn.Linear(size, hidden))
        if _ACTIVATIONS[activation] is not None:
            layers.append(_ACTIVATIONS[activation]())
        size = hidden
    if out_size is not None:
        layers.append(nn.Linear(size, out_size))
    return nn.Sequential(*layers)


def _last_size(net: nn.Sequential, default: int) -> int:
    sizes = [m.out_features for m in net if isinstance(m, nn.Linear)]
    return sizes[-1] if sizes else default


def action_dist_size(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    return 2 * int(np.prod(space.shape))


class _DefaultModule(RLModule):
    def setup(self) -> None:
        raw = self.model_config
        # Algorithm keys that shape the network (DQN's dueling) ride along in the dict.
        self.extras = {k: raw[k] for k in ("dueling",) if isinstance(raw, dict) and k in raw}
        if self.extras:
            raw = {k: v for k, v in raw.items() if k not in self.extras}
        self.config = DefaultModelConfig.from_any(raw)
        if self.config.use_lstm:
            raise ValueError("model_config use_lstm=True is not supported by solray.rllib's default modules.")
        self.obs_size = ObsEncoder(self.observation_space).size
        self.build()

    def build(self) -> None:
        raise NotImplementedError


class DefaultPPOTorchRLModule(_DefaultModule):
    """Policy head (action logits or Gaussian mean/log-std) and value head, shared trunk or not."""

    def build(self) -> None:
        c = self.config
        self.encoder = mlp(self.obs_size, c.fcnet_hiddens, c.fcnet_activation)
        feat = _last_size(self.encoder, self.obs_size)
        self.pi = mlp(feat, c.head_fcnet_hiddens, c.head_fcnet_activation, action_dist_size(self.action_space))
        self.vf_encoder = None if c.vf_share_layers else mlp(self.obs_size, c.fcnet_hiddens, c.fcnet_activation)
        self.vf = mlp(feat, c.head_fcnet_hiddens, c.head_fcnet_activation, 1)
        self.dist_class = for_action_space(self.action_space)
        # Small last layers: the first policy is near uniform and the first values near zero.
        nn.init.normal_(self.pi[-1].weight, std=0.01)
        nn.init.zeros_(self.pi[-1].bias)

    def _forward(self, batch: dict, **kwargs: Any) -> dict:
        return {Columns.ACTION_DIST_INPUTS: self.pi(self.encoder(batch[Columns.OBS]))}

    def _forward_train(self, batch: dict, **kwargs: Any) -> dict:
        features = self.encoder(batch[Columns.OBS])
        vf_features = features if self.vf_encoder is None else self.vf_encoder(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: self.pi(features), Columns.VF_PREDS: self.vf(vf_features).squeeze(-1)}

    def compute_values(self, batch: dict) -> torch.Tensor:
        obs = batch[Columns.OBS]
        return self.vf(self.encoder(obs) if self.vf_encoder is None else self.vf_encoder(obs)).squeeze(-1)


    def numpy_policy(self) -> NumpyMLP | None:
        return NumpyMLP.compile([self.encoder, self.pi])

    def compute_actions(self, obs: np.ndarray, explore: bool, rng: np.random.Generator,
                        policy_net: NumpyMLP | None = None) -> tuple[np.ndarray, dict]:
        return sample_from_dist_inputs(self, obs, explore, rng, policy_net)


def sample_from_dist_inputs(module: RLModule, obs: np.ndarray, explore: bool,
                            rng: np.random.Generator, policy_net: NumpyMLP | None = None) -> tuple[np.ndarray, dict]:
    """Acting for modules that output ``action_dist_inputs`` (PPO's default and custom modules)."""
    if policy_net is not None:
        inputs = policy_net(obs)
    else:
        forward = module.forward_exploration if explore else module.forward_inference
        inputs = forward({Columns.OBS: torch.from_numpy(obs)})[Columns.ACTION_DIST_INPUTS].numpy()
    if isinstance(module.action_space, gym.spaces.Discrete):
        actions, logp = categorical(inputs, rng, explore)
    else:
        actions, logp = diag_gaussian(inputs, rng, explore)
    return actions, {Columns.ACTION_LOGP: logp, Columns.ACTION_DIST_INPUTS: inputs.astype(np.float32)}


class DefaultDQNTorchRLModule(_DefaultModule):
    """Q-values per action; dueling splits them into a state value and advantages."""

    def build(self) -> None:
        c = self.config
        n = int(self.action_space.n)
        self.dueling = bool(self.extras.get("dueling", True))
        self.encoder = mlp(self.obs_size, c.fcnet_hiddens, c.fcnet_activation)
        feat = _last_size(self.encoder, self.obs_size)
        self.advantage = mlp(feat, c.head_fcnet_hiddens, c.head_fcnet_activation, n)
        self.value = mlp(feat, c.head_fcnet_hiddens, c.head_fcnet_activation, 1) if self.dueling else None

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.encoder(obs)
        adv = self.advantage(features)
        if self.value is None:
            return adv
        return self.value(features) + adv - adv.mean(-1, keepdim=True)

    def _forward(self, batch: dict, **kwargs: Any) -> dict:
        q = self.q_values(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: q, "qf_preds": q}

    def numpy_policy(self) -> NumpyMLP | None:
        return None if self.dueling else NumpyMLP.compile([self.encoder, self.advantage])

    def compute_actions(self, obs: np.ndarray, explore: bool, rng: np.random.Generator,
                        policy_net: NumpyMLP | None = None, epsilon: float = 0.0) -> tuple[np.ndarray, dict]:
        if policy_net is not None:
            greedy = policy_net(obs).argmax(-1)
        else:
            with torch.no_grad():
                greedy = self.q_values(torch.from_numpy(obs)).argmax(-1).numpy()
        if explore and epsilon > 0:
            pick = rng.random(greedy.shape) < epsilon
            greedy = np.where(pick, rng.integers(0, int(self.action_space.n), greedy.shape), greedy)
        return greedy, {}


class DefaultSACTorchRLModule(_DefaultModule):
    """A squashed-Gaussian actor and twin Q critics over (obs, action); actions live in [-1, 1]."""

    def build(self) -> None:
        c = self.config
        self.act_size = int(np.prod(self.action_space.shape))
        self.pi = mlp(self.obs_size, c.fcnet_hiddens, c.fcnet_activation, 2 * self.act_size)
        self.qf = mlp(self.obs_size + self.act_size, c.fcnet_hiddens, c.fcnet_activation, 1)
        self.qf_twin = mlp(self.obs_size + self.act_size, c.fcnet_hiddens, c.fcnet_activation, 1)

    def _forward(self, batch: dict, **kwargs: Any) -> dict:
        return {Columns.ACTION_DIST_INPUTS: self.pi(batch[Columns.OBS])}

    def q(self, obs: torch.Tensor, actions: torch.Tensor, twin: bool = False) -> torch.Tensor:
        net = self.qf_twin if twin else self.qf
        return net(torch.cat([obs, actions], -1)).squeeze(-1)

    def numpy_policy(self) -> NumpyMLP | None:
        return NumpyMLP.compile([self.pi])

    def compute_actions(self, obs: np.ndarray, explore: bool, rng: np.random.Generator,
                        policy_net: NumpyMLP | None = None, random_actions: bool = False) -> tuple[np.ndarray, dict]:
        if random_actions:
            return rng.uniform(-1.0, 1.0, (obs.shape[0], self.act_size)).astype(np.float32), {}
        inputs = policy_net(obs) if policy_net is not None else self.pi(torch.from_numpy(obs)).detach().numpy()
        mean, log_std = np.split(inputs, 2, axis=-1)
        raw = mean + np.exp(np.clip(log_std, -20, 2)) * rng.standard_normal(mean.shape) if explore else mean
        return np.tanh(raw).astype(np.float32), {}


__all__ = ["DefaultDQNTorchRLModule", "DefaultPPOTorchRLModule", "DefaultSACTorchRLModule",
           "sample_from_dist_inputs"]
