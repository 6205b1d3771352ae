"""The context a Data task runs in (its index within its operator), set by the task runner."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class TaskContext:
    task_idx: int
    op_name: str = ""

    _local = threading.local()

    @classmethod
    def current(cls) -> TaskContext:
        return getattr(cls._local, "ctx", None) or TaskContext(0)

    @classmethod
    def set_current(cls, ctx: TaskContext | None) -> None:
        cls._local.ctx = ctx
