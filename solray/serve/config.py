"""Deployment, autoscaling and HTTP options, validated where the user writes them."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

DEFAULT_MAX_ONGOING_REQUESTS = 5


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}.")


@dataclasses.dataclass
class AutoscalingConfig:
    """How a deployment's replica count follows its load (requests ongoing per replica)."""

    min_replicas: int = 1
    max_replicas: int = 1
    initial_replicas: int | None = None
    target_ongoing_requests: float = 2.0
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    metrics_interval_s: float = 10.0
    look_back_period_s: float = 30.0
    upscaling_factor: float | None = None
    downscaling_factor: float | None = None
    smoothing_factor: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_replicas", "max_replicas"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"autoscaling_config.{name} must be a non-negative integer, got {v!r}.")
        if self.max_replicas < 1:
            raise ValueError("autoscaling_config.max_replicas must be at least 1.")
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"autoscaling_config.min_replicas ({self.min_replicas}) must be <= max_replicas ({self.max_replicas})."
            )
        if self.initial_replicas is not None and not (self.min_replicas <= self.initial_replicas <= self.max_replicas):
            raise ValueError("autoscaling_config.initial_replicas must lie between min_replicas and max_replicas.")
        _positive("autoscaling_config.target_ongoing_requests", self.target_ongoing_requests)
        for name in ("upscale_delay_s", "downscale_delay_s", "metrics_interval_s", "look_back_period_s"):
            _positive(f"autoscaling_config.{name}", getattr(self, name), allow_zero=True)
        for name in ("upscaling_factor", "downscaling_factor", "smoothing_factor"):
            if getattr(self, name) is not None:
                _positive(f"autoscaling_config.{name}", getattr(self, name))

    @classmethod
    def from_value(cls, value: AutoscalingConfig | dict | None) -> AutoscalingConfig | None:
        if value is None or isinstance(value, AutoscalingConfig):
            return value
        if not isinstance(value, dict):
            raise TypeError(f"autoscaling_config must be a dict or AutoscalingConfig, got {type(value).__name__}.")
        unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown autoscaling_config fields: {sorted(unknown)}.")
        return cls(**value)

    def initial(self) -> int:
        return self.initial_replicas if self.initial_replicas is not None else self.min_replicas


#: ``num_replicas="auto"``: autoscaling with these defaults (as in Ray).
AUTO_DEFAULTS = {"min_replicas": 1, "max_replicas": 100, "target_ongoing_requests": 2.0,
                 "upscale_delay_s": 30.0, "downscale_delay_s": 600.0}


@dataclasses.dataclass
class HTTPOptions:
    """Where the HTTP proxy listens and the limits it applies to every request."""

    host: str = "127.0.0.1"
    port: int = 8000
    root_path: str = ""
    request_timeout_s: float | None = None
    #: Larger bodies are refused with 413 before any replica sees them.
    max_request_body_bytes: int = 64 * 1024 * 1024
    #: A client that takes longer to send its body gets 408.
    body_timeout_s: float = 30.0
    keep_alive_timeout_s: int = 5

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port < 65536:
            raise ValueError(f"http_options.port must be an integer port number, got {self.port!r}.")
        _positive("http_options.max_request_body_bytes", self.max_request_body_bytes)
        _positive("http_options.body_timeout_s", self.body_timeout_s)
        if self.request_timeout_s is not None:
            _positive("http_options.request_timeout_s", self.request_timeout_s)

    @classmethod
    def from_value(cls, value: HTTPOptions | dict | None) -> HTTPOptions:
        if value is None:
            return cls()
        if isinstance(value, HTTPOptions):
            return value
        if not isinstance(value, dict):
            raise TypeError(f"http_options must be a dict or HTTPOptions, got {type(value).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(value) - known - {"location", "middlewares"}
        if unknown:
            raise ValueError(f"Unknown http_options fields: {sorted(unknown)}.")
        return cls(**{k: v for k, v in value.items() if k in known})


@dataclasses.dataclass
class DeploymentConfig:
    """Everything about a deployment other than its code and constructor arguments."""

    num_replicas: int | None = 1
    max_ongoing_requests: int = DEFAULT_MAX_ONGOING_REQUESTS
    max_queued_requests: int = -1
    user_config: Any = None
    autoscaling_config: AutoscalingConfig | None = None
    graceful_shutdown_wait_loop_s: float = 2.0
    graceful_shutdown_timeout_s: float = 20.0
    health_check_period_s: float = 10.0
    health_check_timeout_s: float = 30.0
    ray_actor_options: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> DeploymentConfig:
        if self.num_replicas == "auto":
            given = self.autoscaling_config
            extra = dataclasses.asdict(given) if isinstance(given, AutoscalingConfig) else dict(given or {})
            self.autoscaling_config = AutoscalingConfig(**{**AUTO_DEFAULTS, **extra})
            self.num_replicas = None
        self.autoscaling_config = AutoscalingConfig.from_value(self.autoscaling_config)
        if self.autoscaling_config is not None:
            self.num_replicas = None
        elif isinstance(self.num_replicas, bool) or not isinstance(self.num_replicas, int) or self.num_replicas < 0:
            raise ValueError(f"num_replicas must be a non-negative integer or 'auto', got {self.num_replicas!r}.")
        if isinstance(self.max_ongoing_requests, bool) or not isinstance(self.max_ongoing_requests, int) \
                or self.max_ongoing_requests < 1:
            raise ValueError(f"max_ongoing_requests must be an integer >= 1, got {self.max_ongoing_requests!r}.")
        if isinstance(self.max_queued_requests, bool) or not isinstance(self.max_queued_requests, int) \
                or self.max_queued_requests < -1:
            raise ValueError(f"max_queued_requests must be -1 (no limit) or >= 0, got {self.max_queued_requests!r}.")
        for name in ("graceful_shutdown_wait_loop_s", "graceful_shutdown_timeout_s",
                     "health_check_period_s", "health_check_timeout_s"):
            _positive(name, getattr(self, name), allow_zero=name.startswith("graceful"))
        if not isinstance(self.ray_actor_options, dict):
            raise TypeError("ray_actor_options must be a dict.")
        from solray._private import options as core_options

        core_options.validate(dict(self.ray_actor_options), "actor")
        return self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["autoscaling_config"] = dataclasses.asdict(self.autoscaling_config) if self.autoscaling_config else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DeploymentConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Unknown deployment options: {sorted(unknown)}.")
        return cls(**d).validate()
