"""``XGBoostConfig``: XGBoost's own collective (a Rabit tracker on rank 0's worker)."""

from __future__ import annotations

import dataclasses

from solray.train._internal.backend import Backend, BackendConfig

_tracker: dict = {}


@dataclasses.dataclass
class XGBoostConfig(BackendConfig):
    """``xgboost_communicator``: "rabit" (the only one on CPU and GPU clusters)."""

    xgboost_communicator: str = "rabit"

    @property
    def backend_cls(self) -> type[Backend]:
        return _XGBoostBackend


def _start_tracker(num_workers: int, host_ip: str) -> dict:
    from xgboost.tracker import RabitTracker

    tracker = RabitTracker(n_workers=num_workers, host_ip=host_ip, sortby="task")
    tracker.start()
    _tracker["tracker"] = tracker
    return tracker.worker_args()


def _set_collective_args(args: dict, rank: int) -> None:
    _tracker["args"] = {**args, "dmlc_task_id": str(rank)}


def _with_collective(train_fn):
    """XGBoost's communicator is per thread: join it in the thread that trains."""

    def run():
        from xgboost import collective

        # By module: this closure is pickled by value, with a copy of the driver's globals.
        from solray.train.xgboost import config

        args = config._tracker.get("args")
        if args is None:
            return train_fn()
        with collective.CommunicatorContext(**args):
            return train_fn()

    return run


def _stop_tracker() -> None:
    _tracker.pop("args", None)
    tracker = _tracker.pop("tracker", None)
    if tracker is not None:
        tracker.wait_for()


class _XGBoostBackend(Backend):
    def on_start(self, worker_group, backend_config: XGBoostConfig) -> None:
        n = len(worker_group.workers)
        if n == 1:
            return
        args = worker_group.execute_single(0, _start_tracker, n, worker_group.infos[0].node_ip)
        worker_group.execute_per_rank(_set_collective_args, [(args, rank) for rank in range(n)])

    def wrap_train_fn(self, train_fn):
        return _with_collective(train_fn)

    def on_shutdown(self, worker_group, backend_config: XGBoostConfig) -> None:
        if len(worker_group.workers) > 1:
            worker_group.execute(_stop_tracker)
