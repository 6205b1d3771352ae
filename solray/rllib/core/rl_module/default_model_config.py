"""``DefaultModelConfig``: the network shapes RLlib's default modules are built from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DefaultModelConfig:
    """Shapes of the default modules: MLP or CNN encoder, optional LSTM, heads (Ray's field names and defaults)."""

    fcnet_hiddens: list[int] = field(default_factory=lambda: [256, 256])
    fcnet_activation: str = "tanh"
    fcnet_kernel_initializer: Any = None
    fcnet_bias_initializer: Any = None
    #: ``[[out_channels, kernel, stride(, "same"|"valid")], ...]`` for image (H, W, C) observations;
    #: None picks Ray's stack for common sizes (84x84, 64x64, 42x42, 10x10)
    conv_filters: Any = None
    conv_activation: str = "relu"
    head_fcnet_hiddens: list[int] = field(default_factory=list)
    head_fcnet_activation: str = "relu"
    vf_share_layers: bool = True
    free_log_std: bool = False
    log_std_clip_param: float = 20.0
    use_lstm: bool = False
    max_seq_len: int = 20
    lstm_cell_size: int = 256
    lstm_use_prev_action: bool = False
    lstm_use_prev_reward: bool = False

    @classmethod
    def from_any(cls, value: Any) -> DefaultModelConfig:
        """Accept a ``DefaultModelConfig``, a dict of its fields, or None (all defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            names = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(value) - names)
            if unknown:
                raise ValueError(f"model_config got unknown key(s) {unknown}; known keys: {sorted(names)}")
            return cls(**value)
        raise TypeError(f"model_config must be a dict or DefaultModelConfig, got {type(value).__name__}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
