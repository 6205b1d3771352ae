"""What the driver and a trial actor exchange: the spec of one trial attempt, and the
decisions the driver sends back with each poll."""

from __future__ import annotations

import dataclasses
from typing import Any

from solray.air.config import CheckpointConfig

CONTINUE = "CONTINUE"
STOP = "STOP"
PAUSE = "PAUSE"


@dataclasses.dataclass
class TrialSpec:
    """Everything a trial actor needs to run (or resume) one trial."""

    trial_id: str
    trial_name: str
    config: dict
    experiment_dir_name: str
    trial_dir_name: str
    storage_path: str
    storage_filesystem: Any = None
    restore_path: str | None = None  # the checkpoint to resume from
    iteration_offset: int = 0
    time_offset: float = 0.0
    synchronous: bool = True  # report waits for the driver's decision
    stop: dict | None = None  # thresholds checked in the actor (run-ahead mode)
    checkpoint_config: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool = False
    reuse_instance: bool = False
    placement_group: Any = None
    first_worker_bundle: int = 1
    resources: Any = None
