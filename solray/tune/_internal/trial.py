"""A trial as the driver sees it: its config, status, latest result and checkpoint."""

from __future__ import annotations

from typing import Any

PENDING, RUNNING, PAUSED, TERMINATED, ERROR = "PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR"


class TrialError(RuntimeError):
    """A trial failed (its own error could not be rebuilt on the driver)."""


class Trial:
    """One configuration being evaluated. Status moves PENDING -> RUNNING -> TERMINATED or
    ERROR (or PAUSED and back to PENDING); ``checkpoint`` is the latest persisted one."""

    def __init__(self, trial_id: str, config: dict, trial_name: str, trial_dir_name: str, resources: Any):
        self.trial_id = trial_id
        self.config = config
        self.trial_name = trial_name
        self.trial_dir_name = trial_dir_name
        self.placement_group_factory = resources
        self.status = PENDING
        self.last_result: dict = {}
        self.metric_analysis: dict[str, dict[str, float]] = {}
        self.checkpoint: Any = None  # a Checkpoint
        self.checkpoint_iteration = 0
        self.checkpoint_time = 0.0
        self.num_failures = 0
        self.error: str | None = None
        self.error_blob: bytes | None = None
        self.restart_config: dict | None = None  # set by PBT's exploit
        self.path: str | None = None

    @property
    def resources(self) -> Any:
        return self.placement_group_factory

    def update_result(self, result: dict) -> None:
        self.last_result = result
        for key, value in result.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                stats = self.metric_analysis.setdefault(key, {"max": value, "min": value, "last": value})
                stats["max"] = max(stats["max"], value)
                stats["min"] = min(stats["min"], value)
                stats["last"] = value

    def exception(self) -> BaseException | None:
        """The trial's error: a ``RayTaskError`` that is also an instance of the
        trainable's own exception type (as in Ray), with the remote traceback."""
        if self.error is None:
            return None
        cause = None
        if self.error_blob is not None:
            try:
                import cloudpickle

                cause = cloudpickle.loads(self.error_blob)
            except Exception:  # its class is not importable here: the text will do
                cause = None
        if not isinstance(cause, BaseException):
            return TrialError(f"Trial {self.trial_name} failed:\n{self.error}")
        from solray.exceptions import RayTaskError

        return RayTaskError(self.trial_name, self.error, cause).as_instanceof_cause()

    def state(self) -> dict:
        """What the experiment state file keeps of this trial."""
        return {
            "trial_id": self.trial_id, "config": self.config, "trial_name": self.trial_name,
            "trial_dir_name": self.trial_dir_name, "status": self.status, "last_result": self.last_result,
            "checkpoint_path": self.checkpoint.path if self.checkpoint is not None else None,
            "checkpoint_iteration": self.checkpoint_iteration, "checkpoint_time": self.checkpoint_time,
            "num_failures": self.num_failures, "error": self.error, "error_blob": self.error_blob,
            "resources": self.placement_group_factory,
        }

    @classmethod
    def from_state(cls, state: dict, filesystem: Any) -> Trial:
        trial = cls(state["trial_id"], state["config"], state["trial_name"], state["trial_dir_name"],
                    state["resources"])
        trial.status = state["status"]
        trial.last_result = state["last_result"]
        if state["checkpoint_path"]:
            from solray.train._checkpoint import Checkpoint

            trial.checkpoint = Checkpoint(state["checkpoint_path"], filesystem)
        trial.checkpoint_iteration = state["checkpoint_iteration"]
        trial.checkpoint_time = state["checkpoint_time"]
        trial.num_failures = state["num_failures"]
        trial.error = state["error"]
        trial.error_blob = state["error_blob"]
        return trial

    def __repr__(self) -> str:
        return self.trial_name

    def __str__(self) -> str:
        return self.trial_name
