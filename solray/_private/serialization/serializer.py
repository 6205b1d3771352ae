"""Turning values into bytes and back.

Values are pickled with protocol 5; contiguous buffers (NumPy arrays, Arrow buffers, bytes
larger than a page) travel out of band so the object store can place them in shared memory
and readers can map them without copying. cloudpickle handles functions and classes defined
in ``__main__`` or interactively. ``ObjectRef``s found inside a value are recorded so the
owner can count the new borrower.
"""

from __future__ import annotations

import pickle
import threading
from typing import Any

import cloudpickle

META_PICKLE = 0
META_ERROR = 1  # pickled exception (RayTaskError, RayActorError, ...)

_local = threading.local()


class SerializedObject:
    __slots__ = ("meta", "data", "buffers", "contained")

    def __init__(self, meta: int, data: bytes, buffers: list, contained: list):
        self.meta = meta
        self.data = data
        self.buffers = buffers  # memoryviews (contiguous, raw bytes)
        self.contained = contained  # ObjectRefs found inside the value

    @property
    def total_bytes(self) -> int:
        return len(self.data) + sum(b.nbytes for b in self.buffers)

    def to_inline(self) -> list:
        """msgpack-able form used when the value travels inside a message."""
        return [self.meta, self.data, [bytes(b) for b in self.buffers]]

    def contained_wire(self) -> list:
        return [[r.binary(), r.owner_address()] for r in self.contained]


def record_contained_ref(ref) -> None:
    """Called by ``ObjectRef.__reduce__`` while a value is being serialized."""
    refs = getattr(_local, "refs", None)
    if refs is not None:
        refs.append(ref)


def serialize(value: Any, meta: int = META_PICKLE) -> SerializedObject:
    buffers: list = []
    prev = getattr(_local, "refs", None)
    _local.refs = contained = []
    try:
        data = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    finally:
        _local.refs = prev
    views = []
    for b in buffers:
        try:
            views.append(b.raw())
        except BufferError:  # non-contiguous: pickle it in band instead
            return _serialize_in_band(value, meta, contained)
    return SerializedObject(meta, data, views, contained)


def _serialize_in_band(value: Any, meta: int, contained: list) -> SerializedObject:
    prev = getattr(_local, "refs", None)
    _local.refs = contained = []
    try:
        data = cloudpickle.dumps(value, protocol=5)
    finally:
        _local.refs = prev
    return SerializedObject(meta, data, [], contained)


def serialize_error(exc: BaseException) -> SerializedObject:
    try:
        return serialize(exc, META_ERROR)
    except Exception as e:  # the user's exception itself may not pickle
        from solray.exceptions import RaySystemError

        return serialize(RaySystemError(f"unpicklable exception {exc!r}: {e}"), META_ERROR)


def deserialize(meta: int, data: bytes | memoryview, buffers: list | None = None) -> Any:
    """Return the value; an error object is returned (not raised) with ``is_error=True``."""
    return pickle.loads(data, buffers=buffers or ())


def dumps_function(fn: Any) -> bytes:
    return cloudpickle.dumps(fn, protocol=5)


def loads_function(data: bytes) -> Any:
    return pickle.loads(data)
