"""What a core worker tells the state API about the objects it owns (``list_objects``).

Asked by its node daemon, which gathers the answers of every process on the node; runs
on the IO loop and only reads the memory store and reference counts.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from solray._private.worker.core_worker import CoreWorker

MAX_OBJECTS = 10_000


def _inline_size(inline: list | None) -> int:
    if not inline:
        return 0
    _meta, data, buffers = inline
    return len(data or b"") + sum(len(b) for b in buffers or ())


def owned_objects(worker: CoreWorker, limit: int = MAX_OBJECTS) -> dict:
    """``{"pid", "ip", "type", "objects": [[oid, size, task_status, reference_type, attempt], ...], "total"}``."""
    from solray._private import ids

    with worker.store.lock:
        entries = [(oid, e) for oid, e in worker.store.entries.items() if e.owned]
    counts = worker.refs.snapshot()
    running = worker.submitter.running
    out = []
    for oid, e in entries[:limit]:
        size = e.location[2] if e.location else _inline_size(e.inline)
        spec = running.get(ids.task_id_of(oid))
        if e.ready:
            status = "FINISHED"
        elif spec is not None:
            status = "SUBMITTED_TO_WORKER" if spec.worker_address else "PENDING_ARGS_AVAIL"
        else:
            status = "NIL"
        if counts.get(oid):
            ref_type = "LOCAL_REFERENCE"
        elif e.borrowers:
            ref_type = "USED_BY_PENDING_TASK"
        else:
            ref_type = "PINNED_IN_MEMORY"
        out.append([oid, size, status, ref_type, spec.attempt if spec is not None else 0])
    return {
        "pid": os.getpid(),
        "ip": worker.node_ip,
        "type": "DRIVER" if worker.mode == "driver" else "WORKER",
        "worker_id": worker.worker_id,
        "objects": out,
        "total": len(entries),
    }
