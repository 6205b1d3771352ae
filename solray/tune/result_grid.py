"""``ResultGrid``: the results of every trial of a Tuner run."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from solray.air.result import Result

_SCOPES = ("all", "last", "avg", "last-5-avg", "last-10-avg")


class ResultGrid:
    """One ``Result`` per trial (``len``, indexing, iteration), plus the best of them."""

    def __init__(self, results: list[Result], experiment_path: str | None = None, metric: str | None = None,
                 mode: str | None = None, filesystem: Any = None, statuses: list[str] | None = None):
        self._results = list(results)
        self._statuses = list(statuses) if statuses is not None else ["TERMINATED"] * len(self._results)
        self._experiment_path = experiment_path
        self._metric = metric
        self._mode = mode
        self._filesystem = filesystem

    @property
    def experiment_path(self) -> str | None:
        return self._experiment_path

    @property
    def filesystem(self) -> Any:
        return self._filesystem

    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, index: int) -> Result:
        return self._results[index]

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    @property
    def errors(self) -> list[BaseException]:
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    @property
    def num_terminated(self) -> int:
        return sum(1 for status in self._statuses if status == "TERMINATED")

    def get_best_result(self, metric: str | None = None, mode: str | None = None, scope: str = "last",
                        filter_nan_and_inf: bool = True) -> Result:
        """The trial whose ``metric`` is best under ``scope``: its last value (``"last"``),
        mean of all (``"avg"``) or of the last 5/10 (``"last-5-avg"``), or its best ever (``"all"``)."""
        metric = metric or self._metric
        mode = mode or self._mode
        if not metric or not mode:
            raise ValueError(
                "get_best_result needs metric and mode: pass them here or in TuneConfig(metric=..., mode=...)"
            )
        if mode not in ("min", "max"):
            raise ValueError(f"get_best_result(mode={mode!r}): mode must be 'min' or 'max'")
        if scope not in _SCOPES:
            raise ValueError(f"get_best_result(scope={scope!r}): scope must be one of {', '.join(_SCOPES)}")
        scored = []
        for result in self._results:
            value = _scoped(result, metric, mode, scope)
            if value is None or (filter_nan_and_inf and not math.isfinite(value)):
                continue
            scored.append((value, result))
        if not scored:
            raise RuntimeError(
                f"No trial reported the metric {metric!r}"
                + (" with a finite value" if filter_nan_and_inf else "")
                + f" ({len(self._results)} trials, {self.num_errors} failed)"
            )
        pick = max if mode == "max" else min
        return pick(scored, key=lambda item: item[0])[1]

    def get_dataframe(self, filter_metric: str | None = None, filter_mode: str | None = None) -> Any:
        """One row per trial: its last result (or the best by ``filter_metric``), flattened
        with ``config/...`` columns."""
        import pandas as pd

        rows = []
        for result in self._results:
            row = dict(result.metrics or {})
            if filter_metric is not None and result.metrics_dataframe is not None and len(result.metrics_dataframe):
                df = result.metrics_dataframe
                if filter_metric in df:
                    index = df[filter_metric].idxmax() if filter_mode == "max" else df[filter_metric].idxmin()
                    row = df.loc[index].to_dict()
            row.setdefault("config", result.config or {})
            row["logdir"] = result.path
            rows.append(row)
        if not rows:
            return pd.DataFrame()
        return pd.json_normalize(rows, sep="/")

    def __repr__(self) -> str:
        return f"ResultGrid<[{', '.join(repr(r) for r in self._results[:3])}{', ...' if len(self) > 3 else ''}]>"


def _scoped(result: Result, metric: str, mode: str, scope: str) -> float | None:
    if scope == "last":
        metrics = result.metrics or {}
        value = metrics.get(metric)
        if value is None and "/" in metric:
            node: Any = metrics
            for part in metric.split("/"):
                node = node.get(part) if isinstance(node, dict) else None
            value = node
        return float(value) if isinstance(value, (int, float)) else None
    df = result.metrics_dataframe
    if df is None or metric not in getattr(df, "columns", ()):
        return None
    values = df[metric].dropna()
    if not len(values):
        return None
    if scope == "all":
        return float(values.max() if mode == "max" else values.min())
    if scope == "last-5-avg":
        values = values.iloc[-5:]
    elif scope == "last-10-avg":
        values = values.iloc[-10:]
    return float(values.mean())
