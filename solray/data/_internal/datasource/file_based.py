"""Files as a datasource: path resolution (local, globs, folders, URIs), grouping into read tasks.

Paths resolve on the driver when the dataset is created (so a missing file fails fast); each
read task opens its files through the same ``pyarrow.fs`` filesystem, which pickles, in the
worker. ``s3://``-style URIs use pyarrow's filesystems, falling back to fsspec when installed.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from solray.data._internal.block import BlockMetadata, batch_to_block
from solray.data.datasource import Datasource, ReadTask

_GLOB_CHARS = set("*?[")


def _fs_for(path: str, filesystem) -> tuple[Any, str]:
    if filesystem is not None:
        if not isinstance(filesystem, pafs.FileSystem):
            filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
        if "://" in path and isinstance(filesystem, pafs.LocalFileSystem):
            path = path.split("://", 1)[1]
        return filesystem, path
    if "://" in path and not path.startswith(("file://", "local://")):
        try:
            fs, p = pafs.FileSystem.from_uri(path)
            return fs, p
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as arrow_error:
            try:
                import fsspec

                fs, p = fsspec.core.url_to_fs(path)
                return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), p
            except ImportError:
                raise ValueError(f"cannot open {path!r}: {arrow_error}") from None
    for prefix in ("file://", "local://"):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def _hidden(path: str, base: str) -> bool:
    rel = os.path.relpath(path, base) if base else path
    return any(part.startswith((".", "_")) for part in rel.replace("\\", "/").split("/") if part)


def resolve_paths(paths, filesystem=None, file_extensions=None, ignore_missing_paths=False):
    """Expand ``paths`` into ``(filesystem, [(path, size, base_dir)])`` of matching files."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [os.fspath(paths)]
    if not isinstance(paths, (list, tuple)) or not paths:
        raise ValueError(f"paths must be a path or a non-empty list of paths, got {paths!r}")
    exts = [e.lower().lstrip(".") for e in file_extensions] if file_extensions else None
    out: list[tuple[str, int, str]] = []
    fs = None
    for raw in paths:
        if not isinstance(raw, (str, os.PathLike)):
            raise ValueError(f"paths must be strings, got {type(raw).__name__}")
        fs_i, path = _fs_for(os.fspath(raw), filesystem)
        fs = fs or fs_i
        found: list[tuple[str, int, str]] = []
        if _GLOB_CHARS & set(path):
            base = path
            while _GLOB_CHARS & set(base):
                base = os.path.dirname(base)
            try:
                infos = fs_i.get_file_info(pafs.FileSelector(base, recursive=True))
            except FileNotFoundError:
                infos = []
            for info in infos:
                if info.type == pafs.FileType.File and fnmatch.fnmatch(info.path, path):
                    found.append((info.path, info.size or 0, base))
        else:
            info = fs_i.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                if ignore_missing_paths:
                    continue
                raise FileNotFoundError(f"No such file or directory: {raw!r}")
            if info.type == pafs.FileType.Directory:
                for sub in fs_i.get_file_info(pafs.FileSelector(path, recursive=True)):
                    if sub.type == pafs.FileType.File and not _hidden(sub.path, path):
                        found.append((sub.path, sub.size or 0, path))
            else:
                found.append((info.path, info.size or 0, os.path.dirname(info.path)))
        if exts is not None:
            found = [f for f in found if any(f[0].lower().endswith("." + e) for e in exts)]
        out.extend(sorted(found))
    if not out and not ignore_missing_paths:
        what = f" with extensions {file_extensions}" if file_extensions else ""
        raise FileNotFoundError(f"No files{what} found in {paths!r}")
    return fs or pafs.LocalFileSystem(), out


def hive_partitions(path: str, base: str) -> dict[str, str]:
    rel = os.path.relpath(os.path.dirname(path), base) if base else os.path.dirname(path)
    parts = {}
    for seg in rel.replace("\\", "/").split("/"):
        if "=" in seg:
            k, v = seg.split("=", 1)
            parts[k] = v
    return parts


def group_by_size(items: list, sizes: list[int], parallelism: int) -> list[list]:
    """Split ``items`` (in order) into at most ``parallelism`` contiguous, size-balanced groups."""
    if not items:
        return []
    n = max(1, min(parallelism, len(items)))
    total = sum(sizes) or len(items)
    target = total / n
    groups: list[list] = [[]]
    acc = 0.0
    for item, size in zip(items, sizes, strict=True):
        w = size if sum(sizes) else 1
        if groups[-1] and acc + w / 2 > target * len(groups) and len(groups) < n:
            groups.append([])
        groups[-1].append(item)
        acc += w
    return groups


class FileBasedDatasource(Datasource):
    """Reads each file with ``_read_file``; subclasses say how to parse one file."""

    _default_extensions: list[str] | None = None
    _name = "File"
    _decode_ratio = 1.0  # in-memory bytes per file byte (for block-count planning)

    def __init__(self, paths, *, filesystem=None, file_extensions="default", include_paths=False,
                 ignore_missing_paths=False, partitioning="hive", shuffle=None, **reader_args):
        exts = self._default_extensions if file_extensions == "default" else file_extensions
        self._fs, self._files = resolve_paths(paths, filesystem, exts, ignore_missing_paths)
        self._include_paths = include_paths
        self._partitioning = partitioning
        self._reader_args = reader_args
        if shuffle == "files":
            import random

            random.shuffle(self._files)

    def get_name(self) -> str:
        return self._name

    def input_files(self) -> list[str]:
        return [f for f, _, _ in self._files]

    def estimate_inmemory_data_size(self) -> int | None:
        return int(sum(s for _, s, _ in self._files) * self._decode_ratio) or None

    def _read_file(self, f, path: str) -> Iterator[Any]:
        raise NotImplementedError

    def _open(self, fs, path: str):
        return fs.open_input_stream(path) if not self._random_access else fs.open_input_file(path)

    _random_access = False

    def _with_extras(self, table: pa.Table, path: str, base: str) -> pa.Table:
        if self._partitioning:
            for k, v in hive_partitions(path, base).items():
                if k not in table.column_names:
                    table = table.append_column(k, pa.array([v] * table.num_rows, type=pa.string()))
        if self._include_paths:
            table = table.append_column("path", pa.array([path] * table.num_rows, type=pa.string()))
        return table

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        groups = group_by_size(self._files, [s for _, s, _ in self._files], parallelism)
        tasks = []
        for group in groups:
            size = int(sum(s for _, s, _ in group) * self._decode_ratio)
            meta = BlockMetadata(num_rows=None, size_bytes=size, input_files=[p for p, _, _ in group])

            def read(group=group, fs=self._fs, reader=self):
                for path, _, base in group:
                    with reader._open(fs, path) as f:
                        try:
                            for out in reader._read_file(f, path):
                                table = out if isinstance(out, pa.Table) else batch_to_block(out)
                                yield reader._with_extras(table, path, base)
                        except (pa.ArrowInvalid, UnicodeDecodeError, ValueError) as e:
                            raise ValueError(f"{reader._name}: failed to read {path}: {e}") from None

            tasks.append(ReadTask(read, meta))
        return tasks
