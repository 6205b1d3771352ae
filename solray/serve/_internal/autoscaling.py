"""The autoscaling decision, without IO: load samples in, a replica count out."""

from __future__ import annotations

import math
from collections import deque

from solray.serve.config import AutoscalingConfig


class AutoscalingPolicy:
    """Follows ``target_ongoing_requests`` per replica, within ``[min, max]_replicas``,
    acting only once the wish to scale up (down) has lasted ``upscale_delay_s``
    (``downscale_delay_s``)."""

    def __init__(self, config: AutoscalingConfig) -> None:
        self.config = config
        self.samples: deque[tuple[float, float]] = deque()  # (time, total ongoing)
        self.want_up_since: float | None = None
        self.want_down_since: float | None = None

    def record(self, now: float, total_ongoing: float) -> None:
        self.samples.append((now, total_ongoing))
        horizon = now - self.config.look_back_period_s
        while len(self.samples) > 1 and self.samples[0][0] < horizon:
            self.samples.popleft()

    def desired(self, current: int) -> int:
        c = self.config
        if not self.samples:
            return max(c.min_replicas, min(c.max_replicas, current))
        load = sum(s for _, s in self.samples) / len(self.samples)
        raw = load / c.target_ongoing_requests
        factor = c.smoothing_factor
        if raw > current and c.upscaling_factor is not None:
            factor = c.upscaling_factor
        elif raw < current and c.downscaling_factor is not None:
            factor = c.downscaling_factor
        wanted = current + factor * (raw - current) if current else raw
        return max(c.min_replicas, min(c.max_replicas, math.ceil(wanted - 1e-9)))

    def decide(self, now: float, current: int) -> int:
        """The replica count to run now, given ``current``."""
        wanted = self.desired(current)
        if wanted > current:
            self.want_down_since = None
            self.want_up_since = self.want_up_since if self.want_up_since is not None else now
            if now - self.want_up_since >= self.config.upscale_delay_s:
                self.want_up_since = None
                return wanted
        elif wanted < current:
            self.want_up_since = None
            self.want_down_since = self.want_down_since if self.want_down_since is not None else now
            if now - self.want_down_since >= self.config.downscale_delay_s:
                self.want_down_since = None
                self.samples.clear()  # the old load was spread over more replicas
                return wanted
        else:
            self.want_up_since = self.want_down_since = None
        return current
