"""framework("tf2")'s default RLModules: PPO's actor-critic and DQN's Q-network.

Their weights start as NumPy arrays (drawn like torch's ``nn.Linear`` initialisation, from
NumPy's global generator, which learners seed) and become ``tf.Variable``s the first time a
TensorFlow op needs them. An EnvRunner only loads weights (``set_state``), acts through
``numpy_policy()`` and, for PPO's GAE, calls ``compute_values`` on NumPy observations, which
runs in NumPy too: EnvRunners never import TensorFlow, only learners (and a user calling a
``forward_*`` method) do. Weights cross processes as dicts of NumPy arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from solray.rllib._internal.env_factory import ObsEncoder, is_image_space
from solray.rllib._internal.modules import action_dist_size, sample_from_dist_inputs
from solray.rllib._internal.numpy_policy import NumpyMLP
from solray.rllib._internal.tf.runtime import import_tf
from solray.rllib.core.columns import Columns
from solray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from solray.rllib.core.rl_module.rl_module import ForwardPasses

#: model-config activation names -> tf.nn function names ("linear"/None: no activation)
_TF_ACTIVATIONS = {"tanh": "tanh", "relu": "relu", "swish": "silu", "silu": "silu", "elu": "elu"}


class TfRLModule(ForwardPasses):
    """An RLModule over TensorFlow variables with the same API as the torch ``RLModule``."""

    framework = "tf2"

    def __init__(self, *, observation_space: Any = None, action_space: Any = None,
                 inference_only: bool = False, model_config: Any = None, catalog_class: Any = None,
                 **kwargs: Any) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.inference_only = inference_only
        self.model_config = model_config if model_config is not None else {}
        self.catalog_class = catalog_class
        self._arrays: dict[str, np.ndarray] = {}
        self._variables: dict | None = None
        self.setup()

    def setup(self) -> None:
        """Declare the weights (subclasses)."""

    # --- weights --------------------------------------------------------------------------
    @property
    def variables(self) -> dict:
        """``{name: tf.Variable}``, created from the NumPy weights on first use."""
        if self._variables is None:
            tf = import_tf()
            self._variables = {name: tf.Variable(value, name=name.replace(".", "_"))
                               for name, value in self._arrays.items()}
            self._arrays = {}
        return self._variables

    @property
    def trainable_variables(self) -> list:
        return list(self.variables.values())

    def get_state(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        """The weights as NumPy arrays (what travels to EnvRunners and into checkpoints)."""
        if self._variables is None:
            return {name: value.copy() for name, value in self._arrays.items()}
        return {name: var.numpy() for name, var in self._variables.items()}

    def set_state(self, state: dict[str, Any]) -> None:
        names = list(self._arrays) if self._variables is None else list(self._variables)
        missing = sorted(set(names) - set(state))
        if missing:
            raise KeyError(f"{type(self).__name__}.set_state: weights {missing} are missing from the state")
        if self._variables is None:
            self._arrays = {name: np.array(state[name], np.float32) for name in names}
        else:
            for name, var in self._variables.items():
                var.assign(np.asarray(state[name], np.float32))

    def eval(self) -> TfRLModule:
        """Torch's mode switch: these modules act the same in training and inference."""
        return self

    def train(self, mode: bool = True) -> TfRLModule:
        return self

    # --- forward passes: NumPy (or tensors) in, tf tensors out -----------------------------
    def forward_inference(self, batch: dict, **kwargs: Any) -> dict:
        return self._forward_inference(_as_tf(batch), **kwargs)

    def forward_exploration(self, batch: dict, **kwargs: Any) -> dict:
        return self._forward_exploration(_as_tf(batch), **kwargs)

    def forward_train(self, batch: dict, **kwargs: Any) -> dict:
        return self._forward_train(_as_tf(batch), **kwargs)

    def __call__(self, batch: dict, **kwargs: Any) -> dict:
        return self.forward_train(batch, **kwargs)


def _as_tf(batch: dict) -> dict:
    tf = import_tf()
    out = {}
    for key, value in batch.items():
        if not isinstance(value, tf.Tensor | tf.Variable):
            value = np.asarray(value)  # NumPy, lists, CPU torch tensors
            value = tf.constant(value.astype(np.float32) if value.dtype == np.float64 else value)
        out[key] = value
    return out


class DenseStack:
    """Dense layers ``{prefix}.{i}.kernel/bias`` of a module, ``activation`` after each hidden one."""

    def __init__(self, module: TfRLModule, prefix: str, in_size: int, hiddens: list[int],
                 activation: str | None, out_size: int | None = None) -> None:
        sizes = list(hiddens) + ([out_size] if out_size is not None else [])
        self.layers: list[tuple[str, str, str | None]] = []
        size = in_size
        for i, out in enumerate(sizes):
            is_output = out_size is not None and i == len(sizes) - 1
            kernel, bias = f"{prefix}.{i}.kernel", f"{prefix}.{i}.bias"
            bound = 1.0 / math.sqrt(size)  # torch's nn.Linear default, so both frameworks start alike
            module._arrays[kernel] = np.random.uniform(-bound, bound, (size, out)).astype(np.float32)
            module._arrays[bias] = np.random.uniform(-bound, bound, (out,)).astype(np.float32)
            self.layers.append((kernel, bias, None if is_output or activation == "linear" else activation))
            size = out
        self.out_size = size

    def __call__(self, x: Any, variables: dict) -> Any:
        tf = import_tf()
        for kernel, bias, activation in self.layers:
            x = tf.matmul(x, variables[kernel]) + variables[bias]
            if activation is not None:
                x = getattr(tf.nn, _TF_ACTIVATIONS[activation])(x)
        return x

    def numpy_layers(self, weights: dict[str, np.ndarray]) -> list[tuple]:
        return [(weights[kernel], weights[bias], activation) for kernel, bias, activation in self.layers]


class _DefaultTfModule(TfRLModule):
    def setup(self) -> None:
        raw = self.model_config
        # Algorithm keys that shape the network (DQN's dueling) ride along in the dict.
        self.extras = {k: raw[k] for k in ("dueling",) if isinstance(raw, dict) and k in raw}
        if self.extras:
            raw = {k: v for k, v in raw.items() if k not in self.extras}
        self.config = check_model_config(raw)
        if is_image_space(self.observation_space):
            raise ValueError(f"Image observations {self.observation_space} need a conv encoder, which "
                             "framework('tf2') does not have (its default modules are MLPs only); use "
                             "framework('torch').")
        self.obs_size = ObsEncoder(self.observation_space).size
        self.build()

    def build(self) -> None:
        raise NotImplementedError


def check_model_config(raw: Any) -> DefaultModelConfig:
    """The model config, refusing what the tf2 default modules cannot build (they are MLPs)."""
    config = DefaultModelConfig.from_any(raw)
    for option, value, asked in (("conv_filters", config.conv_filters, config.conv_filters is not None),
                                 ("use_lstm", config.use_lstm, bool(config.use_lstm))):
        if asked:
            raise ValueError(f"model_config {option}={value!r} is not supported with framework('tf2'): its "
                             "default modules are MLPs only (fcnet_*/head_fcnet_*). Use framework('torch') "
                             f"for {option}.")
    for key in ("fcnet_activation", "head_fcnet_activation"):
        name = getattr(config, key)
        if name not in _TF_ACTIVATIONS and name not in ("linear", None):
            raise ValueError(f"Unknown {key} {name!r}; use one of {sorted(_TF_ACTIVATIONS) + ['linear']}")
    return config


class DefaultPPOTfRLModule(_DefaultTfModule):
    """Policy head (action logits or Gaussian mean/log-std) and value head, shared trunk or not."""

    def build(self) -> None:
        c = self.config
        self.encoder = DenseStack(self, "encoder", self.obs_size, c.fcnet_hiddens, c.fcnet_activation)
        feat = self.encoder.out_size
        self.pi = DenseStack(self, "pi", feat, c.head_fcnet_hiddens, c.head_fcnet_activation,
                             action_dist_size(self.action_space))
        self.vf_encoder = (None if c.vf_share_layers else
                           DenseStack(self, "vf_encoder", self.obs_size, c.fcnet_hiddens, c.fcnet_activation))
        self.vf = DenseStack(self, "vf", feat, c.head_fcnet_hiddens, c.head_fcnet_activation, 1)
        # Small last policy layer: the first policy is near uniform (as the torch module).
        kernel, bias, _ = self.pi.layers[-1]
        self._arrays[kernel] = np.random.normal(0.0, 0.01, self._arrays[kernel].shape).astype(np.float32)
        self._arrays[bias] = np.zeros_like(self._arrays[bias])

    def _value_stacks(self) -> list[DenseStack]:
        return [self.encoder if self.vf_encoder is None else self.vf_encoder, self.vf]

    def _forward(self, batch: dict, **kwargs: Any) -> dict:
        v = self.variables
        return {Columns.ACTION_DIST_INPUTS: self.pi(self.encoder(batch[Columns.OBS], v), v)}

    def _forward_train(self, batch: dict, **kwargs: Any) -> dict:
        tf, v, obs = import_tf(), self.variables, batch[Columns.OBS]
        features = self.encoder(obs, v)
        vf_features = features if self.vf_encoder is None else self.vf_encoder(obs, v)
        return {Columns.ACTION_DIST_INPUTS: self.pi(features, v),
                Columns.VF_PREDS: tf.squeeze(self.vf(vf_features, v), -1)}

    def compute_values(self, batch: dict) -> Any:
        """Value estimates: NumPy observations give a NumPy array computed without TensorFlow."""
        obs = batch[Columns.OBS]
        if isinstance(obs, np.ndarray):
            weights = self.get_state()
            layers = [layer for stack in self._value_stacks() for layer in stack.numpy_layers(weights)]
            return NumpyMLP.from_arrays(layers)(obs.astype(np.float32, copy=False))[:, 0]
        tf, v = import_tf(), self.variables
        trunk, head = self._value_stacks()
        return tf.squeeze(head(trunk(_as_tf(batch)[Columns.OBS], v), v), -1)

    def numpy_policy(self) -> NumpyMLP:
        weights = self.get_state()
        return NumpyMLP.from_arrays(self.encoder.numpy_layers(weights) + self.pi.numpy_layers(weights))

    def compute_actions(self, obs: np.ndarray, explore: bool, rng: np.random.Generator,
                        policy_net: NumpyMLP | None = None) -> tuple[np.ndarray, dict]:
        return sample_from_dist_inputs(self, obs, explore, rng, policy_net)


class _NumpyQ:
    """DQN's Q-values in NumPy, dueling heads included."""

    def __init__(self, encoder: NumpyMLP, advantage: NumpyMLP, value: NumpyMLP | None) -> None:
        self.encoder, self.advantage, self.value = encoder, advantage, value

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        features = self.encoder(obs)
        adv = self.advantage(features)
        if self.value is None:
            return adv
        return self.value(features) + adv - adv.mean(-1, keepdims=True)


class DefaultDQNTfRLModule(_DefaultTfModule):
    """Q-values per action; dueling splits them into a state value and advantages."""

    def build(self) -> None:
        c = self.config
        n = int(self.action_space.n)
        self.dueling = bool(self.extras.get("dueling", True))
        self.encoder = DenseStack(self, "encoder", self.obs_size, c.fcnet_hiddens, c.fcnet_activation)
        feat = self.encoder.out_size
        self.advantage = DenseStack(self, "advantage", feat, c.head_fcnet_hiddens, c.head_fcnet_activation, n)
        self.value = (DenseStack(self, "value", feat, c.head_fcnet_hiddens, c.head_fcnet_activation, 1)
                      if self.dueling else None)

    def q_values(self, obs: Any) -> Any:
        tf, v = import_tf(), self.variables
        features = self.encoder(obs, v)
        adv = self.advantage(features, v)
        if self.value is None:
            return adv
        return self.value(features, v) + adv - tf.reduce_mean(adv, -1, keepdims=True)

    def _forward(self, batch: dict, **kwargs: Any) -> dict:
        q = self.q_values(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: q, "qf_preds": q}

    def numpy_policy(self) -> _NumpyQ:
        w = self.get_state()
        return _NumpyQ(NumpyMLP.from_arrays(self.encoder.numpy_layers(w)),
                       NumpyMLP.from_arrays(self.advantage.numpy_layers(w)),
                       None if self.value is None else NumpyMLP.from_arrays(self.value.numpy_layers(w)))

    def compute_actions(self, obs: np.ndarray, explore: bool, rng: np.random.Generator,
                        policy_net: _NumpyQ | None = None, epsilon: float = 0.0) -> tuple[np.ndarray, dict]:
        greedy = (policy_net or self.numpy_policy())(obs).argmax(-1)
        if explore and epsilon > 0:
            pick = rng.random(greedy.shape) < epsilon
            greedy = np.where(pick, rng.integers(0, int(self.action_space.n), greedy.shape), greedy)
        return greedy, {}


__all__ = ["DefaultDQNTfRLModule", "DefaultPPOTfRLModule", "TfRLModule"]
