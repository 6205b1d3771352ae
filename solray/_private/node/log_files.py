"""A node's log files, served by its daemon (``list_logs``, ``read_log``) to the dashboard
and the ``solray logs`` CLI: every node serves the files of its own session's ``logs``
folder, so logs of any node are readable from the head.

Names are relative to that folder and never leave it: ``..``, absolute paths and links
that point outside are refused.
"""

from __future__ import annotations

import fnmatch
import os

# Most a single read returns; callers page with ``offset``.
MAX_READ_BYTES = 1 << 20


def category(name: str) -> str:
    """The group a log file is listed under (Ray's group names where they fit)."""
    base = os.path.basename(name)
    if base.startswith("worker-"):
        return "worker_out"
    if base.startswith("job-driver-"):
        return "driver"
    if base.startswith("runtime_env"):
        return "runtime_env"
    if base.startswith("dashboard"):
        return "dashboard"
    if base.startswith("head"):
        return "gcs_server"
    if base.startswith(("node", "raylet", "daemon")):
        return "raylet"
    return "misc"


def list_logs(logs_dir: str, glob: str | None = None) -> dict[str, list[str]]:
    """``{category: [relative file name, ...]}`` of the files matching ``glob``."""
    pattern = glob or "*"
    out: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(logs_dir):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, logs_dir)
        for name in sorted(filenames):
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(name, pattern):
                out.setdefault(category(rel), []).append(rel)
    return out


def resolve(logs_dir: str, filename: str) -> str:
    """The absolute path of ``filename`` inside ``logs_dir``; ValueError if it would leave it."""
    if not isinstance(filename, str) or not filename or "\0" in filename:
        raise ValueError("a log file name is required")
    root = os.path.realpath(logs_dir)
    path = os.path.realpath(os.path.join(root, filename))
    if os.path.isabs(filename) or not path.startswith(root + os.sep):
        raise ValueError(f"{filename!r} is not a file in the node's log folder")
    return path


def read_log(logs_dir: str, p: dict) -> dict:
    """Part of a log file.

    ``{"filename", "lines": N}``: the last N lines (all of them for N < 0), at most
    MAX_READ_BYTES; ``{"filename", "offset": K}``: the bytes from K on. Answers
    ``{"data": bytes, "offset": where the next read starts, "size": file size}``.
    """
    path = resolve(logs_dir, p.get("filename"))
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"log file {p.get('filename')!r} does not exist on this node") from None
    except IsADirectoryError:
        raise ValueError(f"{p.get('filename')!r} is a folder, not a log file") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        limit = min(int(p.get("max_bytes") or MAX_READ_BYTES), MAX_READ_BYTES)
        lines = p.get("lines")
        if p.get("offset") is None and lines is not None and int(lines) >= 0:
            start = _tail_start(f, size, int(lines), limit)
        else:
            start = max(0, min(int(p.get("offset") or 0), size))
        f.seek(start)
        data = f.read(min(limit, size - start))
    return {"data": data, "offset": start + len(data), "size": size}


def _tail_start(f, size: int, lines: int, limit: int) -> int:
    """Where the last ``lines`` lines of the file start (a trailing newline ends a line)."""
    if lines == 0:
        return size
    pos, found = size, 0
    block = 64 * 1024
    end_skip = 1  # the file's final newline does not start a line
    while pos > 0 and size - pos < limit:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        chunk = f.read(step)
        i = len(chunk)
        while True:
            i = chunk.rfind(b"\n", 0, i)
            if i < 0:
                break
            if pos + i == size - 1 and end_skip:
                end_skip = 0
                continue
            found += 1
            if found == lines:
                return pos + i + 1
    return max(0, size - limit) if size - pos >= limit else 0
