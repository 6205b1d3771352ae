"""The metric and mode a searcher or scheduler optimises (shared by both)."""

from __future__ import annotations


class Objective:
    """``metric`` to optimise and ``mode`` ("min" or "max"), checked when given."""

    def __init__(self, metric: str | None = None, mode: str | None = None):
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"{type(self).__name__}(mode={mode!r}): mode must be 'min' or 'max'")
        self._metric = metric
        self._mode = mode

    @property
    def metric(self) -> str | None:
        return self._metric

    @property
    def mode(self) -> str | None:
        return self._mode
