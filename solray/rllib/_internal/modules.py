"""The default torch RLModules: PPO's actor-critic, DQN's Q-network and SAC's actor + twin critics.

Each module knows how it acts while sampling (``compute_actions``), so an EnvRunner needs no
algorithm-specific code: it calls ``compute_actions`` on a batch of encoded observations and
stores what comes back (actions plus extra columns such as ``action_logp``).

The encoder follows the observation space as in Ray: an MLP (``fcnet_hiddens``) for vectors, a
conv stack (``conv_filters``, channels-last images, "same" padding unless a filter says
"valid") for rank-3 Box observations. With ``use_lstm`` (PPO) an LSTM follows the encoder; its
state is ``{"h", "c"}`` of shape ``(batch, 1, lstm_cell_size)`` and observations then carry a
time dimension ``(batch, time, ...)`` (left out, one step is assumed). With
``lstm_use_prev_action`` / ``lstm_use_prev_reward`` the LSTM also reads the previous step's
action (one-hot for Discrete, the vector for Box) and reward, from the batch's
``prev_actions`` / ``prev_rewards`` (zeros at an episode's first step; the EnvRunner records them).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from solray.rllib._internal.distributions import for_action_space
from solray.rllib._internal.env_factory import ObsEncoder, is_image_space
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


def action_input_size(space: gym.Space) -> int:
    """How many numbers a previous action of ``space`` takes as a network input."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    raise ValueError(f"model_config lstm_use_prev_action=True needs a Discrete or Box action space, got {space}")


def action_dist_size(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    return 2 * int(np.prod(space.shape))


# Ray's stacks for common image sizes (models/utils.py get_filter_config), keyed by (H, W).
_DEFAULT_CONV_FILTERS = {
    (96, 96): [[16, [8, 8], 4], [32, [4, 4], 2], [256, [11, 11], 2]],
    (84, 84): [[16, [8, 8], 4], [32, [4, 4], 2], [256, [11, 11], 1]],
    (64, 64): [[16, [4, 4], 2], [32, [4, 4], 2], [64, [4, 4], 2], [128, [4, 4], 2]],
    (42, 42): [[16, [4, 4], 2], [32, [4, 4], 2], [256, [11, 11], 1]],
    (10, 10): [[16, [5, 5], 2], [32, [5, 5], 2]],
}


def conv_filters_for(shape: tuple[int, ...], conv_filters: Any) -> list:
    """``conv_filters`` as given, or Ray's default stack for this image size."""
    if conv_filters:
        return [list(f) for f in conv_filters]
    default = _DEFAULT_CONV_FILTERS.get(tuple(shape[:2]))
    if default is None:
        sizes = ", ".join(f"{h}x{w}" for h, w in _DEFAULT_CONV_FILTERS)
        raise ValueError(
            f"No default conv_filters for image observations of shape {tuple(shape)} (defaults exist for "
            f"{sizes}): set model_config conv_filters=[[out_channels, kernel, stride], ...], e.g. "
            "config.rl_module(model_config={'conv_filters': [[16, 4, 2], [32, 4, 2]]}).")
    return default


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (list, tuple)) else (int(value), int(value))


class ConvEncoder(nn.Module):
    """Conv2D stack over channels-last images, flattened; any leading (batch, time) dims."""

    def __init__(self, shape: tuple[int, int, int], filters: list, activation: str | None) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"Unknown conv_activation {activation!r}; use one of "
                             f"{sorted(k for k in _ACTIVATIONS if k)}")
        self.shape = tuple(shape)
        layers: list[nn.Module] = []
        size, channels = self.shape[:2], self.shape[2]
        for spec in filters:
            if len(spec) not in (3, 4) or (len(spec) == 4 and spec[3] not in ("same", "valid")):
                raise ValueError(f"conv_filters entry {spec!r}: expected [out_channels, kernel, stride] "
                                 "or [out_channels, kernel, stride, 'same'|'valid']")
            out, kernel, stride = int(spec[0]), _pair(spec[1]), _pair(spec[2])
            if len(spec) == 3 or spec[3] == "same":  # TensorFlow's "same": output = ceil(input / stride)
                pads = []
                for dim in (1, 0):  # ZeroPad2d wants (left, right, top, bottom)
                    total = max((-(-size[dim] // stride[dim]) - 1) * stride[dim] + kernel[dim] - size[dim], 0)
                    pads += [total // 2, total - total // 2]
                layers.append(nn.ZeroPad2d(tuple(pads)))
                size = tuple(-(-size[d] // stride[d]) for d in (0, 1))
            else:
                size = tuple((size[d] - kernel[d]) // stride[d] + 1 for d in (0, 1))
            if min(size) < 1:
                raise ValueError(f"conv_filters {filters!r} shrink the {self.shape} image to nothing")
            layers.append(nn.Conv2d(channels, out, kernel, stride))
            if _ACTIVATIONS[activation] is not None:
                layers.append(_ACTIVATIONS[activation]())
            channels = out
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out_size = int(channels * size[0] * size[1])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:-3]
        x = obs.reshape((-1,) + self.shape).float().permute(0, 3, 1, 2)
        return self.net(x).reshape(lead + (self.out_size,))


class _DefaultModule(RLModule):
    #: whether the subclass handles use_lstm / image observations
    supports_lstm = False
    supports_images = True

    def setup(self) -> None:
        raw = self.model_config
        # Algorithm keys that shape the network (DQN's dueling) ride along in the dict.
        self.extras = {k: raw[k] for k in ("dueling",) if isinstance(raw, dict) and k in raw}
        if self.extras:
            raw = {k: v for k, v in raw.items() if k not in self.extras}
        self.config = DefaultModelConfig.from_any(raw)
        name = type(self).__name__
        if self.config.use_lstm and not self.supports_lstm:
            raise ValueError(f"model_config use_lstm=True is not supported by {name} (PPO's default module has it).")
        self.is_image = is_image_space(self.observation_space)
        if self.is_image and not self.supports_images:
            raise ValueError(f"{name} does not take image observations {self.observation_space}; "
                             "flatten them (gymnasium.wrappers.FlattenObservation) or use PPO/DQN.")
        self.obs_shape = ObsEncoder(self.observation_space).shape
        self.obs_size = int(np.prod(self.obs_shape))
        self.build()

    def build(self) -> None:
        raise NotImplementedError

    def make_encoder(self) -> tuple[nn.Module, int]:
        """The observation encoder and its output size: conv stack for images, else the MLP."""
        c = self.config
        if self.is_image:
            encoder = ConvEncoder(self.obs_shape, conv_filters_for(self.obs_shape, c.conv_filters), c.conv_activation)
            return encoder, encoder.out_size
        encoder = mlp(self.obs_size, c.fcnet_hiddens, c.fcnet_activation)
        return encoder, _last_size(encoder, self.obs_size)


class DefaultPPOTorchRLModule(_DefaultModule):
    """Policy head (action logits or Gaussian mean/log-std) and value head, shared trunk or not;
    with ``use_lstm`` an LSTM between the (shared) encoder and the heads."""

    supports_lstm = True
    #: the batch columns besides obs and state_in the LSTM reads (lstm_use_prev_action/reward)
    prev_inputs: tuple[str, ...] = ()

    def build(self) -> None:
        c = self.config
        self.encoder, feat = self.make_encoder()
        self.vf_encoder = None if c.vf_share_layers else self.make_encoder()[0]
        self.lstm = None
        if c.use_lstm:
            if not c.vf_share_layers:
                raise ValueError("model_config use_lstm=True needs vf_share_layers=True (one LSTM for the "
                                 "policy and value heads) in solray.rllib.")
            if int(c.max_seq_len) < 1 or int(c.lstm_cell_size) < 1:
                raise ValueError(f"model_config max_seq_len ({c.max_seq_len}) and lstm_cell_size "
                                 f"({c.lstm_cell_size}) must be >= 1")
            if c.lstm_use_prev_action:
                self.prev_inputs += (Columns.PREV_ACTIONS,)
            if c.lstm_use_prev_reward:
                self.prev_inputs += (Columns.PREV_REWARDS,)
            extra = action_input_size(self.action_space) if c.lstm_use_prev_action else 0
            extra += 1 if c.lstm_use_prev_reward else 0
            self.lstm = nn.LSTM(feat + extra, int(c.lstm_cell_size), batch_first=True)
            feat = int(c.lstm_cell_size)
        self.pi = mlp(feat, c.head_fcnet_hiddens, c.head_fcnet_activation, action_dist_size(self.action_space))
        self.vf = mlp(feat, c.head_fcnet_hiddens, c.head_fcnet_activation, 1)
        self.dist_class = for_action_space(self.action_space)
        # Small last layers: the first policy is near uniform and the first values near zero.
        nn.init.normal_(self.pi[-1].weight, std=0.01)
        nn.init.zeros_(self.pi[-1].bias)

    def get_initial_state(self) -> dict:
        if self.lstm is None:
            return {}
        zeros = torch.zeros(1, self.lstm.hidden_size)
        return {"h": zeros, "c": zeros.clone()}

    def _features(self, batch: dict, require_state: bool = False) -> tuple[torch.Tensor, dict | None]:
        """Encoder (+ LSTM) output, and the LSTM's state after the last step (None without LSTM)."""
        obs = batch[Columns.OBS]
        if self.lstm is None:
            return self.encoder(obs), None
        state = batch.get(Columns.STATE_IN)
        if state is None:
            if require_state:
                raise ValueError(f"{type(self).__name__} has an LSTM (use_lstm=True): forward_train needs "
                                 f"batch['{Columns.STATE_IN}'] = {{'h', 'c'}} at each sequence start")
            state = {k: v.expand(obs.shape[0], -1, -1) for k, v in self.get_initial_state().items()}
        one_step = obs.dim() == len(self.obs_shape) + 1  # no time dimension given
        if one_step:
            obs = obs.unsqueeze(1)
        h, c = (state[k].to(torch.float32).transpose(0, 1).contiguous() for k in ("h", "c"))
        inputs = self.encoder(obs)
        if self.prev_inputs:
            inputs = torch.cat([inputs, *self._prev_features(batch, inputs.shape[:2])], -1)
        out, (h, c) = self.lstm(inputs, (h, c))
        return (out.squeeze(1) if one_step else out), {"h": h.transpose(0, 1), "c": c.transpose(0, 1)}

    def _prev_features(self, batch: dict, lead: torch.Size) -> list[torch.Tensor]:
        """The previous actions (one-hot for Discrete) and rewards as ``(batch, time, size)`` floats."""
        features = []
        for key in self.prev_inputs:
            if key not in batch:
                raise ValueError(f"{type(self).__name__} was built with lstm_use_prev_action/lstm_use_prev_reward: "
                                 f"its forward passes need batch['{key}'] (zeros at an episode's first step)")
            value = torch.as_tensor(batch[key])
            if key == Columns.PREV_REWARDS:
                value = value.to(torch.float32).reshape(lead + (1,))
            elif isinstance(self.action_space, gym.spaces.Discrete):
                value = nn.functional.one_hot(value.to(torch.int64).reshape(lead), int(self.action_space.n))
            else:
                value = value.reshape(lead + (-1,))
            features.append(value.to(torch.float32))
        return features

    def _forward(self, batch: dict, **kwargs: Any) -> dict:
        features, state_out = self._features(batch)
        out = {Columns.ACTION_DIST_INPUTS: self.pi(features)}
        if state_out is not None:
            # The runner records values while acting: only there is the recurrent state at hand.
            out[Columns.VF_PREDS] = self.vf(features).squeeze(-1)
            out[Columns.STATE_OUT] = state_out
        return out

    def _forward_train(self, batch: dict, **kwargs: Any) -> dict:
        features, state_out = self._features(batch, require_state=True)
        vf_features = features if self.vf_encoder is None else self.vf_encoder(batch[Columns.OBS])
        out = {Columns.ACTION_DIST_INPUTS: self.pi(features), Columns.VF_PREDS: self.vf(vf_features).squeeze(-1)}
        if state_out is not None:
            out[Columns.STATE_OUT] = state_out
        return out

    def compute_values(self, batch: dict) -> torch.Tensor:
        if self.vf_encoder is not None:
            return self.vf(self.vf_encoder(batch[Columns.OBS])).squeeze(-1)
        return self.vf(self._features(batch)[0]).squeeze(-1)

    def numpy_policy(self) -> NumpyMLP | None:
        return None if self.lstm is not None else NumpyMLP.compile([self.encoder, self.pi])

    def compute_actions(self, obs: np.ndarray, explore: bool, rng: np.random.Generator,
                        policy_net: NumpyMLP | None = None, state: dict | None = None,
                        prev: dict | None = None) -> tuple[np.ndarray, dict]:
        return sample_from_dist_inputs(self, obs, explore, rng, policy_net, state, prev)


def sample_from_dist_inputs(module: RLModule, obs: np.ndarray, explore: bool, rng: np.random.Generator,
                            policy_net: NumpyMLP | None = None, state: dict | None = None,
                            prev: dict | None = None) -> tuple[np.ndarray, dict]:
    """Acting for modules that output ``action_dist_inputs`` (PPO's default and custom modules).

    A recurrent module gets ``state`` (one row per env) and its ``state_out`` comes back among
    the extras, with its ``vf_preds`` when the forward pass gives them; ``prev`` holds the
    ``prev_actions`` / ``prev_rewards`` columns a module built with them reads.
    """
    extras: dict = {}
    if policy_net is not None:
        inputs = policy_net(obs)
    else:
        forward = module.forward_exploration if explore else module.forward_inference
        batch = {Columns.OBS: torch.from_numpy(obs), **(prev or {})}
        if state is not None:
            batch[Columns.STATE_IN] = state
        out = forward(batch)
        inputs = out[Columns.ACTION_DIST_INPUTS].numpy()
        if state is not None:
            extras[Columns.STATE_OUT] = {k: v.numpy() for k, v in out[Columns.STATE_OUT].items()}
            if Columns.VF_PREDS in out:
                extras[Columns.VF_PREDS] = out[Columns.VF_PREDS].numpy().astype(np.float32)
    if isinstance(module.action_space, gym.spaces.Discrete):
        actions, logp = categorical(inputs, rng, explore)
    else:
        actions, logp = diag_gaussian(inputs, rng, explore)
    return actions, {Columns.ACTION_LOGP: logp, Columns.ACTION_DIST_INPUTS: inputs.astype(np.float32), **extras}


class DefaultDQNTorchRLModule(_DefaultModule):
    """Q-values per action; dueling splits them into a state value and advantages."""

    def build(self) -> None:
        c = self.config
        n = int(self.action_space.n)
        self.dueling = bool(self.extras.get("dueling", True))
        self.encoder, feat = self.make_encoder()
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

    supports_images = False

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
