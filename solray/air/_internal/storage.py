"""Where a run keeps its files, and how they get there.

Layout (``storage_path`` local or any pyarrow/fsspec URI)::

    storage_path/experiment_name/[trial_dir_name/]   <- run_fs_path
        checkpoint_000000/ ... .is_checkpoint        <- complete checkpoints only
        .tmp_checkpoint_<hex>/                       <- uploads in progress (never listed)
        result.json  progress.csv  params.json  events.out.tfevents.*  error.txt

A checkpoint is uploaded under a temporary name, marked complete with a small marker file
and only then renamed to ``checkpoint_NNNNNN`` (where the filesystem cannot rename folders
the files are copied and the marker written last). Listing requires the marker, so a crash
mid-upload never leaves something that looks like a checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
import queue
import re
import shutil
import tempfile
import threading
import time
import uuid
from typing import Any

import pyarrow.fs as pafs

from solray.air._internal import filesystems as fsu

DEFAULT_STORAGE_PATH = "~/solray_results"
COMPLETE_MARKER = ".is_checkpoint"
CHECKPOINT_DIR_RE = re.compile(r"^checkpoint_(\d{6,})$")
RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.csv"
PARAMS_FILE = "params.json"
ERROR_TEXT_FILE = "error.txt"
ERROR_PICKLE_FILE = "error.pkl"


def checkpoint_dir_name(index: int) -> str:
    return f"checkpoint_{index:06d}"


def flatten(metrics: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}`` (the CSV and TensorBoard column names)."""
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out


def _json_default(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def _import_summary_writer():
    """tensorboardX's SummaryWriter, imported without pulling in torch when the process
    has not imported it (tensorboardX only uses torch to recognise tensors: seconds saved)."""
    import sys

    block = "torch" not in sys.modules
    if block:
        sys.modules["torch"] = None  # makes tensorboardX's optional `import torch` fail fast
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        return None
    finally:
        if block and "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]
    return SummaryWriter


class StorageContext:
    """The files of one run (a Train run, or a Tune trial when ``trial_dir_name`` is set)."""

    def __init__(
        self,
        storage_path: str | os.PathLike | None,
        experiment_dir_name: str,
        trial_dir_name: str | None = None,
        storage_filesystem: pafs.FileSystem | None = None,
    ):
        self.storage_path = os.fspath(storage_path) if storage_path is not None else DEFAULT_STORAGE_PATH
        self.storage_filesystem, self.storage_fs_path = fsu.resolve(self.storage_path, storage_filesystem)
        self.experiment_dir_name = experiment_dir_name
        self.trial_dir_name = trial_dir_name
        self.experiment_fs_path = fsu.join(self.storage_fs_path, experiment_dir_name)
        self.run_fs_path = (
            fsu.join(self.experiment_fs_path, trial_dir_name) if trial_dir_name else self.experiment_fs_path
        )
        self._csv_columns: list[str] | None = None
        self._csv_buffer: str | None = None  # non-local filesystems: the whole file, rewritten
        self._tb_queue: queue.Queue | None = None
        self._tb_thread: threading.Thread | None = None
        self._tb_local_dir: str | None = None
        self._tb_step = 0

    # Ray's name for the run folder of a trial.
    @property
    def trial_fs_path(self) -> str:
        return self.run_fs_path

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self.storage_filesystem

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_tb_queue"] = state["_tb_thread"] = state["_tb_local_dir"] = None
        if fsu.is_local(self.storage_filesystem):
            state["storage_filesystem"] = None  # rebuilt where unpickled
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.storage_filesystem is None:
            self.storage_filesystem = pafs.LocalFileSystem()

    def make_run_dir(self) -> None:
        self.storage_filesystem.create_dir(self.run_fs_path, recursive=True)

    # --- checkpoints --------------------------------------------------------------------------

    def stage_checkpoint(self, checkpoint) -> str:
        """Upload ``checkpoint`` (a Checkpoint) under a temporary name; returns that path."""
        self.make_run_dir()
        staged = fsu.join(self.run_fs_path, f".tmp_checkpoint_{uuid.uuid4().hex}")
        fs = self.storage_filesystem
        if fsu.is_local(checkpoint.filesystem):
            fsu.upload_dir(checkpoint.path, fs, staged)
        else:
            fsu.copy_dir(checkpoint.filesystem, checkpoint.path, fs, staged)
        return staged

    def commit_checkpoint(self, staged_paths: list[str], index: int):
        """Merge staged uploads into ``checkpoint_<index>`` atomically; returns its Checkpoint."""
        from solray.train._checkpoint import Checkpoint

        fs = self.storage_filesystem
        final = fsu.join(self.run_fs_path, checkpoint_dir_name(index))
        first, rest = staged_paths[0], staged_paths[1:]
        for other in rest:  # several workers reported files: one folder holds them all
            fsu.copy_dir(fs, other, fs, first)
            fsu.delete_dir(fs, other)
        if fsu.exists(fs, final):  # left by an earlier attempt that crashed while renaming
            fsu.delete_dir(fs, final)
        fsu.write_text(fs, fsu.join(first, COMPLETE_MARKER), "")
        try:
            fs.move(first, final)
        except (OSError, NotImplementedError):  # object stores: copy, then mark complete last
            fs.delete_file(fsu.join(first, COMPLETE_MARKER))
            fsu.copy_dir(fs, first, fs, final)
            fsu.write_text(fs, fsu.join(final, COMPLETE_MARKER), "")
            fsu.delete_dir(fs, first)
        return Checkpoint(final, fs)

    def persist_checkpoint(self, checkpoint, index: int | None = None):
        """Upload ``checkpoint`` as the next (or the given) ``checkpoint_NNNNNN``."""
        if index is None:
            index = self.next_checkpoint_index()
        return self.commit_checkpoint([self.stage_checkpoint(checkpoint)], index)

    def list_checkpoints(self) -> list[tuple[int, Any]]:
        """Complete checkpoints of this run, oldest first, as ``(index, Checkpoint)``."""
        from solray.train._checkpoint import Checkpoint

        fs = self.storage_filesystem
        found = []
        for info in fsu.list_dir(fs, self.run_fs_path):
            match = CHECKPOINT_DIR_RE.match(info.base_name)
            if match and info.type == pafs.FileType.Directory and fsu.exists(fs, fsu.join(info.path, COMPLETE_MARKER)):
                found.append((int(match.group(1)), Checkpoint(info.path, fs)))
        return sorted(found, key=lambda item: item[0])

    def latest_checkpoint(self):
        found = self.list_checkpoints()
        return found[-1][1] if found else None

    def next_checkpoint_index(self) -> int:
        found = self.list_checkpoints()
        return found[-1][0] + 1 if found else 0

    def delete_checkpoint(self, checkpoint) -> None:
        fsu.delete_dir(checkpoint.filesystem, checkpoint.path)

    def clean_staged(self) -> None:
        """Remove uploads a crashed attempt left half done."""
        for info in fsu.list_dir(self.storage_filesystem, self.run_fs_path):
            if info.base_name.startswith(".tmp_checkpoint_"):
                fsu.delete_dir(self.storage_filesystem, info.path)

    # --- logs -----------------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return fsu.join(self.run_fs_path, name)

    def write_params(self, config: dict) -> None:
        self.make_run_dir()
        fsu.write_text(self.storage_filesystem, self._path(PARAMS_FILE), json.dumps(config, default=_json_default))

    def write_result(self, row: dict) -> None:
        """Append one reported result to result.json, progress.csv and the TensorBoard log."""
        self.make_run_dir()
        fs = self.storage_filesystem
        fsu.write_text(fs, self._path(RESULT_FILE), json.dumps(row, default=_json_default) + "\n", append=True)
        flat = flatten(row)
        self._write_csv_row(flat)
        self._write_tensorboard(flat, row.get("training_iteration"))

    def _write_csv_row(self, flat: dict) -> None:
        out = io.StringIO()
        fs = self.storage_filesystem
        if self._csv_columns is None and fsu.exists(fs, self._path(PROGRESS_FILE)):  # a run continued
            existing = fsu.read_text(fs, self._path(PROGRESS_FILE))
            self._csv_columns = next(csv.reader(io.StringIO(existing)), None)
            self._csv_buffer = None if fsu.is_local(fs) else existing
        if not self._csv_columns:
            self._csv_columns = [k for k, v in flat.items() if not isinstance(v, (list, tuple))]
            csv.DictWriter(out, self._csv_columns).writeheader()
        csv.DictWriter(out, self._csv_columns, extrasaction="ignore").writerow(flat)
        if fsu.is_local(fs):
            fsu.write_text(fs, self._path(PROGRESS_FILE), out.getvalue(), append=True)
            return
        self._csv_buffer = (self._csv_buffer or "") + out.getvalue()
        fsu.write_text(fs, self._path(PROGRESS_FILE), self._csv_buffer)

    def _write_tensorboard(self, flat: dict, step: Any) -> None:
        self._tb_step += 1
        step = step if isinstance(step, int) else self._tb_step
        wall = flat.get("timestamp") if isinstance(flat.get("timestamp"), (int, float)) else time.time()
        scalars = {
            key: value for key, value in flat.items()
            if key != "timestamp" and not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value)
        }
        if self._tb_queue is None:
            # tensorboardX imports torch when it is installed (seconds): a thread writes.
            self._tb_queue = queue.Queue()
            self._tb_thread = threading.Thread(target=self._tensorboard_writer, name="solray-tensorboard", daemon=True)
            self._tb_thread.start()
        self._tb_queue.put((scalars, step, wall))

    def _tensorboard_writer(self) -> None:
        writer = None
        fs = self.storage_filesystem
        while True:
            item = self._tb_queue.get()
            if item is None:
                break
            if writer is None:
                SummaryWriter = _import_summary_writer()
                if SummaryWriter is None:  # pragma: no cover - optional dependency
                    continue
                log_dir = self.run_fs_path if fsu.is_local(fs) else tempfile.mkdtemp(prefix="solray-tb-")
                self._tb_local_dir = None if fsu.is_local(fs) else log_dir
                writer = SummaryWriter(logdir=log_dir, flush_secs=5)
            scalars, step, wall = item
            for key, value in scalars.items():
                writer.add_scalar(f"solray/{key}", value, global_step=step, walltime=wall)
            if self._tb_queue.empty():
                writer.flush()
                if self._tb_local_dir is not None:
                    fsu.upload_dir(self._tb_local_dir, fs, self.run_fs_path)
        if writer is not None:
            writer.close()
        if self._tb_local_dir is not None:
            fsu.upload_dir(self._tb_local_dir, fs, self.run_fs_path)
            shutil.rmtree(self._tb_local_dir, ignore_errors=True)

    def write_error(self, error: BaseException) -> None:
        import traceback

        self.make_run_dir()
        fs = self.storage_filesystem
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        fsu.write_text(fs, self._path(ERROR_TEXT_FILE), text)
        try:
            blob = pickle.dumps(error)
        except Exception:  # an exception that cannot be pickled: the text is enough
            return
        with fs.open_output_stream(self._path(ERROR_PICKLE_FILE)) as f:
            f.write(blob)

    def close(self) -> None:
        """Finish the TensorBoard log (waits for its writer thread)."""
        if self._tb_queue is not None:
            self._tb_queue.put(None)
            self._tb_thread.join()
            self._tb_queue = self._tb_thread = None

    # --- reading a finished run --------------------------------------------------------------

    def read_results(self) -> list[dict]:
        fs = self.storage_filesystem
        path = self._path(RESULT_FILE)
        if not fsu.exists(fs, path):
            return []
        return [json.loads(line) for line in fsu.read_text(fs, path).splitlines() if line.strip()]

    def read_params(self) -> dict | None:
        fs = self.storage_filesystem
        path = self._path(PARAMS_FILE)
        return json.loads(fsu.read_text(fs, path)) if fsu.exists(fs, path) else None

    def read_error(self) -> BaseException | None:
        fs = self.storage_filesystem
        if fsu.exists(fs, self._path(ERROR_PICKLE_FILE)):
            try:
                with fs.open_input_stream(self._path(ERROR_PICKLE_FILE)) as f:
                    return pickle.loads(f.read())
            except Exception:  # unpickling needs a class that is gone: fall back to the text
                pass
        if fsu.exists(fs, self._path(ERROR_TEXT_FILE)):
            return RuntimeError(fsu.read_text(fs, self._path(ERROR_TEXT_FILE)))
        return None
