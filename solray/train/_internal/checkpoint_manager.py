"""Which reported checkpoints a run keeps (``CheckpointConfig``)."""

from __future__ import annotations

from typing import Any

from solray.air.config import CheckpointConfig


class CheckpointManager:
    """Keeps the best ``num_to_keep`` checkpoints by ``checkpoint_score_attribute`` (by
    recency without one) and always the latest, deleting the others from storage."""

    def __init__(self, config: CheckpointConfig, storage):
        self.config = config
        self.storage = storage
        self.kept: list[tuple[int, Any, dict]] = []  # (order, checkpoint, metrics)
        self._order = 0

    @property
    def latest(self):
        return self.kept[-1][1] if self.kept else None

    def register(self, checkpoint, metrics: dict) -> None:
        attribute = self.config.checkpoint_score_attribute
        if attribute is not None and attribute not in metrics:
            raise KeyError(
                f"CheckpointConfig(checkpoint_score_attribute={attribute!r}): the metrics reported with "
                f"a checkpoint must include it; got {sorted(metrics)}"
            )
        self._order += 1
        self.kept.append((self._order, checkpoint, dict(metrics)))
        self._prune()

    def _score(self, item: tuple[int, Any, dict]) -> float:
        attribute = self.config.checkpoint_score_attribute
        if attribute is None:
            return item[0]
        value = item[2][attribute]
        return value if self.config.checkpoint_score_order == "max" else -value

    def _prune(self) -> None:
        keep = self.config.num_to_keep
        if keep is None or len(self.kept) <= keep:
            return
        latest = self.kept[-1]
        ranked = sorted(self.kept[:-1], key=self._score, reverse=True)
        # The latest is always kept (it is where a restart resumes); it counts toward
        # num_to_keep unless it is worse than the best num_to_keep.
        best = sorted([latest, *ranked], key=self._score, reverse=True)[:keep]
        if latest not in best:
            best = best[: keep - 1] + [latest] if keep > 1 else [latest]
        survivors = {id(item) for item in best}
        for item in self.kept:
            if id(item) not in survivors:
                self.storage.delete_checkpoint(item[1])
        self.kept = [item for item in self.kept if id(item) in survivors]

    def best_checkpoints(self) -> list[tuple[Any, dict]]:
        return [(c, m) for _, c, m in self.kept]
