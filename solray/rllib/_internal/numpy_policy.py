"""Acting in NumPy: the default modules' policy networks, evaluated without torch per step.

An EnvRunner acts once per env step on a handful of observations; at that size torch's
per-call overhead (tens of microseconds per op) costs more than the math. The default modules
expose their policy path as ``nn.Sequential`` pieces of Linear layers and activations, which
compile to a few NumPy matmuls; weights are re-read after every weight sync. Sampling uses
the runner's seeded NumPy generator. Custom modules keep the torch path.
"""

from __future__ import annotations

import numpy as np
from torch import nn

_NUMPY_ACTIVATIONS = {nn.Tanh: np.tanh, nn.ReLU: lambda x: np.maximum(x, 0.0),
                      nn.SiLU: lambda x: x / (1.0 + np.exp(-x)),
                      nn.ELU: lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))}
#: the same functions by the names model configs use (modules that hold plain weight arrays)
_NUMPY_ACTIVATIONS_BY_NAME = {"tanh": _NUMPY_ACTIVATIONS[nn.Tanh], "relu": _NUMPY_ACTIVATIONS[nn.ReLU],
                              "swish": _NUMPY_ACTIVATIONS[nn.SiLU], "silu": _NUMPY_ACTIVATIONS[nn.SiLU],
                              "elu": _NUMPY_ACTIVATIONS[nn.ELU]}


class NumpyMLP:
    """A chain of ``nn.Sequential`` blocks as NumPy layers (``None`` when it holds other layers)."""

    def __init__(self, layers: list) -> None:
        self.layers = layers

    @classmethod
    def compile(cls, blocks: list[nn.Sequential]) -> NumpyMLP | None:
        layers = []
        for block in blocks:
            if not isinstance(block, nn.Sequential):  # a conv encoder, an LSTM: torch acts
                return None
            for layer in block:
                if isinstance(layer, nn.Linear):
                    w = layer.weight.detach().numpy().T.astype(np.float32).copy()
                    b = layer.bias.detach().numpy().astype(np.float32).copy()
                    layers.append(("linear", w, b))
                elif type(layer) in _NUMPY_ACTIVATIONS:
                    layers.append(("act", _NUMPY_ACTIVATIONS[type(layer)], None))
                else:
                    return None
        return cls(layers)

    @classmethod
    def from_arrays(cls, layers: list[tuple[np.ndarray, np.ndarray, str | None]]) -> NumpyMLP:
        """Dense layers given as ``(kernel [in, out], bias, activation name or None)``."""
        compiled = []
        for kernel, bias, activation in layers:
            compiled.append(("linear", np.asarray(kernel, np.float32), np.asarray(bias, np.float32)))
            if activation not in (None, "linear"):
                compiled.append(("act", _NUMPY_ACTIVATIONS_BY_NAME[activation], None))
        return cls(compiled)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for kind, a, b in self.layers:
            x = x @ a + b if kind == "linear" else a(x)
        return x


def categorical(logits: np.ndarray, rng: np.random.Generator, explore: bool) -> tuple[np.ndarray, np.ndarray]:
    """Actions and their log-probabilities from logits (Gumbel-max sampling when exploring)."""
    logp_all = logits - logits.max(-1, keepdims=True)
    logp_all = logp_all - np.log(np.exp(logp_all).sum(-1, keepdims=True))
    if explore:
        actions = (logp_all - np.log(-np.log(rng.random(logp_all.shape)))).argmax(-1)
    else:
        actions = logp_all.argmax(-1)
    return actions, logp_all[np.arange(len(actions)), actions].astype(np.float32)


def diag_gaussian(inputs: np.ndarray, rng: np.random.Generator, explore: bool,
                  log_std_clip: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    mean, log_std = np.split(inputs, 2, axis=-1)
    log_std = np.clip(log_std, -log_std_clip, log_std_clip)
    actions = mean + np.exp(log_std) * rng.standard_normal(mean.shape) if explore else mean
    z = (actions - mean) / np.exp(log_std)
    logp = (-0.5 * z * z - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
    return actions.astype(np.float32), logp.astype(np.float32)
