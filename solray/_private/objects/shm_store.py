"""One shared-memory file per large object, written by its producer and mapped by readers.

Layout: ``b"SLR1"``, u32 header slot size, u32 header length, a msgpack header ``[meta, data_len, [[off, len]...]]``,
the pickle stream, then each out-of-band buffer at a 64-byte aligned offset so NumPy and
Arrow can use it in place. Readers map the file read-only: arrays returned by ``get`` point
into shared memory and are not writeable, as in Ray. Unlinking a file while a reader still
maps it is safe: the pages live until the last mapping goes.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from collections import OrderedDict

from solray._private.protocol import frames
from solray._private.serialization.serializer import SerializedObject

MAGIC = b"SLR1"
_U32 = struct.Struct("<I")
ALIGN = 64
_WRITE_CHUNK = 1 << 30


def _align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def layout(so: SerializedObject) -> tuple[bytes, list, int]:
    """Return (prefix bytes, buffer offsets, total size) for a serialized object."""
    # The header holds buffer offsets, which depend on the header's own size: reserve a
    # generous fixed-size slot so one pass is enough.
    offsets = []
    header_guess = 32 + 24 * len(so.buffers)
    pos = _align(12 + header_guess + len(so.data))
    for b in so.buffers:
        offsets.append([pos, b.nbytes])
        pos = _align(pos + b.nbytes)
    header = frames.pack([so.meta, len(so.data), offsets])
    prefix = MAGIC + _U32.pack(header_guess) + _U32.pack(len(header))
    prefix += header.ljust(header_guess, b"\0") + so.data
    return prefix, offsets, max(pos, len(prefix))


def write(path: str, so: SerializedObject, reuse: bool = False) -> int:
    """Write the object under a temporary name and rename it: a file at ``path`` is complete.

    With ``reuse`` the temporary file already exists (a recycled file whose pages are
    allocated), which makes writing it several times faster; a recycled file this process
    wrote before is still mapped (``_writer_maps``), faster again: a copy into mapped pages
    runs at memory speed where ``pwrite`` to tmpfs runs at about half of it.
    """
    prefix, offsets, total = layout(so)
    final, path = path, path + ".w"
    flags = os.O_RDWR if reuse else os.O_CREAT | os.O_EXCL | os.O_WRONLY
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        # An earlier attempt of the task that makes this object was killed mid-write and
        # left its partial file: this attempt replaces it.
        os.unlink(path)
        fd = os.open(path, flags, 0o600)
    keep_fd = False
    try:
        if reuse and total <= os.fstat(fd).st_size <= total + total // 4:
            # A recycled file of about the right size is not shrunk: its writable mapping
            # stays valid for next time (the node accounts it a little under its size).
            keep_fd = _writer_maps.write(fd, prefix, so.buffers, offsets)
        else:
            if total > (1 << 20) and not reuse:
                # Allocating all pages up front is ~3x faster on tmpfs than faulting them in.
                os.posix_fallocate(fd, 0, total)
            _pwrite_all(fd, memoryview(prefix), 0)
            for b, (off, _n) in zip(so.buffers, offsets, strict=True):
                _pwrite_all(fd, b.cast("B") if b.format != "B" else b, off)
            os.ftruncate(fd, total)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    if not keep_fd:
        os.close(fd)
    os.rename(path, final)
    return total


class _WriterMaps:
    """Writable mappings of recycled object files, kept (with their fds) between writes.

    A recycled file comes back to the writer that last filled it often (a loop putting
    same-sized objects), so the copy can go into pages already mapped. Holding the fd
    pins the inode: an (st_dev, st_ino) match is then the same file, never a new file
    that reused a freed inode number. Files the node deleted meanwhile (st_nlink 0) are
    dropped at the next write, and at most ``MAX`` are kept, so the memory they hold
    is bounded. The node daemon ignores writable mappings when it checks whether a freed
    file is still read by someone (they are only ever these).
    """

    MAX = 4

    def __init__(self):
        self._lock = threading.Lock()
        self._maps: OrderedDict[tuple[int, int], tuple[int, mmap.mmap]] = OrderedDict()

    def write(self, fd: int, prefix: bytes, buffers: list, offsets: list) -> bool:
        """Copy into ``fd``'s file through a mapping; True if the cache now owns ``fd``."""
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        with self._lock:
            self._drop_deleted()
            cached = self._maps.pop(key, None)
        if cached is not None and len(cached[1]) == st.st_size:
            os.close(fd)  # the cached fd is the same file
            fd, mm = cached
        else:
            if cached is not None:
                _close(*cached)
            mm = mmap.mmap(fd, st.st_size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
        mm[: len(prefix)] = prefix
        for b, (off, n) in zip(buffers, offsets, strict=True):
            mm[off : off + n] = b.cast("B") if b.format != "B" else b
        with self._lock:
            self._maps[key] = (fd, mm)
            while len(self._maps) > self.MAX:
                _close(*self._maps.popitem(last=False)[1])
        return True

    def _drop_deleted(self) -> None:
        for key, (fd, mm) in list(self._maps.items()):
            if os.fstat(fd).st_nlink == 0:
                del self._maps[key]
                _close(fd, mm)


def _close(fd: int, mm: mmap.mmap) -> None:
    mm.close()
    os.close(fd)


_writer_maps = _WriterMaps()


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    n = view.nbytes
    while done < n:
        done += os.pwrite(fd, view[done : done + _WRITE_CHUNK], offset + done)


def read(path: str) -> tuple[int, memoryview, list]:
    """Map an object file; return (meta, pickle stream, buffers), all views into the map."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    view = memoryview(mm)
    if bytes(view[:4]) != MAGIC:
        raise ValueError(f"object file {path} is corrupt")
    (slot,) = _U32.unpack(view[4:8])
    (hlen,) = _U32.unpack(view[8:12])
    meta, data_len, offsets = frames.unpack(bytes(view[12 : 12 + hlen]))
    data_start = 12 + slot
    data = view[data_start : data_start + data_len]
    buffers = [view[off : off + n] for off, n in offsets]
    return meta, data, buffers
