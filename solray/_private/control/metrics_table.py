"""The control service's store of user metrics (``solray.util.metrics``), sans-IO.

Processes report in batches (``apply``): a metric's definition once per batch it appears
in, then points. Counters and histograms report what was added since their last report
(so reports from many processes add up); gauges report their last value (the newest
report wins). ``series`` gives everything back for the Prometheus exporter.

Batch shape: ``{"defs": {name: [type, description, boundaries | None]},
"points": [[name, [[tag, value], ...], value]]}`` where a histogram's value is
``[bucket_counts, sum, count]`` with one more bucket than boundaries (the +Inf bucket).
"""

from __future__ import annotations

import time
from typing import Any

MAX_SERIES = 50_000
COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"


class MetricsTable:
    def __init__(self, max_series: int = MAX_SERIES):
        self.max_series = max_series
        self.defs: dict[str, dict] = {}  # name -> {"type", "description", "boundaries"}
        # (name, ((tag, value), ...)) -> float | [bucket_counts, sum, count]
        self.values: dict[tuple, Any] = {}
        self.updated: dict[tuple, float] = {}
        self.dropped = 0

    def apply(self, batch: dict) -> None:
        for name, (kind, description, boundaries) in (batch.get("defs") or {}).items():
            old = self.defs.get(name)
            if old is not None and (old["type"] != kind or old.get("boundaries") != boundaries):
                continue  # the first definition wins; a conflicting one is ignored
            self.defs[name] = {"type": kind, "description": description or "", "boundaries": boundaries}
        now = time.time()
        for name, tags, value in batch.get("points") or ():
            d = self.defs.get(name)
            if d is None:
                continue
            key = (name, tuple(sorted((str(k), str(v)) for k, v in tags)))
            if key not in self.values and len(self.values) >= self.max_series:
                self.dropped += 1
                continue
            kind = d["type"]
            if kind == COUNTER:
                self.values[key] = self.values.get(key, 0.0) + float(value)
            elif kind == GAUGE:
                self.values[key] = float(value)
            elif kind == HISTOGRAM:
                buckets, total, count = value
                cur = self.values.get(key)
                if cur is None or len(cur[0]) != len(buckets):
                    cur = self.values[key] = [[0] * len(buckets), 0.0, 0]
                cur[0] = [a + b for a, b in zip(cur[0], buckets, strict=True)]
                cur[1] += float(total)
                cur[2] += int(count)
            self.updated[key] = now

    def series(self) -> list[dict]:
        """One entry per metric: its definition and every tag set's value."""
        by_name: dict[str, list] = {}
        for (name, tags), value in self.values.items():
            by_name.setdefault(name, []).append([[list(t) for t in tags], value])
        return [{"name": name, **self.defs[name], "samples": samples} for name, samples in sorted(by_name.items())]
