"""TensorBoard events for every trial, written by the driver in a background thread.

tensorboardX takes seconds to import (it imports torch when installed): paying that once in
the driver, off the main loop, keeps trial actors cheap (Ray writes them on the driver too).
Events go through tensorboardX's synchronous ``RecordWriter``: a ``SummaryWriter`` per
trial would start and join a thread for each of them.
"""

from __future__ import annotations

import math
import os
import queue
import shutil
import socket
import sys
import tempfile
import threading
import time
from typing import Any

from solray.air._internal import filesystems as fsu
from solray.air._internal.storage import flatten


class _EventFile:
    """One trial's ``events.out.tfevents.*`` file (written locally, uploaded when the
    storage is remote)."""

    def __init__(self, filesystem: Any, folder: str):
        from tensorboardX.proto import event_pb2, summary_pb2
        from tensorboardX.record_writer import RecordWriter

        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        self._fs, self._folder = filesystem, folder
        self._local = folder if fsu.is_local(filesystem) else tempfile.mkdtemp(prefix="solray-tb-")
        os.makedirs(self._local, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
        self._writer = RecordWriter(os.path.join(self._local, name))
        self._write(self._event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: Any) -> None:
        self._writer.write(event.SerializeToString())

    def add(self, row: dict) -> None:
        step = row.get("training_iteration")
        wall = row.get("timestamp") if isinstance(row.get("timestamp"), (int, float)) else time.time()
        values = [
            self._summary.Value(tag=f"solray/{key}", simple_value=float(value))
            for key, value in flatten(row).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "timestamp"
            and math.isfinite(value)
        ]
        self._write(self._event(wall_time=wall, step=step if isinstance(step, int) else 0,
                                summary=self._summary(value=values)))

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()
        if self._local != self._folder:
            fsu.upload_dir(self._local, self._fs, self._folder)
            shutil.rmtree(self._local, ignore_errors=True)


class TensorBoardWriter:
    """``result(trial_dir, row)`` queues a row; ``close()`` waits until all are written."""

    def __init__(self, filesystem: Any, experiment_fs_path: str):
        self._fs, self._root = filesystem, experiment_fs_path
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._files: dict[str, _EventFile] = {}
        self._thread = threading.Thread(target=self._loop, name="tune-tensorboard", daemon=True)
        self._thread.start()

    def result(self, trial_dir_name: str, row: dict) -> None:
        self._queue.put((trial_dir_name, row))

    def trial_ended(self, trial_dir_name: str) -> None:
        self._queue.put((trial_dir_name, None))

    def close(self, timeout: float = 60.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            import tensorboardX  # noqa: F401 - the slow import, done here once
        except ImportError:  # optional: without it there are no event files
            self._drain()
            return
        while (item := self._queue.get()) is not None:
            trial_dir_name, row = item
            try:
                self._handle(trial_dir_name, row)
            except Exception as e:  # noqa: BLE001 - logs must never fail the run
                print(f"solray.tune: could not write TensorBoard events for {trial_dir_name}: {e!r}",
                      file=sys.stderr)
        for event_file in self._files.values():
            event_file.close()

    def _drain(self) -> None:
        while self._queue.get() is not None:
            pass

    def _handle(self, trial_dir_name: str, row: dict | None) -> None:
        event_file = self._files.get(trial_dir_name)
        if row is None:
            if event_file is not None:
                self._files.pop(trial_dir_name).close()
            return
        if event_file is None:
            event_file = self._files[trial_dir_name] = _EventFile(self._fs, fsu.join(self._root, trial_dir_name))
        event_file.add(row)
