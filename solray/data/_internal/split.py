"""Splitting datasets: at row indices, into per-block refs, and streaming to n consumers.

``streaming_split`` runs one execution inside a coordinator actor; each consumer's iterator
asks the coordinator for its next bundle. With ``equal=False`` whoever asks gets the next
bundle (load balancing). With ``equal=True`` the coordinator only hands a consumer a bundle
when the rows it buffers can still bring every other consumer level, and at the end slices
the buffer so all consumers get exactly ``total // n`` rows (the remainder is dropped).
"""

from __future__ import annotations

import time
from collections import deque

import solray
from solray.data._internal import block as B
from solray.data._internal.ref_bundle import RefBundle
from solray.data._internal.shuffle import _w_slice
from solray.data._internal.tasks import generic_task
from solray.data.iterator import DataIterator


def _slice_task(specs, refs) -> RefBundle:
    block_ref, meta_ref = generic_task.options(num_returns=2).remote(_w_slice, specs, *refs)
    result = solray.get(meta_ref)
    return RefBundle(block_ref, result.metas, owns_blocks=False)


def rows_slice(bundles: list[RefBundle], start: int, end: int) -> list[RefBundle]:
    """Bundles holding rows ``[start, end)`` of ``bundles``; whole bundles are reused as-is."""
    out, pos = [], 0
    for b in bundles:
        b_start, b_end = pos, pos + b.num_rows
        pos = b_end
        lo, hi = max(start, b_start), min(end, b_end)
        if lo >= hi:
            continue
        if lo == b_start and hi == b_end:
            out.append(b)
        else:
            out.append(_slice_task([(0, lo - b_start, hi - lo)], [b.ref]))
    return out


def split_bundles_at(bundles: list[RefBundle], indices: list[int]) -> list[list[RefBundle]]:
    total = sum(b.num_rows for b in bundles)
    bounds = [0] + [min(i, total) for i in indices] + [total]
    return [rows_slice(bundles, bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]


def _w_unpack(fmt: str, column, value):
    blocks = B.as_blocks(value)
    outs = []
    for t in blocks:
        if fmt == "pyarrow":
            outs.append(t)
        elif fmt == "pandas":
            outs.append(B.block_to_pandas(t))
        else:
            arrays = B.block_to_numpy(t)
            if column is not None:
                outs.append(arrays[column])
            elif len(arrays) == 1:
                outs.append(next(iter(arrays.values())))
            else:
                outs.append(arrays)
    return outs[0] if len(outs) == 1 else tuple(outs)


def unpack_bundle(bundle: RefBundle, fmt: str, column: str | None = None) -> list:
    """One ref per block of ``bundle``, each holding the block in ``fmt``."""
    n = bundle.num_blocks
    if n == 0:
        return []
    if fmt == "pyarrow" and n == 1:
        return [bundle.ref]
    refs = generic_task.options(num_returns=n).remote(_w_unpack, fmt, column, bundle.ref)
    return [refs] if n == 1 else list(refs)


# --- streaming split ------------------------------------------------------------------------


class SplitCoordinator:
    """Actor owning one streaming execution shared by ``n`` consumers."""

    def __init__(self, dataset, n: int, equal: bool, context=None, locality_hints=None, node_of=None):
        if context is not None:  # execute with the driver's settings
            from solray.data.context import DataContext

            DataContext._set_current(context)
        self._dataset = dataset
        self._n = n
        self._equal = equal
        self._hints = list(locality_hints) if locality_hints else None
        self._node_of = node_of or _node_of
        self._epoch = 0
        self._finished: set[int] = set(range(n))  # splits done with the current epoch
        self._start_epoch_state()

    def _start_epoch_state(self) -> None:
        self._gen = None
        self._given = [0] * self._n
        self._buffer: deque[RefBundle] = deque()
        self._buffered_rows = 0
        self._upstream_done = False
        self._final: list[deque[RefBundle]] | None = None

    def _pull(self) -> bool:
        if self._gen is None:
            self._gen = self._dataset._iter_bundles()
        try:
            b = next(self._gen)
        except StopIteration:
            self._upstream_done = True
            self._gen = None
            return False
        self._buffer.append(b)
        self._buffered_rows += b.num_rows
        return True

    def get(self, split: int, epoch: int):
        """Next bundle for ``split`` in ``epoch``; None at its end; "wait" for an epoch barrier."""
        if epoch > self._epoch:
            if len(self._finished) < self._n:
                return "wait"
            self._epoch = epoch
            self._finished = set()
            self._start_epoch_state()
        elif epoch < self._epoch:
            return None
        if split in self._finished:
            return None
        b = self._next_equal(split) if self._equal else self._next_any(split)
        if b is None:
            self._finished.add(split)
            return None
        self._given[split] += b.num_rows
        return b

    def _next_any(self, split: int):
        if not self._buffer and not self._upstream_done:
            self._pull()
        if not self._buffer:
            return None
        b = self._local_bundle(split) if self._hints else None
        if b is None:
            b = self._buffer.popleft()
        self._buffered_rows -= b.num_rows
        return b

    def _local_bundle(self, split: int):
        """A buffered bundle whose block is on ``split``'s hinted node, reading ahead a
        little (at most ``n`` bundles buffered) to find one; None when there is none."""
        hint = self._hints[split]
        while True:
            for i, b in enumerate(self._buffer):
                if self._node_of(b.ref) == hint:
                    del self._buffer[i]
                    return b
            if self._upstream_done or len(self._buffer) >= self._n or not self._pull():
                return None

    def _can_assign(self, split: int, rows: int) -> bool:
        after = self._given[split] + rows
        need = sum(max(0, after - g) for j, g in enumerate(self._given) if j != split)
        return need <= self._buffered_rows - rows

    def _next_equal(self, split: int):
        while self._final is None:
            if self._buffer and self._can_assign(split, self._buffer[0].num_rows):
                b = self._buffer.popleft()
                self._buffered_rows -= b.num_rows
                return b
            if not self._pull():
                self._finalize()
        q = self._final[split]
        return q.popleft() if q else None

    def _finalize(self) -> None:
        total = sum(self._given) + self._buffered_rows
        target = total // self._n
        buffered = list(self._buffer)
        self._buffer.clear()
        self._final = [deque() for _ in range(self._n)]
        pos = 0
        for j in range(self._n):
            need = max(0, target - self._given[j])
            if need:
                for b in rows_slice(buffered, pos, pos + need):
                    self._final[j].append(b)
                pos += need

    def stats(self) -> str:
        return self._dataset.stats()


class StreamSplitDataIterator(DataIterator):
    """One consumer's view of a ``streaming_split``; picklable, so it can go to Train workers."""

    def __init__(self, coordinator, index: int, n: int, schema=None):
        self._coord = coordinator
        self._index = index
        self._n = n
        self._epoch = 0
        self._schema = schema

    def _iter_bundles(self):
        self._epoch += 1
        epoch = self._epoch
        backoff = 0.001
        pending = self._coord.get.remote(self._index, epoch)
        while True:
            result = solray.get(pending)
            if isinstance(result, str):  # "wait": other consumers are finishing the last epoch
                time.sleep(backoff)
                backoff = min(0.05, backoff * 2)
                pending = self._coord.get.remote(self._index, epoch)
                continue
            if result is None:
                return
            pending = self._coord.get.remote(self._index, epoch)  # prefetch the next one
            yield result

    def schema(self):
        return self._schema

    def stats(self) -> str:
        return solray.get(self._coord.stats.remote())

    def __repr__(self) -> str:
        return f"DataIterator(streaming_split {self._index + 1}/{self._n})"


def _node_of(ref) -> str | None:
    """The node holding an object this process owns (None while inline or unknown)."""
    from solray._private.worker import state

    entry = state.get_core_worker().store.get(ref.binary())
    return entry.location[0] if entry is not None and entry.location else None


def make_streaming_split(dataset, n: int, equal: bool, locality_hints=None) -> list[StreamSplitDataIterator]:
    from solray.data._internal.runtime import ensure_initialized
    from solray.data.context import DataContext

    ensure_initialized()
    actor_cls = solray.remote(SplitCoordinator)
    if locality_hints is not None and len(locality_hints) != n:
        raise ValueError(f"streaming_split: locality_hints has {len(locality_hints)} entries for n={n} splits")
    coord = actor_cls.options(num_cpus=0).remote(dataset, n, equal, DataContext.get_current(), locality_hints)
    return [StreamSplitDataIterator(coord, i, n) for i in range(n)]
