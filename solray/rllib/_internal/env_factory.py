"""From what the user named (a gymnasium id, a registered name, an env class) to env objects.

``resolve_env_creator`` runs in the driver at build time, so an unknown env id fails there
with a clear message; the creator it returns is shipped to the EnvRunner actors.
``ObsEncoder`` turns any supported observation into the array modules take: a flat float32
vector, or for images (rank-3 Box, height x width x channels) the image itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from solray.rllib.env.env_context import EnvContext
from solray.rllib.env.registry import get_env_creator


def _make_gym(env_id: str, env_config: dict) -> gym.Env:
    return gym.make(env_id, **dict(env_config))


def resolve_env_creator(env: Any) -> Callable[[EnvContext], Any]:
    """A picklable ``creator(env_context) -> env`` for ``env``; unknown names raise ``ValueError``."""
    if isinstance(env, type):
        return env
    if callable(env) and not isinstance(env, str):
        return env
    if not isinstance(env, str):
        raise TypeError(f"config.environment(env=...) must be a str or an env class, got {type(env).__name__}")
    creator = get_env_creator(env)
    if creator is not None:
        return creator
    try:
        gym.spec(env)
    except gym.error.Error as e:
        raise ValueError(
            f"Unknown env {env!r}: it is neither a gymnasium env id nor a name registered with "
            f"tune.register_env ({type(e).__name__}: {e})") from None
    return functools.partial(_make_gym, env)


def make_single_env(env: Any, env_config: Any) -> Any:
    """Build one env instance from a name/class/creator (used by ``make_multi_agent``)."""
    return resolve_env_creator(env)(env_config if isinstance(env_config, EnvContext) else EnvContext(env_config))


def check_space(space: Any, what: str) -> None:
    """Raise a ``ValueError`` naming the space when the default modules cannot handle it."""
    if isinstance(space, gym.spaces.Box):
        if not np.issubdtype(space.dtype, np.number):
            raise ValueError(f"Unsupported {what} {space}: Box spaces must hold numbers.")
        return
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiBinary)):
        return
    raise ValueError(
        f"Unsupported {what} {space!r}: solray.rllib's default modules handle Box, Discrete and "
        "MultiBinary spaces (wrap the env to flatten Dict/Tuple/Text spaces, e.g. with "
        "gymnasium.wrappers.FlattenObservation).")


def check_action_space(space: Any, algo_name: str, discrete: bool | None) -> None:
    """``discrete``: True (DQN), False (SAC) or None (PPO takes both)."""
    if isinstance(space, gym.spaces.Discrete):
        if discrete is False:
            raise ValueError(f"{algo_name} needs a continuous (Box) action space, got {space}.")
        return
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        if discrete is True:
            raise ValueError(f"{algo_name} needs a Discrete action space, got {space}.")
        return
    raise ValueError(
        f"Unsupported action space {space!r} for {algo_name}: the default modules handle "
        "Discrete and 1-D Box action spaces.")


def is_image_space(space: Any) -> bool:
    """Rank-3 Box observations are images (H, W, C, channels last as in Ray): conv encoders take them."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3


class ObsEncoder:
    """Batches of observations as modules take them: Box flattened to float32, Discrete one-hot,
    images kept in shape and dtype (a uint8 image batch stays uint8, a quarter of the memory in
    batches and replay buffers; the conv encoder casts to float)."""

    def __init__(self, space: gym.Space) -> None:
        self.space = space
        if isinstance(space, gym.spaces.Discrete):
            self.shape: tuple[int, ...] = (int(space.n),)
        elif is_image_space(space):
            self.shape = tuple(int(d) for d in space.shape)
        else:
            self.shape = (int(np.prod(space.shape)),)
        self.size = int(np.prod(self.shape))
        self.dtype = np.dtype(np.uint8) if is_image_space(space) and space.dtype == np.uint8 else np.dtype(np.float32)

    def encode(self, observations: list) -> np.ndarray:
        if isinstance(self.space, gym.spaces.Discrete):
            out = np.zeros((len(observations), self.size), np.float32)
            out[np.arange(len(observations)), np.asarray(observations, np.int64) - self.space.start] = 1.0
            return out
        return np.asarray(observations, self.dtype).reshape((len(observations),) + self.shape)


def action_to_env(space: gym.Space, action: np.ndarray, normalize: bool, clip: bool) -> Any:
    """What the env's ``step`` receives for one sampled action."""
    if isinstance(space, gym.spaces.Discrete):
        return int(action)
    action = np.asarray(action, dtype=space.dtype)
    if normalize and np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
        # Modules act in [-1, 1]; the env gets its own bounds (Ray's normalize_actions).
        action = space.low + (np.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (space.high - space.low)
    elif clip:
        action = np.clip(action, space.low, space.high)
    return action.astype(space.dtype)
