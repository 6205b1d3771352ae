"""The live status table on the driver (Ray's progress reporter): trials by state, the
best so far, and each trial's parameters and latest metrics."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any, TextIO

from solray.air._internal.storage import flatten
from solray.tune._internal.trial import Trial

_MAX_ROWS = 20


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    text = str(value)
    return text if len(text) <= 24 else text[:21] + "..."


class ProgressReporter:
    """Prints the table every ``interval`` seconds (and once at the end) when ``verbose``
    is at least 1; ``verbose`` 2+ also prints each trial's completion."""

    def __init__(self, metric: str | None, mode: str | None, verbose: int, total: int | None,
                 interval: float = 5.0, out: TextIO | None = None):
        self.metric, self.mode = metric, mode
        self.verbose = verbose
        self.total = total
        self.interval = interval
        self.out = out or sys.stdout
        self._start = time.monotonic()
        self._last = self._start

    def maybe_report(self, trials: list[Trial], used: dict, capacity: dict, force: bool = False) -> None:
        if self.verbose < 1:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        self.out.write(self.table(trials, used, capacity) + "\n")
        self.out.flush()

    def trial_finished(self, trial: Trial) -> None:
        if self.verbose >= 2:
            shown = _fmt(trial.last_result.get(self.metric)) if self.metric else ""
            self.out.write(f"Trial {trial.trial_name} {trial.status.lower()}"
                           f"{f' with {self.metric}={shown}' if shown else ''}\n")

    def best(self, trials: list[Trial]) -> Trial | None:
        if not self.metric:
            return None
        scored = [t for t in trials if self.metric in t.last_result]
        if not scored:
            return None
        pick = max if self.mode == "max" else min
        return pick(scored, key=lambda t: t.last_result[self.metric])

    def table(self, trials: list[Trial], used: dict, capacity: dict) -> str:
        counts = Counter(t.status for t in trials)
        elapsed = time.monotonic() - self._start
        lines = [
            f"Trial status: {' | '.join(f'{n} {s}' for s, n in sorted(counts.items()))}"
            + (f" (of {self.total})" if self.total else ""),
            f"Current time: {time.strftime('%Y-%m-%d %H:%M:%S')}. Total running time: {elapsed:.0f}s",
            "Logical resource usage: " + ", ".join(
                f"{used.get(k, 0):g}/{capacity[k]:g} {k}" for k in sorted(capacity) if k in ("CPU", "GPU")),
        ]
        best = self.best(trials)
        if best is not None:
            lines.append(f"Current best trial: {best.trial_name} with {self.metric}="
                         f"{_fmt(best.last_result[self.metric])} and params="
                         f"{ {k: v for k, v in flatten(best.config).items() if k in _shown_params(trials)} }")
        lines.append(self._rows(trials))
        return "\n".join(lines)

    def _rows(self, trials: list[Trial]) -> str:
        params = _shown_params(trials)
        metric_cols = [self.metric] if self.metric else []
        header = ["Trial name", "status", *params, "iter", "total time (s)", *metric_cols]
        rows = []
        order = {"RUNNING": 0, "PAUSED": 1, "PENDING": 2, "ERROR": 3, "TERMINATED": 4}
        shown = sorted(trials, key=lambda t: order.get(t.status, 5))[:_MAX_ROWS]
        for t in shown:
            flat = flatten(t.config)
            r = t.last_result
            rows.append([t.trial_name, t.status, *(_fmt(flat.get(p, "")) for p in params),
                         _fmt(r.get("training_iteration", "")), _fmt(r.get("time_total_s", "")),
                         *(_fmt(r.get(m, "")) for m in metric_cols)])
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

        def line(cells: list) -> str:
            return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        body = [rule, line(header), rule, *(line(r) for r in rows), rule]
        if len(trials) > _MAX_ROWS:
            body.append(f"... {len(trials) - _MAX_ROWS} more trials not shown")
        return "\n".join(body)


def _shown_params(trials: list[Trial], limit: int = 6) -> list[str]:
    """The config keys worth a column: those whose values differ between trials (an RLlib
    config has ~150 keys, nearly all the same everywhere); any keys when none differ."""
    flats = [flatten(t.config) for t in trials]
    keys = sorted({k for f in flats for k in f})
    varying = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
    return (varying or keys)[:limit]
