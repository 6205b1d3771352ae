"""Ray's older import path for callbacks: ``DefaultCallbacks`` and ``make_multi_callbacks``."""

from __future__ import annotations

from solray.rllib._internal.callbacks import HOOKS, CallbackRunner
from solray.rllib.callbacks.callbacks import DefaultCallbacks, RLlibCallback


def make_multi_callbacks(callback_classes: list[type]) -> type[RLlibCallback]:
    """One callback class that runs every class in ``callback_classes``, in order."""

    class MultiCallbacks(RLlibCallback):
        def __init__(self) -> None:
            self._runner = CallbackRunner(list(callback_classes))

    for hook in HOOKS:
        setattr(MultiCallbacks, hook, lambda self, _hook=hook, **kwargs: self._runner(_hook, **kwargs))
    return MultiCallbacks


__all__ = ["DefaultCallbacks", "RLlibCallback", "make_multi_callbacks"]
