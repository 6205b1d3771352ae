"""The one place TensorFlow is imported: quiet, on one thread, and seeded on request.

Threads must be set before TensorFlow runs its first op, so every TF code path gets its
``tf`` from here. One thread per process keeps learners and EnvRunners from each grabbing
every core (as ``torch.set_num_threads(1)`` does for PyTorch) and makes CPU results repeatable.
"""

from __future__ import annotations

import os
from typing import Any

_tf: Any = None


def import_tf() -> Any:
    """``tensorflow``, configured for this process on first use."""
    global _tf
    if _tf is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no C++ info banners in every actor's log
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TF already ran an op in this process (user code): keep its settings
            pass
        _tf = tf
    return _tf


def seed_tf(seed: int | None) -> None:
    if seed is not None:
        import_tf().random.set_seed(seed)
