"""Tunable constants of the runtime, each overridable by an environment variable."""

from __future__ import annotations

import os


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


# Values up to this size travel inside messages and live in the owner's memory (Ray: 100 KiB).
INLINE_OBJECT_MAX_BYTES = _env_int("SOLRAY_INLINE_OBJECT_MAX_BYTES", 100 * 1024)
# How long an owner keeps an idle worker lease before giving it back to the daemon: long
# enough that a loop of submit-then-get reuses it, short enough not to starve others.
LEASE_LINGER_S = _env_float("SOLRAY_LEASE_LINGER_S", 0.02)
# Outstanding lease requests per scheduling key (Ray caps this at 10 too).
MAX_PENDING_LEASE_REQUESTS = _env_int("SOLRAY_MAX_PENDING_LEASE_REQUESTS", 10)
# Idle workers above the per-job soft limit exit after this long.
IDLE_WORKER_TIMEOUT_S = _env_float("SOLRAY_IDLE_WORKER_TIMEOUT_S", 30.0)
# Default fraction of system memory for the shared-memory object store (Ray: 30%).
OBJECT_STORE_MEMORY_FRACTION = 0.3
DEFAULT_CONTROL_PORT = 6379
DEFAULT_DASHBOARD_PORT = 8265
# How often a node daemon reports its free resources to the control service.
HEARTBEAT_INTERVAL_S = _env_float("SOLRAY_HEARTBEAT_INTERVAL_S", 0.1)
# A node that sends no heartbeat for this long is declared dead.
NODE_DEATH_TIMEOUT_S = _env_float("SOLRAY_NODE_DEATH_TIMEOUT_S", 5.0)
# How long nodes and workers keep trying to reach a restarted head before giving up.
CONTROL_RECONNECT_TIMEOUT_S = _env_float("SOLRAY_CONTROL_RECONNECT_TIMEOUT_S", 60.0)
# Memory monitor: above this fraction of node memory in use, the newest task is killed.
MEMORY_USAGE_THRESHOLD = _env_float("SOLRAY_MEMORY_USAGE_THRESHOLD", 0.95)
MEMORY_MONITOR_INTERVAL_S = _env_float("SOLRAY_MEMORY_MONITOR_INTERVAL_S", 0.25)
# Freed objects at least this large are kept for reuse, up to this fraction of the store.
RECYCLE_MIN_BYTES = _env_int("SOLRAY_RECYCLE_MIN_BYTES", 16 * 1024 * 1024)
RECYCLE_POOL_FRACTION = _env_float("SOLRAY_RECYCLE_POOL_FRACTION", 0.25)
