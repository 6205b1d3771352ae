"""Task and actor output: kept in the worker's log file and streamed to the driver.

A worker's ``sys.stdout``/``sys.stderr`` are replaced by streams that write to the log
file and batch complete lines, tagged ``(name pid=N)``, to the job's driver, which prints
them with that prefix (as Ray does). Output written by C code goes to the file only.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from typing import TextIO

_state = {"prefix": "", "sender": None}
_pending: list = []
_lock = threading.Lock()


def set_log_prefix(prefix: str) -> None:
    _state["prefix"] = prefix


def set_sender(sender) -> None:
    """``sender(batch)`` delivers ``[[stream, prefix, text], ...]`` to the driver."""
    _state["sender"] = sender


class TeeStream(io.TextIOBase):
    def __init__(self, name: str, file: TextIO, task_prefix):
        self.name = name
        self._file = file
        self._task_prefix = task_prefix
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._file.write(s)
        if _state["sender"] is None:
            return len(s)
        text = self._partial + s
        if "\n" not in text:
            self._partial = text
            return len(s)
        lines, _, self._partial = text.rpartition("\n")
        prefix = _state["prefix"] or self._task_prefix()
        with _lock:
            first = not _pending
            _pending.append([self.name, prefix, lines])
        if first:
            _state["sender"](None)
        return len(s)

    def flush(self) -> None:
        self._file.flush()

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return False


def has_sender() -> bool:
    return _state["sender"] is not None


def take_pending() -> list:
    with _lock:
        batch = list(_pending)
        _pending.clear()
    return batch


def position() -> int | None:
    """The size of this worker's log file once what was printed so far is in it (None
    outside a worker)."""
    if not isinstance(sys.stdout, TeeStream):
        return None
    try:
        sys.stdout.flush()  # stderr's TeeStream writes through the same file object
        if not isinstance(sys.stderr, TeeStream) or sys.stderr._file is not sys.stdout._file:
            sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a user replaced or closed the stream
        pass
    try:
        return os.fstat(1).st_size
    except OSError:
        return None


def flush_logs() -> None:
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass
    sender = _state["sender"]
    if sender is not None:
        sender(None)


def install(log_path: str, task_prefix) -> None:
    """Redirect fds 1/2 to the log file and tee Python-level output to the driver."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    out = open(1, "w", buffering=1, closefd=False, encoding="utf-8", errors="replace")
    sys.stdout = TeeStream("stdout", out, task_prefix)
    sys.stderr = TeeStream("stderr", out, task_prefix)


def print_worker_logs(batch: list) -> None:
    """Driver side: print lines received from workers with their ``(name pid=N)`` prefix."""
    for stream, prefix, text in batch:
        target = sys.stderr if stream == "stderr" else sys.stdout
        out = "".join(f"({prefix}) {line}\n" for line in text.split("\n"))
        try:
            target.write(out)
            target.flush()
        except Exception:
            pass
