"""RLlib's core pieces: ``Columns``, ``RLModule`` and its specs."""

from solray.rllib.core.columns import Columns

DEFAULT_MODULE_ID = "default_policy"
ALL_MODULES = "__all_modules__"

__all__ = ["ALL_MODULES", "DEFAULT_MODULE_ID", "Columns"]
