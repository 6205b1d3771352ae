"""User metrics (Ray's ``ray.util.metrics``): ``Counter``, ``Gauge`` and ``Histogram``.

Record from any process of a cluster (driver, task, actor); values reach the control
service in batches and the dashboard serves them at ``/metrics`` in Prometheus' text
format, as ``ray_<name>`` (counters ``ray_<name>_total``), summed over processes for
counters and histograms, the newest value for gauges.

    from solray.util.metrics import Counter
    requests = Counter("requests", description="Requests served", tag_keys=("route",))
    requests.set_default_tags({"route": "/"})
    requests.inc()
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from solray._private.metrics_recorder import RECORDER

_VALID_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class Metric:
    """Base of the metric types: a name, a description, tag keys and default tags."""

    _kind = ""

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None):
        if not isinstance(name, str) or len(name) == 0:
            raise ValueError("Empty name is not allowed. Please provide a metric name.")
        self._discard = not _VALID_NAME.match(name)
        if self._discard:
            warnings.warn(
                f"Invalid metric name: {name}. Metric will be discarded and data will not be collected "
                "or published. Metric names can only contain letters, numbers, _, and :. Metric names "
                "cannot start with numbers.",
                UserWarning,
                stacklevel=3,
            )
        self._name = name
        self._description = description
        self._default_tags: dict[str, str] = {}
        self._tag_keys = tag_keys or tuple()
        if not isinstance(self._tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(self._tag_keys)}")
        for key in self._tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")

    def _define(self, boundaries: list[float] | None = None) -> None:
        if not self._discard:
            RECORDER.define(self._name, self._kind, self._description, boundaries)

    def set_default_tags(self, default_tags: dict[str, str]) -> Metric:
        """Tags used by every record call (its own ``tags`` win). Returns the metric itself."""
        for key, val in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key}.")
            if not isinstance(val, str):
                raise TypeError(f"Tag values must be str, got {type(val)}.")
        self._default_tags = dict(default_tags)
        return self

    def _final_tags(self, tags: dict[str, str] | None) -> dict[str, str]:
        if not tags:
            final = self._default_tags
        else:
            for val in tags.values():
                if not isinstance(val, str):
                    raise TypeError(f"Tag values must be str, got {type(val)}.")
            final = {**self._default_tags, **tags}
        missing = [k for k in self._tag_keys if k not in final]
        if missing:
            raise ValueError(f"Missing value for tag key(s): {','.join(missing)}.")
        return final

    def _record(self, value: float, tags: dict[str, str] | None) -> None:
        final = self._final_tags(tags)
        if not self._discard:
            RECORDER.record(self._name, self._kind, final, float(value))

    @property
    def info(self) -> dict[str, Any]:
        return {
            "name": self._name,
            "description": self._description,
            "tag_keys": self._tag_keys,
            "default_tags": self._default_tags,
        }


def _check_number(value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"value must be int or float, got {type(value)}.")


class Counter(Metric):
    """A value that only goes up (Prometheus counter, exported as ``ray_<name>_total``)."""

    _kind = "counter"

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None):
        super().__init__(name, description, tag_keys)
        self._define()

    def __reduce__(self):
        return self.__class__, (self._name, self._description, self._tag_keys)

    def inc(self, value: int | float = 1.0, tags: dict[str, str] | None = None) -> None:
        _check_number(value)
        if value <= 0:
            raise ValueError(f"value must be >0, got {value}")
        self._record(value, tags)


class Gauge(Metric):
    """The last value set (Prometheus gauge)."""

    _kind = "gauge"

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None):
        super().__init__(name, description, tag_keys)
        self._define()

    def __reduce__(self):
        return self.__class__, (self._name, self._description, self._tag_keys)

    def set(self, value: int | float | None, tags: dict[str, str] | None = None) -> None:
        if value is None:
            return
        _check_number(value)
        self._record(value, tags)


class Histogram(Metric):
    """Counts of observed values per bucket, plus their sum and count (Prometheus histogram)."""

    _kind = "histogram"

    def __init__(
        self,
        name: str,
        description: str = "",
        boundaries: list[float] | None = None,
        tag_keys: tuple[str, ...] | None = None,
    ):
        super().__init__(name, description, tag_keys)
        if boundaries is None or len(boundaries) == 0:
            raise ValueError(
                "boundaries argument should be provided when using the Histogram class. e.g., "
                'Histogram("name", boundaries=[1.0, 2.0])'
            )
        for i, boundary in enumerate(boundaries):
            if boundary <= 0:
                raise ValueError(
                    f"Invalid `boundaries` argument at index {i}, {boundaries}. Use positive values for the arguments."
                )
        self.boundaries = sorted(float(b) for b in boundaries)
        self._define(self.boundaries)

    def __reduce__(self):
        return Histogram, (self._name, self._description, self.boundaries, self._tag_keys)

    def observe(self, value: int | float, tags: dict[str, str] | None = None) -> None:
        _check_number(value)
        self._record(value, tags)

    @property
    def info(self) -> dict[str, Any]:
        return {**super().info, "boundaries": self.boundaries}


__all__ = ["Counter", "Gauge", "Histogram"]
