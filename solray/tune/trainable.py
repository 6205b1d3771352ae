"""``Trainable``: the class form of a trainable (``setup``/``step``/``save_checkpoint``/
``load_checkpoint``/``reset_config``/``cleanup``), driven by the trial actor one ``step``
per reported result."""

from __future__ import annotations

from typing import Any


class Trainable:
    """Subclass and implement ``setup(config)`` and ``step() -> dict``; implement
    ``save_checkpoint(checkpoint_dir)`` / ``load_checkpoint(checkpoint)`` to checkpoint
    (return a dict from ``save_checkpoint`` to have it handed back to ``load_checkpoint``,
    or write files into ``checkpoint_dir`` and get the folder's path back)."""

    def __init__(self, config: dict | None = None, **context: Any):
        self.config = dict(config or {})
        self._iteration = 0
        self._trial_id = context.get("trial_id", "default")
        self._trial_name = context.get("trial_name", "default")
        self._logdir = context.get("logdir", "")
        self._trial_resources = context.get("trial_resources")
        self.setup(dict(self.config))

    # --- what users implement ------------------------------------------------------------------

    def setup(self, config: dict) -> None:
        pass

    def step(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement step()")

    def save_checkpoint(self, checkpoint_dir: str) -> dict | None:
        return None

    def load_checkpoint(self, checkpoint: dict | str) -> None:
        pass

    def reset_config(self, new_config: dict) -> bool:
        """Reconfigure for a new trial in place (``reuse_actors``); False: not supported."""
        return False

    def cleanup(self) -> None:
        pass

    @classmethod
    def default_resource_request(cls, config: dict) -> Any:
        return None

    # --- read-only state ----------------------------------------------------------------------

    @property
    def iteration(self) -> int:
        return self._iteration

    @property
    def training_iteration(self) -> int:
        return self._iteration

    @property
    def trial_id(self) -> str:
        return self._trial_id

    @property
    def trial_name(self) -> str:
        return self._trial_name

    @property
    def logdir(self) -> str:
        return self._logdir

    @property
    def trial_resources(self) -> Any:
        return self._trial_resources

    def stop(self) -> None:
        self.cleanup()
