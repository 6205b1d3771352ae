"""Functions a training function calls (``solray.train.report`` and friends).

Each works in a Train worker and in a Tune function trainable: it dispatches to the
session of the current process (``solray.air._internal.session.current()``).
"""

from __future__ import annotations

from typing import Any

from solray.air._internal import session as _session


def report(metrics: dict[str, Any], checkpoint: Any = None, checkpoint_dir_name: str | None = None) -> None:
    """Report ``metrics`` (and optionally a ``Checkpoint``) for this training iteration.

    The checkpoint's files are uploaded to the run's storage before this returns, so the
    local folder may be deleted afterwards.
    """
    session = _session.require("solray.train.report()")
    if checkpoint_dir_name is not None:
        session.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=checkpoint_dir_name)
    else:
        session.report(metrics, checkpoint=checkpoint)


def get_context():
    """The ``TrainContext`` of this worker: world size and rank, local rank, names."""
    return _session.require("solray.train.get_context()").get_context()


def get_checkpoint():
    """The checkpoint to resume from (the latest one after a restart), or None."""
    return _session.require("solray.train.get_checkpoint()").get_checkpoint()


def get_dataset_shard(dataset_name: str | None = None):
    """This worker's shard of ``datasets[dataset_name]``: a ``DataIterator``."""
    session = _session.require("solray.train.get_dataset_shard()")
    getter = getattr(session, "get_dataset_shard", None)
    if getter is None:
        raise RuntimeError("get_dataset_shard() works inside a Trainer's train_loop_per_worker only")
    return getter(dataset_name)
