"""``RLModule``: the neural network(s) of one policy, and ``RLModuleSpec`` that builds it.

A module answers three forward passes on a batch dict (``{"obs": tensor}``):
``forward_inference`` (greedy acting), ``forward_exploration`` (acting while sampling) and
``forward_train`` (what the learner's loss needs). Subclasses write ``setup()`` and
``_forward`` (or the three ``_forward_*``), as in Ray's RLlib.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


class ForwardPasses:
    """The three ``_forward_*`` passes default to ``_forward`` (every framework's modules)."""

    def _forward(self, batch: dict, **kwargs: Any) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement _forward or the _forward_* methods")

    def _forward_inference(self, batch: dict, **kwargs: Any) -> dict:
        return self._forward(batch, **kwargs)

    def _forward_exploration(self, batch: dict, **kwargs: Any) -> dict:
        return self._forward(batch, **kwargs)

    def _forward_train(self, batch: dict, **kwargs: Any) -> dict:
        return self._forward(batch, **kwargs)


class RLModule(ForwardPasses, nn.Module):
    """A torch module with RLlib's forward-pass API (``TorchRLModule`` is the same class)."""

    framework = "torch"

    def __init__(self, *, observation_space: Any = None, action_space: Any = None,
                 inference_only: bool = False, model_config: Any = None, catalog_class: Any = None,
                 **kwargs: Any) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.inference_only = inference_only
        self.model_config = model_config if model_config is not None else {}
        self.catalog_class = catalog_class
        self.setup()

    def setup(self) -> None:
        """Build the layers (subclasses)."""

    # Ray's entry points: inputs may be numpy, outputs are torch tensors.
    def forward_inference(self, batch: dict, **kwargs: Any) -> dict:
        with torch.no_grad():
            return self._forward_inference(_as_tensors(batch), **kwargs)

    def forward_exploration(self, batch: dict, **kwargs: Any) -> dict:
        with torch.no_grad():
            return self._forward_exploration(_as_tensors(batch), **kwargs)

    def forward_train(self, batch: dict, **kwargs: Any) -> dict:
        return self._forward_train(_as_tensors(batch), **kwargs)

    def forward(self, batch: dict, **kwargs: Any) -> dict:
        return self.forward_train(batch, **kwargs)

    def get_initial_state(self) -> dict:
        """A recurrent module's state for one env at an episode start, without the batch
        dimension (``{}``: the module has no state)."""
        return {}

    def is_stateful(self) -> bool:
        """True when forward passes take ``state_in`` and return ``state_out`` (the batch's
        observations then carry a time dimension: ``(batch, time, ...)``)."""
        return bool(self.get_initial_state())

    def get_state(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        """The weights as NumPy arrays (what travels to EnvRunners through the object store)."""
        return {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in state.items()})


TorchRLModule = RLModule


def _as_tensors(batch: dict) -> dict:
    out = {}
    for key, value in batch.items():
        if isinstance(value, dict):  # a recurrent state
            value = _as_tensors(value)
        elif isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)
                                     if value.dtype == np.float64 else np.ascontiguousarray(value))
        out[key] = value
    return out


@dataclass
class RLModuleSpec:
    """What builds an ``RLModule``: its class, spaces and model config."""

    module_class: type | None = None
    observation_space: Any = None
    action_space: Any = None
    inference_only: bool = False
    model_config: Any = None
    catalog_class: Any = None
    learner_only: bool = False

    def build(self) -> RLModule:
        if self.module_class is None:
            raise ValueError("RLModuleSpec.module_class is not set")
        return self.module_class(observation_space=self.observation_space, action_space=self.action_space,
                                 inference_only=self.inference_only, model_config=self.model_config,
                                 catalog_class=self.catalog_class)

    def update(self, other: RLModuleSpec, override: bool = True) -> None:
        for f in dataclasses.fields(self):
            value = getattr(other, f.name)
            if value is not None and (override or getattr(self, f.name) is None):
                setattr(self, f.name, value)


@dataclass
class MultiRLModuleSpec:
    """Specs of several modules by module id (multi-agent)."""

    rl_module_specs: dict[str, RLModuleSpec] = field(default_factory=dict)

    def build(self) -> MultiRLModule:
        return MultiRLModule({mid: spec.build() for mid, spec in self.rl_module_specs.items()})


class MultiRLModule(nn.ModuleDict):
    """Modules by id; ``algo.get_module(id)`` returns one of them."""

    def get_state(self) -> dict:
        return {mid: m.get_state() for mid, m in self.items()}

    def set_state(self, state: dict) -> None:
        for mid, s in state.items():
            self[mid].set_state(s)
