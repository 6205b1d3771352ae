"""``Checkpoint``: a directory of files on some filesystem, plus a little JSON metadata."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow.fs as pafs

from solray.air._internal import filesystems as fsu

METADATA_FILE = ".metadata.json"


class Checkpoint:
    """A reference to a checkpoint directory at ``path`` on ``filesystem`` (pyarrow).

    ``path`` may be a local path or a URI (``s3://bucket/run/checkpoint_000003``); the
    filesystem is then inferred. Build one from your files with ``from_directory`` and
    read it back with ``to_directory`` or ``as_directory``.
    """

    def __init__(self, path: str | os.PathLike, filesystem: pafs.FileSystem | None = None):
        self.filesystem, self.path = fsu.resolve(path, filesystem)

    @classmethod
    def from_directory(cls, path: str | os.PathLike) -> Checkpoint:
        """A checkpoint of the local (or URI) directory ``path``, which must exist."""
        checkpoint = cls(path)
        if not fsu.is_dir(checkpoint.filesystem, checkpoint.path):
            raise FileNotFoundError(f"Checkpoint.from_directory: {os.fspath(path)!r} is not a directory")
        return checkpoint

    def to_directory(self, path: str | os.PathLike | None = None) -> str:
        """Copy the checkpoint's files into the local ``path`` (a new temp folder when None)."""
        if path is None:
            path = os.path.join(tempfile.gettempdir(), f"checkpoint_tmp_{uuid.uuid4().hex}")
        path = os.path.abspath(os.fspath(path))
        if fsu.is_local(self.filesystem) and os.path.abspath(self.path) == path:
            return path
        fsu.download_dir(self.filesystem, self.path, path)
        return path

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """A local folder with the checkpoint's files: the checkpoint itself when it is
        local (do not modify it), else a temporary copy removed on exit."""
        if fsu.is_local(self.filesystem):
            yield self.path
            return
        local = self.to_directory()
        try:
            yield local
        finally:
            shutil.rmtree(local, ignore_errors=True)

    # --- metadata ---------------------------------------------------------------------------

    def get_metadata(self) -> dict[str, Any]:
        path = fsu.join(self.path, METADATA_FILE)
        if not fsu.exists(self.filesystem, path):
            return {}
        return json.loads(fsu.read_text(self.filesystem, path))

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        if not isinstance(metadata, dict):
            raise TypeError(f"Checkpoint metadata must be a dict, got {type(metadata).__name__}")
        try:
            text = json.dumps(metadata)
        except TypeError as e:
            raise TypeError(f"Checkpoint metadata must be JSON-serializable: {e}") from None
        fsu.write_text(self.filesystem, fsu.join(self.path, METADATA_FILE), text)

    def update_metadata(self, metadata: dict[str, Any]) -> None:
        merged = self.get_metadata()
        merged.update(metadata)
        self.set_metadata(merged)

    # --- identity -----------------------------------------------------------------------------

    def __reduce__(self):
        return _rebuild, (self.path, None if fsu.is_local(self.filesystem) else self.filesystem)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and other.path == self.path and (
            other.filesystem.type_name == self.filesystem.type_name
        )

    def __hash__(self) -> int:
        return hash((self.path, self.filesystem.type_name))

    def __repr__(self) -> str:
        if fsu.is_local(self.filesystem):
            return f"Checkpoint(filesystem=local, path={self.path})"
        return f"Checkpoint(filesystem={self.filesystem.type_name}, path={self.path})"


def _rebuild(path: str, filesystem: pafs.FileSystem | None) -> Checkpoint:
    return Checkpoint(path, filesystem)
