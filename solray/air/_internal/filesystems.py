"""Paths on any filesystem: local paths, pyarrow URIs (``s3://``, ``gs://``, ``file://``,
``hdfs://``) and, through fsspec, any other URI (``memory://``, ``abfs://``...).

Everything in Train and Tune that touches storage goes through a
``(pyarrow.fs.FileSystem, path)`` pair made here.
"""

from __future__ import annotations

import os
import shutil

import pyarrow.fs as pafs


def resolve(path: str | os.PathLike, filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path on it)`` for a local path or a URI."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a path or URI string, got {type(path).__name__}: {path!r}")
    path = os.fspath(path)
    if filesystem is not None:
        if not isinstance(filesystem, pafs.FileSystem):
            filesystem = from_fsspec(filesystem)
        return filesystem, path
    if "://" not in path:
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))
    try:
        return pafs.FileSystem.from_uri(path)
    except (ValueError, OSError):  # pyarrow.ArrowInvalid is a ValueError
        pass
    import fsspec

    try:
        fs, fs_path = fsspec.core.url_to_fs(path)
    except (ValueError, ImportError) as e:
        raise ValueError(f"cannot open storage {path!r}: neither pyarrow nor fsspec knows this URI ({e})") from e
    return from_fsspec(fs), fs_path


def from_fsspec(fs) -> pafs.FileSystem:
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return PyFileSystem(FSSpecHandler(fs))


def is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


def join(*parts: str) -> str:
    """Join with '/' (pyarrow paths use '/' everywhere)."""
    out = parts[0].rstrip("/") if parts[0] != "/" else ""
    for p in parts[1:]:
        if p:
            out = f"{out}/{p.strip('/')}"
    return out or "/"


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type == pafs.FileType.Directory


def list_dir(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    if not is_dir(fs, path):
        return []
    return fs.get_file_info(pafs.FileSelector(path, recursive=False))


def upload_dir(local_dir: str, fs: pafs.FileSystem, dest: str) -> None:
    """Copy the local folder ``local_dir`` to ``dest`` on ``fs`` (created, even when empty)."""
    if is_local(fs):
        shutil.copytree(local_dir, dest, dirs_exist_ok=True)
        return
    fs.create_dir(dest, recursive=True)
    pafs.copy_files(local_dir, dest, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def download_dir(fs: pafs.FileSystem, src: str, local_dir: str) -> None:
    """Copy ``src`` on ``fs`` into the local folder ``local_dir``."""
    os.makedirs(local_dir, exist_ok=True)
    if is_local(fs):
        shutil.copytree(src, local_dir, dirs_exist_ok=True)
        return
    pafs.copy_files(src, local_dir, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())


def copy_dir(fs: pafs.FileSystem, src: str, dest_fs: pafs.FileSystem, dest: str) -> None:
    if is_local(fs) and is_local(dest_fs):
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return
    dest_fs.create_dir(dest, recursive=True)
    pafs.copy_files(src, dest, source_filesystem=fs, destination_filesystem=dest_fs)


def write_text(fs: pafs.FileSystem, path: str, text: str, append: bool = False) -> None:
    if append and is_local(fs):
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
        return
    if append and exists(fs, path):
        text = read_text(fs, path) + text
    with fs.open_output_stream(path) as f:
        f.write(text.encode("utf-8"))


def read_text(fs: pafs.FileSystem, path: str) -> str:
    with fs.open_input_stream(path) as f:
        return f.read().decode("utf-8")


def delete_dir(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_dir(path)
    except (FileNotFoundError, OSError):
        pass


def uri_of(fs: pafs.FileSystem, path: str) -> str:
    """A string a user can pass back to ``resolve`` (local paths stay plain paths)."""
    if is_local(fs):
        return path
    type_name = fs.type_name
    if type_name in ("s3", "gcs", "hdfs", "abfs"):
        scheme = "gs" if type_name == "gcs" else type_name
        return f"{scheme}://{path.lstrip('/')}"
    return path
