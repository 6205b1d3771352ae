"""Action distributions over a module's ``action_dist_inputs``: categorical and diagonal Gaussian.

Sampling takes an explicit ``torch.Generator`` so a seeded EnvRunner samples the same actions
on every run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class Categorical:
    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits - logits.logsumexp(-1, keepdim=True)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.multinomial(self.logits.exp(), 1, generator=generator).squeeze(-1)

    def deterministic(self) -> torch.Tensor:
        return self.logits.argmax(-1)

    def logp(self, actions: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.logits.exp() * self.logits).sum(-1)

    def kl(self, other: Categorical) -> torch.Tensor:
        return (self.logits.exp() * (self.logits - other.logits)).sum(-1)


class DiagGaussian:
    def __init__(self, inputs: torch.Tensor, log_std_clip: float = 20.0) -> None:
        self.mean, log_std = inputs.chunk(2, dim=-1)
        self.log_std = log_std.clamp(-log_std_clip, log_std_clip)
        self.std = self.log_std.exp()

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def rsample(self) -> torch.Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)

    def deterministic(self) -> torch.Tensor:
        return self.mean

    def logp(self, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - self.mean) / self.std
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)

    def kl(self, other: DiagGaussian) -> torch.Tensor:
        return (other.log_std - self.log_std
                + (self.std.pow(2) + (self.mean - other.mean).pow(2)) / (2 * other.std.pow(2)) - 0.5).sum(-1)


def squashed_sample(inputs: torch.Tensor, generator: torch.Generator | None = None,
                    deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A tanh-squashed Gaussian sample in [-1, 1] and its log-probability (SAC)."""
    gauss = DiagGaussian(inputs)
    if deterministic:
        raw = gauss.mean
    elif generator is not None:
        raw = gauss.sample(generator)
    else:
        raw = gauss.rsample()
    action = torch.tanh(raw)
    # log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), the numerically stable form
    logp = gauss.logp(raw) - (2 * (math.log(2) - raw - F.softplus(-2 * raw))).sum(-1)
    return action, logp


def for_action_space(space) -> type:
    """The distribution class PPO uses for an action space."""
    import gymnasium as gym

    return Categorical if isinstance(space, gym.spaces.Discrete) else DiagGaussian
