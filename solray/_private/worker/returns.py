"""What a ``.remote()`` call hands back: return refs created up front, or a generator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from solray._private import ids
from solray._private.objects.object_ref import ObjectRef


def create_returns(worker: Any, task_id: bytes, num_returns: Any) -> tuple[list[bytes], list[ObjectRef]]:
    """Object ids of a task's returns (owned by the caller) and a ref to each."""
    if num_returns == "streaming":
        return_ids = [ids.object_id(task_id, 0)]  # marks completion; items come later
    elif num_returns == "dynamic":
        return_ids = [ids.object_id(task_id, 1)]
    else:
        return_ids = [ids.object_id(task_id, i + 1) for i in range(num_returns)]
    for oid in return_ids:
        worker.store.create(oid, owned=True)
    return return_ids, [ObjectRef(oid, worker.address, _worker=worker) for oid in return_ids]


def submit_and_return(worker: Any, task_id: bytes, num_returns: Any, refs: list, submit: Callable[[], None]) -> Any:
    """Hand ``submit`` to the IO loop and return what Ray returns for this ``num_returns``."""
    stream = worker.create_stream(task_id) if num_returns == "streaming" else None
    worker.schedule(submit)
    if stream is not None:
        return stream
    if num_returns == 1 or num_returns == "dynamic":
        return refs[0]
    if num_returns == 0:
        return None
    return refs
