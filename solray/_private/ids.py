"""Identifiers. All are random bytes except object ids, which embed the creating task's id.

An object id is the 16-byte id of the task (or ``put`` scope) that created it followed by a
4-byte index, so the task that made an object can be found from the object's id (lineage).
"""

from __future__ import annotations

import os

TASK_ID_SIZE = 16
OBJECT_ID_SIZE = TASK_ID_SIZE + 4


def new_id(size: int = 16) -> bytes:
    return os.urandom(size)


def object_id(task_id: bytes, index: int) -> bytes:
    return task_id + index.to_bytes(4, "little")


def task_id_of(oid: bytes) -> bytes:
    return oid[:TASK_ID_SIZE]


def index_of(oid: bytes) -> int:
    return int.from_bytes(oid[TASK_ID_SIZE:], "little")
