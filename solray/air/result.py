"""``Result``: what a training run (or a Tune trial) produced."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pyarrow.fs as pafs

from solray.air._internal import filesystems as fsu


@dataclasses.dataclass
class Result:
    """The last reported ``metrics``, the latest ``checkpoint``, the kept
    ``best_checkpoints`` as ``(checkpoint, metrics)`` pairs, the run folder ``path`` on
    ``filesystem`` (without a URI scheme, as in Ray), every reported row in ``metrics_dataframe`` and ``error`` when the
    run failed."""

    metrics: dict[str, Any] | None
    checkpoint: Any
    error: BaseException | None
    path: str | None = None
    metrics_dataframe: Any = None
    best_checkpoints: list[tuple[Any, dict]] | None = None
    config: dict | None = None
    filesystem: pafs.FileSystem | None = None

    def get_best_checkpoint(self, metric: str, mode: str):
        """The kept checkpoint whose reported ``metric`` is best (``mode`` "max" or "min")."""
        if mode not in ("max", "min"):
            raise ValueError(f"get_best_checkpoint: mode must be 'max' or 'min', got {mode!r}")
        scored = [(c, m[metric]) for c, m in (self.best_checkpoints or []) if metric in m]
        if not scored:
            raise RuntimeError(f"no checkpoint of this run reported the metric {metric!r}")
        pick = max if mode == "max" else min
        return pick(scored, key=lambda item: item[1])[0]

    def __repr__(self) -> str:
        shown = {k: v for k, v in (self.metrics or {}).items() if k != "config"}
        parts = [f"metrics={shown!r}", f"path={self.path!r}", f"filesystem={self._fs_name()!r}",
                 f"checkpoint={self.checkpoint!r}"]
        if self.error is not None:
            parts.append(f"error={type(self.error).__name__}({self.error})")
        return "Result(\n  " + ",\n  ".join(parts) + "\n)"

    def _fs_name(self) -> str:
        return "local" if self.filesystem is None or fsu.is_local(self.filesystem) else self.filesystem.type_name

    @classmethod
    def from_path(cls, path: str | os.PathLike, storage_filesystem: pafs.FileSystem | None = None) -> Result:
        """Load the result of a finished run from its folder (``Result.path``)."""
        from solray.air._internal.storage import StorageContext

        fs, fs_path = fsu.resolve(path, storage_filesystem)
        if not fsu.is_dir(fs, fs_path):
            raise FileNotFoundError(f"Result.from_path: no run folder at {os.fspath(path)!r}")
        parent, _, name = fs_path.rstrip("/").rpartition("/")
        storage = StorageContext(parent or "/", name, storage_filesystem=fs)
        return result_from_storage(storage)


def result_from_storage(storage, error: BaseException | None = None, best_checkpoints=None) -> Result:
    """The Result of the run whose files ``storage`` describes."""
    import pandas as pd

    rows = storage.read_results()
    checkpoints = storage.list_checkpoints()
    metrics_by_dir = {row.get("checkpoint_dir_name"): row for row in rows if row.get("checkpoint_dir_name")}
    if best_checkpoints is None:
        best_checkpoints = [(c, metrics_by_dir.get(os.path.basename(c.path), {})) for _, c in checkpoints]
    if error is None:
        error = storage.read_error()
    return Result(
        metrics=rows[-1] if rows else None,
        checkpoint=checkpoints[-1][1] if checkpoints else None,
        error=error,
        path=storage.run_fs_path,
        metrics_dataframe=pd.DataFrame(rows) if rows else pd.DataFrame(),
        best_checkpoints=best_checkpoints,
        config=storage.read_params(),
        filesystem=storage.storage_filesystem,
    )
