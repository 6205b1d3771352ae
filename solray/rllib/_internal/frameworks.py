"""Which deep-learning framework a config may name, and the error when it is not installed."""

from __future__ import annotations

import importlib.util

_PACKAGES = {"tf2": "tensorflow", "tf": "tensorflow", "jax": "jax"}


def check_framework(name: str) -> None:
    """PyTorch and TensorFlow 2 (eager) work; a missing package is named with how to install it."""
    if name == "torch":
        return
    package = _PACKAGES.get(name)
    if package is None:
        raise ValueError(f"Unknown framework {name!r}; use 'torch' (or 'tf2' with TensorFlow installed).")
    if importlib.util.find_spec(package) is None:
        hint = "`pip install tensorflow` (or `pip install solray[rllib-tf]`)" if package == "tensorflow" \
            else f"`pip install {package}`"
        raise ImportError(
            f"framework({name!r}) needs the '{package}' package, which is not installed. "
            f"Install it with {hint}, or use framework('torch')."
        )
    if name == "tf":
        raise ValueError("framework('tf') (TensorFlow 1 graph mode) is not supported by RLlib's new API "
                         "stack; use framework('tf2') or framework('torch').")
    if name == "jax":
        raise NotImplementedError("framework('jax'): 'jax' is installed, but solray.rllib has no JAX modules "
                                  "or learners; use framework('torch') or framework('tf2').")
