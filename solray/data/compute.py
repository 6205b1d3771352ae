"""Compute strategies: run a transform as stateless tasks or on a pool of actors."""

from __future__ import annotations


class ComputeStrategy:
    pass


class TaskPoolStrategy(ComputeStrategy):
    """Run the transform as tasks; ``size`` caps how many run at once."""

    def __init__(self, size: int | None = None):
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f"TaskPoolStrategy size must be a positive int, got {size!r}")
        self.size = size

    def __eq__(self, other) -> bool:
        return isinstance(other, TaskPoolStrategy) and other.size == self.size

    def __repr__(self) -> str:
        return f"TaskPoolStrategy(size={self.size})"


class ActorPoolStrategy(ComputeStrategy):
    """Run the transform on an autoscaling pool of ``min_size``..``max_size`` actors."""

    def __init__(
        self,
        *,
        size: int | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        initial_size: int | None = None,
        max_tasks_in_flight_per_actor: int | None = None,
        max_concurrent_calls_per_actor: int | None = None,
        enable_true_multi_threading: bool | None = None,
    ):
        if size is not None:
            if min_size is not None or max_size is not None:
                raise ValueError("min_size and max_size cannot be set at the same time as size")
            if not isinstance(size, int) or size < 1:
                raise ValueError(f"size must be an int >= 1, got {size!r}")
            min_size = max_size = size
        min_size = 1 if min_size is None else min_size
        if not isinstance(min_size, int) or min_size < 1:
            raise ValueError(f"min_size must be an int >= 1, got {min_size!r}")
        if max_size is not None:
            if not isinstance(max_size, int) or max_size < min_size:
                raise ValueError(f"max_size must be an int >= min_size ({min_size}), got {max_size!r}")
        if max_tasks_in_flight_per_actor is not None and max_tasks_in_flight_per_actor < 1:
            raise ValueError("max_tasks_in_flight_per_actor must be >= 1")
        self.min_size = min_size
        self.max_size = max_size
        self.initial_size = initial_size if initial_size is not None else min_size
        self.max_tasks_in_flight_per_actor = max_tasks_in_flight_per_actor
        self.max_concurrent_calls_per_actor = max_concurrent_calls_per_actor

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, ActorPoolStrategy)
            and (self.min_size, self.max_size, self.max_tasks_in_flight_per_actor)
            == (other.min_size, other.max_size, other.max_tasks_in_flight_per_actor)
        )

    def __repr__(self) -> str:
        return f"ActorPoolStrategy(min_size={self.min_size}, max_size={self.max_size})"
