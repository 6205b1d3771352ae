"""Turning values into bytes and back.

Values are pickled with protocol 5; contiguous buffers (NumPy arrays, Arrow buffers, bytes
larger than a page) travel out of band so the object store can place them in shared memory
and readers can map them without copying. cloudpickle handles functions and classes defined
in ``__main__`` or interactively. ``ObjectRef``s found inside a value are recorded so the
owner can count the new borrower.
"""

from __future__ import annotations

import io
import pickle
import threading
import types
from collections import ChainMap
from typing import Any

import cloudpickle
from cloudpickle import cloudpickle as _cp

META_PICKLE = 0
META_ERROR = 1  # pickled exception (RayTaskError, RayActorError, ...)

_local = threading.local()


def _code_reduce_keeping_filename(code: types.CodeType):
    """cloudpickle >= 3.1 blanks code filenames to ``<dynamic-code>``; keep the real one so a
    remote traceback shows the file, and the source lines, of the user's function (Ray does)."""
    ctor, args = _cp._code_reduce(code)
    return ctor, tuple(code.co_filename if isinstance(a, str) and a == "<dynamic-code>" else a for a in args)


class _Pickler(cloudpickle.Pickler):
    if hasattr(_cp, "_code_reduce"):
        dispatch_table = ChainMap({types.CodeType: _code_reduce_keeping_filename}, cloudpickle.Pickler.dispatch_table)


def _dumps(value: Any, buffer_callback=None) -> bytes:
    with io.BytesIO() as f:
        _Pickler(f, protocol=5, buffer_callback=buffer_callback).dump(value)
        return f.getvalue()


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
        data = _dumps(value, buffer_callback=buffers.append)
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
        data = _dumps(value)
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
    return _dumps(fn)


def loads_function(data: bytes) -> Any:
    return pickle.loads(data)
