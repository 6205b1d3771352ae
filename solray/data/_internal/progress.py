"""Progress reporting: one tqdm bar per operator in a terminal, log lines otherwise.

Bars appear only for executions that run longer than ``_BAR_DELAY_S`` (tqdm's ``delay``), so
quick ``take()``/``count()`` calls print nothing. Without a terminal, each operator that ran
for more than ``_LOG_AFTER_S`` logs one line when it finishes.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("solray.data")

_BAR_DELAY_S = 1.0
_LOG_AFTER_S = 5.0


class ProgressManager:
    def __init__(self, ops, ctx):
        self.enabled = bool(ctx.enable_progress_bars)
        self.per_op = bool(getattr(ctx, "enable_operator_progress_bars", True))
        self._positions = {id(op): i for i, op in enumerate(ops)}
        self._bars: dict[int, object] = {}
        self._tqdm = None
        self.tty = False
        if self.enabled:
            try:
                self.tty = sys.stderr.isatty()
            except (AttributeError, ValueError):
                self.tty = False
            if self.tty:
                try:
                    from tqdm import tqdm

                    self._tqdm = tqdm
                except ImportError:  # pragma: no cover - tqdm is in the "data" extra
                    self._tqdm = None

    def _bar(self, op):
        key = id(op)
        bar = self._bars.get(key)
        if bar is None and self._tqdm is not None and key in self._positions and self.per_op:
            bar = self._tqdm(
                desc=f"- {op.name}"[:60],
                position=self._positions[key],
                unit=" row",
                delay=_BAR_DELAY_S,
                leave=False,
                dynamic_ncols=True,
                file=sys.stderr,
            )
            self._bars[key] = bar
        return bar

    def update(self, op, bundle) -> None:
        if not self.enabled or not self.tty:
            return
        bar = self._bar(op)
        if bar is not None:
            bar.update(bundle.num_rows)

    def finish(self, op) -> None:
        if not self.enabled or id(op) not in self._positions:
            return
        wall = op.stats.wall_time()
        if not self.tty and wall >= _LOG_AFTER_S:
            logger.info(
                "Data operator %s finished: %d rows in %d blocks, %d tasks, %.1fs",
                op.name, op.stats.output_rows, len(op.stats.block_rows), op.stats.num_tasks, wall,
            )

    def close(self) -> None:
        for bar in self._bars.values():
            try:
                bar.close()
            except Exception:  # pragma: no cover
                pass
        self._bars.clear()
