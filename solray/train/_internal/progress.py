"""The driver's live line of reported metrics: rewritten in place in a terminal, one line
per report (at most every few seconds) in a log."""

from __future__ import annotations

import sys
import time

_LOG_EVERY_S = 5.0


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class ProgressLine:
    def __init__(self, name: str, verbose: int | None):
        self.name = name
        self.enabled = verbose is None or verbose > 0
        self.tty = sys.stdout.isatty()
        self._last_print = 0.0
        self._pending: str | None = None

    def update(self, iteration: int, metrics: dict, elapsed: float) -> None:
        if not self.enabled:
            return
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in list(metrics.items())[:8] if not isinstance(v, (dict, list)))
        line = f"[{self.name}] iter {iteration} | {elapsed:.1f}s | {shown}"
        now = time.monotonic()
        if self.tty:
            sys.stdout.write("\r\x1b[2K" + line[:200])
            sys.stdout.flush()
        elif now - self._last_print >= _LOG_EVERY_S or iteration == 1:
            print(line, flush=True)
            self._last_print, self._pending = now, None
        else:
            self._pending = line

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            sys.stdout.write("\r\x1b[2K")
        print(f"[{self.name}] {text}", flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.tty:
            sys.stdout.write("\n")
            sys.stdout.flush()
        elif self._pending:
            print(self._pending, flush=True)
