"""The one core worker of this process (driver or worker), found by the public API."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from solray._private.worker.core_worker import CoreWorker

_lock = threading.RLock()
_core_worker: CoreWorker | None = None


def get_core_worker(required: bool = True) -> CoreWorker | None:
    if _core_worker is None and required:
        from solray._private import api

        api.auto_init()
    return _core_worker


def set_core_worker(worker: CoreWorker | None) -> None:
    global _core_worker
    _core_worker = worker


def init_lock() -> threading.RLock:
    return _lock
