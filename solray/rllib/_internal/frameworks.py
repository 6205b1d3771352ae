"""Which deep-learning framework a config may name, and the error when it is not installed."""

from __future__ import annotations

import importlib.util

_PACKAGES = {"tf2": "tensorflow", "tf": "tensorflow", "jax": "jax"}


def check_framework(name: str) -> None:
    """PyTorch is complete; the others raise, naming the package to install when it is missing."""
    if name == "torch":
        return
    package = _PACKAGES.get(name)
    if package is None:
        raise ValueError(f"Unknown framework {name!r}; use 'torch' (or 'tf2' with TensorFlow installed).")
    if importlib.util.find_spec(package) is None:
        raise ImportError(
            f"framework({name!r}) needs the '{package}' package, which is not installed. "
            f"Install it with `pip install {package}`, or use framework('torch')."
        )
    raise NotImplementedError(
        f"framework({name!r}): '{package}' is installed, but solray.rllib implements its modules "
        "and learners in PyTorch only so far; use framework('torch')."
    )
