"""The experiment folder (``storage_path/name``): the Tuner's settings (written once) and
the experiment state (every trial and the searcher), replaced atomically as the run goes,
so a driver killed at any point can be restored from the last state written."""

from __future__ import annotations

import time
from typing import Any

import cloudpickle
import pyarrow.fs as pafs

from solray.air._internal import filesystems as fsu

TUNER_FILE = "tuner.pkl"
STATE_FILE = "experiment_state.pkl"


class ExperimentFolder:
    """Reads and writes the two files of an experiment folder on any pyarrow filesystem."""

    def __init__(self, filesystem: pafs.FileSystem, experiment_fs_path: str):
        self.filesystem = filesystem
        self.path = experiment_fs_path
        self._last_save = 0.0

    def _write(self, name: str, payload: Any) -> None:
        fs = self.filesystem
        fs.create_dir(self.path, recursive=True)
        final = fsu.join(self.path, name)
        staged = final + ".tmp"
        with fs.open_output_stream(staged) as f:
            f.write(cloudpickle.dumps(payload))
        fs.move(staged, final)  # a rename: readers see the old file or the new one

    def _read(self, name: str) -> Any:
        with self.filesystem.open_input_stream(fsu.join(self.path, name)) as f:
            return cloudpickle.loads(f.read())

    def write_settings(self, settings: dict) -> None:
        self._write(TUNER_FILE, settings)

    def read_settings(self) -> dict:
        return self._read(TUNER_FILE)

    def write_state(self, state: dict) -> None:
        self._write(STATE_FILE, state)
        self._last_save = time.monotonic()

    def read_state(self) -> dict | None:
        if not fsu.exists(self.filesystem, fsu.join(self.path, STATE_FILE)):
            return None
        return self._read(STATE_FILE)

    def seconds_since_save(self) -> float:
        return time.monotonic() - self._last_save

    def can_restore(self) -> bool:
        return fsu.exists(self.filesystem, fsu.join(self.path, TUNER_FILE))
