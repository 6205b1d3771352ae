"""Wire framing: length-prefixed msgpack frames with an optional raw trailing buffer.

A frame is ``!II`` (body length, tail length) followed by a msgpack body and a raw tail.
The tail carries large payloads without copying them through msgpack. msgpack never
executes code, so a frame can be decoded safely before its sender is authenticated;
pickled payloads only ever travel inside frames of authenticated connections.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

HEADER = struct.Struct("!II")
HEADER_SIZE = HEADER.size
# A frame larger than this is treated as hostile or corrupt and closes the connection.
MAX_BODY_SIZE = 1 << 30
MAX_TAIL_SIZE = 1 << 31
# Before a peer has authenticated, only a small AUTH frame is acceptable: a stranger must
# not make a server buffer a gigabyte of frame body.
MAX_UNAUTHENTICATED_SIZE = 64 * 1024

# Message kinds (first element of every body).
REQUEST = 0
REPLY = 1
ERROR = 2
NOTIFY = 3
AUTH = 4
# Sent by a server to a peer whose token it refused, just before it hangs up, so the peer
# can say why instead of reporting a bare connection reset.
AUTH_FAILED = 5


class FrameError(Exception):
    """A frame that cannot be accepted (oversized or malformed)."""


_packer = msgpack.Packer(use_bin_type=True)


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes | memoryview) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)


def encode_frame(body: Any, tail: bytes | memoryview | None = None) -> list:
    """Return the byte chunks of one frame, ready for ``transport.writelines``."""
    packed = pack(body)
    tail_len = len(tail) if tail is not None else 0
    if tail_len:
        return [HEADER.pack(len(packed), tail_len) + packed, tail]
    return [HEADER.pack(len(packed), 0) + packed]


def check_sizes(body_len: int, tail_len: int, authenticated: bool = True) -> None:
    if not authenticated and body_len + tail_len > MAX_UNAUTHENTICATED_SIZE:
        raise FrameError(f"oversized frame before authentication ({body_len + tail_len} bytes)")
    if body_len > MAX_BODY_SIZE or tail_len > MAX_TAIL_SIZE:
        raise FrameError(f"oversized frame (body {body_len} bytes, tail {tail_len} bytes)")
