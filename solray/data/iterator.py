"""``DataIterator``: batches and rows out of a dataset or a streaming split.

Iteration pulls output bundles from the executor as the consumer asks for them, fetches their
blocks (zero-copy from shared memory on the same node), and re-cuts them into batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from solray.data._internal import block as B
from solray.data._internal.batcher import batch_tables
from solray.data._internal.ref_bundle import RefBundle


def _fetch(bundle: RefBundle):
    import solray

    return B.as_blocks(solray.get(bundle.ref))


_END = object()


def _in_driver() -> bool:
    import solray

    try:
        return solray.get_runtime_context().get_task_id() is None
    except Exception:
        return True


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetched(make: Callable[[], Iterator[Any]], depth: int) -> Iterator[Any]:
    """Run the generator ``make()`` in a background thread, ``depth`` items ahead of the consumer.

    The thread drives the executor (scheduling tasks, fetching blocks) while the consumer
    works on the current batch. Stopping early (``break``) stops the thread and
    closes the generator there, which shuts the execution down.
    """
    if depth <= 0 or not _in_driver():
        # Inside a task or actor, blocking in a side thread would hold the worker's CPU (the
        # runtime only lends it back while the task's own thread waits), so iterate inline.
        yield from make()
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        gen = make()
        try:
            for item in gen:
                if not put(item):
                    break
            else:
                put(_END)
        except BaseException as e:  # handed to the consumer
            put(_Raised(e))
        finally:
            gen.close()

    thread = threading.Thread(target=work, name="solray-data-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        while True:
            try:
                q.get_nowait()
            except queue.Empty:
                break
        thread.join(timeout=30)


class DataIterator:
    """Iterate over a dataset's batches or rows (Ray's ``ray.data.DataIterator``)."""

    def _iter_bundles(self) -> Iterator[RefBundle]:
        raise NotImplementedError

    def _iter_tables(self) -> Iterator:
        for bundle in self._iter_bundles():
            yield from _fetch(bundle)

    def iter_batches(
        self,
        *,
        prefetch_batches: int = 1,
        batch_size: int | None = 256,
        batch_format: str | None = "default",
        drop_last: bool = False,
        local_shuffle_buffer_size: int | None = None,
        local_shuffle_seed: int | None = None,
        _collate_fn: Callable | None = None,
    ) -> Iterator[Any]:
        B.validate_batch_format(batch_format)
        if prefetch_batches is not None and prefetch_batches < 0:
            raise ValueError("prefetch_batches must be non-negative")
        # The background thread runs the execution and fetches blocks; cutting blocks into
        # batches stays in the consumer's thread (handing over every small batch between
        # threads would cost more than it saves).
        tables = prefetched(self._iter_tables, prefetch_batches or 0)
        batches = batch_tables(tables, batch_size, drop_last, local_shuffle_buffer_size, local_shuffle_seed)
        return self._format(batches, batch_format, _collate_fn)

    @staticmethod
    def _format(batches, batch_format, collate_fn):
        for table in batches:
            batch = B.block_to_batch(table, batch_format)
            yield collate_fn(batch) if collate_fn is not None else batch

    def iter_rows(self) -> Iterator[dict]:
        for table in self._iter_tables():
            yield from B.iter_rows(table)

    def __iter__(self):
        return self.iter_rows()

    def iter_torch_batches(
        self,
        *,
        prefetch_batches: int = 1,
        batch_size: int | None = 256,
        dtypes=None,
        device: Any = "auto",
        collate_fn: Callable | None = None,
        drop_last: bool = False,
        local_shuffle_buffer_size: int | None = None,
        local_shuffle_seed: int | None = None,
        pin_memory: bool = False,
    ) -> Iterator[Any]:
        try:
            import torch
        except ImportError:
            raise ImportError("iter_torch_batches needs PyTorch: pip install torch") from None
        if device == "auto":
            device = None
        for batch in self.iter_batches(prefetch_batches=prefetch_batches, batch_size=batch_size,
                                       batch_format="numpy", drop_last=drop_last,
                                       local_shuffle_buffer_size=local_shuffle_buffer_size,
                                       local_shuffle_seed=local_shuffle_seed):
            if collate_fn is not None:
                yield collate_fn(batch)
                continue
            out = {}
            for name, arr in batch.items():
                dtype = dtypes.get(name) if isinstance(dtypes, dict) else dtypes
                if arr.dtype == object:
                    try:
                        import numpy as np

                        arr = np.stack(list(arr))
                    except Exception:
                        out[name] = arr
                        continue
                if not arr.flags.writeable:
                    arr = arr.copy()
                t = torch.as_tensor(arr, dtype=dtype)
                if device is not None:
                    t = t.to(device)
                if pin_memory and t.device.type == "cpu":
                    t = t.pin_memory()
                out[name] = t
            yield out

    def materialize(self):
        from solray.data._internal.logical import InputData
        from solray.data.dataset import MaterializedDataset

        bundles = [RefBundle(b.ref, b.metas, owns_blocks=False) for b in self._iter_bundles()]
        return MaterializedDataset(InputData(bundles))

    def schema(self):
        return None

    def stats(self) -> str:
        return ""

    def get_context(self):
        from solray.data.context import DataContext

        return DataContext.get_current()


class DatasetIterator(DataIterator):
    """Iterator over one dataset (``Dataset.iterator()``); each iteration re-executes it."""

    def __init__(self, dataset):
        self._dataset = dataset

    def _iter_bundles(self):
        return self._dataset._iter_bundles()

    def schema(self):
        return self._dataset.schema()

    def stats(self) -> str:
        return self._dataset.stats()

    def __repr__(self) -> str:
        return f"DataIterator({self._dataset!r})"
