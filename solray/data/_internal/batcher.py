"""Cutting a stream of blocks into fixed-size batches, optionally shuffled locally."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

from solray.data._internal import block as B


def _exact_batches(tables: Iterable[pa.Table], batch_size: int | None, drop_last: bool) -> Iterator[pa.Table]:
    if batch_size is None:
        for t in tables:
            if t.num_rows:
                yield t
        return
    pending: list[pa.Table] = []
    have = 0
    for t in tables:
        offset = 0
        n = t.num_rows
        while offset < n:
            take = min(batch_size - have, n - offset)
            if have == 0 and take == batch_size:
                yield t.slice(offset, take)
                offset += take
                continue
            pending.append(t.slice(offset, take))
            have += take
            offset += take
            if have == batch_size:
                yield B.concat(pending)
                pending, have = [], 0
    if have and not drop_last:
        yield B.concat(pending)


def _shuffled_batches(tables: Iterable[pa.Table], batch_size: int | None, drop_last: bool,
                      buffer_size: int, seed: int | None) -> Iterator[pa.Table]:
    rng = np.random.default_rng(seed)
    bs = batch_size or 256
    buffer: list[pa.Table] = []
    have = 0

    def shuffled(tables_: list[pa.Table]) -> pa.Table:
        t = B.concat(tables_)
        return t.take(pa.array(rng.permutation(t.num_rows))) if t.num_rows > 1 else t

    for t in tables:
        if not t.num_rows:
            continue
        buffer.append(t)
        have += t.num_rows
        if have >= buffer_size + bs:
            mixed = shuffled(buffer)
            emit = ((have - buffer_size) // bs) * bs
            for start in range(0, emit, bs):
                yield mixed.slice(start, bs)
            rest = mixed.slice(emit)
            buffer, have = [rest], rest.num_rows
    if have:
        mixed = shuffled(buffer)
        yield from _exact_batches([mixed], bs, drop_last)


def batch_tables(tables: Iterable[pa.Table], batch_size: int | None, drop_last: bool = False,
                 local_shuffle_buffer_size: int | None = None, local_shuffle_seed: int | None = None
                 ) -> Iterator[pa.Table]:
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if local_shuffle_buffer_size:
        if local_shuffle_buffer_size < 0:
            raise ValueError("local_shuffle_buffer_size must be non-negative")
        return _shuffled_batches(tables, batch_size, drop_last, local_shuffle_buffer_size, local_shuffle_seed)
    return _exact_batches(tables, batch_size, drop_last)
