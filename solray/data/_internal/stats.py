"""Execution statistics per operator, rendered by ``Dataset.stats()`` (Ray's layout)."""

from __future__ import annotations

import time


def _fmt_s(x: float) -> str:
    if x < 1:
        return f"{x * 1000:.2f}ms"
    return f"{x:.2f}s"


def _fmt_bytes(x: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(x) < 1024:
            return f"{x:.0f}{unit}" if unit == "B" else f"{x:.2f}{unit}"
        x /= 1024
    return f"{x:.2f}TiB"


def _summary(values: list[float], fmt) -> str:
    if not values:
        return "n/a"
    return (f"{fmt(min(values))} min, {fmt(max(values))} max, "
            f"{fmt(sum(values) / len(values))} mean, {fmt(sum(values))} total")


class OpStats:
    """What one physical operator did in one execution."""

    def __init__(self, name: str):
        self.name = name
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.task_wall: list[float] = []
        self.task_cpu: list[float] = []
        self.task_latency: list[float] = []
        self.block_rows: list[int] = []
        self.block_bytes: list[int] = []
        self.output_rows = 0
        self.output_bytes = 0
        self.task_output_bytes: list[int] = []
        self.nodes: dict[str, int] = {}
        self.empty_schema = None

    def start(self) -> None:
        if self.start_time is None:
            self.start_time = time.perf_counter()

    def finish(self) -> None:
        if self.end_time is None:
            self.end_time = time.perf_counter()

    def add_task(self, stats, latency: float, output_bytes: int = 0) -> None:
        self.task_latency.append(latency)
        self.task_output_bytes.append(output_bytes)
        if stats is not None:
            self.task_wall.append(stats.wall_s)
            self.task_cpu.append(stats.cpu_s)
            node = stats.node_id or "local"
            self.nodes[node] = self.nodes.get(node, 0) + 1

    def add_output(self, bundle) -> None:
        for m in bundle.metas:
            self.block_rows.append(m.num_rows or 0)
            self.block_bytes.append(m.size_bytes or 0)
        self.output_rows += bundle.num_rows
        self.output_bytes += bundle.size_bytes

    @property
    def num_tasks(self) -> int:
        return len(self.task_latency)

    def avg_output_bytes_per_task(self) -> float | None:
        if not self.task_output_bytes:
            return None
        return sum(self.task_output_bytes) / len(self.task_output_bytes)

    def wall_time(self) -> float:
        if self.start_time is None:
            return 0.0
        return (self.end_time or time.perf_counter()) - self.start_time

    def render(self, index: int) -> str:
        lines = [
            f"Operator {index} {self.name}: {self.num_tasks} tasks executed, "
            f"{len(self.block_rows)} blocks produced in {self.wall_time():.2f}s"
        ]
        if self.task_wall:
            lines.append(f"* Remote wall time: {_summary(self.task_wall, _fmt_s)}")
            lines.append(f"* Remote cpu time: {_summary(self.task_cpu, _fmt_s)}")
        if self.block_rows:
            lines.append(f"* Output num rows per block: {_summary(self.block_rows, lambda v: f'{v:.0f}')}")
            lines.append(f"* Output size bytes per block: {_summary(self.block_bytes, lambda v: f'{v:.0f}')}")
        if self.nodes:
            counts = list(self.nodes.values())
            lines.append(f"* Tasks per node: {min(counts)} min, {max(counts)} max, "
                         f"{sum(counts) / len(counts):.0f} mean; {len(counts)} nodes used")
        wall = self.wall_time()
        if wall > 0:
            lines.append("* Operator throughput:")
            lines.append(f"\t* Total output num rows: {self.output_rows} rows")
            lines.append(f"\t* Total output size: {_fmt_bytes(self.output_bytes)}")
            lines.append(f"\t* Throughput: {self.output_rows / wall:.1f} rows/s")
        return "\n".join(lines)


class ExecutionStats:
    """Stats of one execution: per-operator stats plus totals."""

    def __init__(self, ops: list[OpStats]):
        self.ops = ops
        self.start_time = time.perf_counter()
        self.end_time: float | None = None
        self.peak_bytes = 0.0
        self.output_rows = 0

    def finish(self) -> None:
        self.end_time = time.perf_counter()

    def wall_time(self) -> float:
        return (self.end_time or time.perf_counter()) - self.start_time

    def to_summary_string(self) -> str:
        parts = [op.render(i + 1) for i, op in enumerate(self.ops)]
        wall = self.wall_time()
        parts.append(
            "Dataset throughput:\n"
            f"\t* Total wall time: {wall:.2f}s\n"
            f"\t* Output rows: {self.output_rows}\n"
            f"\t* Throughput: {self.output_rows / wall if wall > 0 else 0:.1f} rows/s\n"
            f"\t* Peak memory reserved (queued blocks + in-flight estimates): {_fmt_bytes(self.peak_bytes)}"
        )
        return "\n\n".join(parts)
