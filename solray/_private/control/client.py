"""A long-lived async client of the control service for processes that are not drivers.

The dashboard (and its job manager) keep one authenticated connection to the control
service and reconnect on the next request after it drops (a restarted head comes back on
the same address), so a blip never loses more than the request in flight.
"""

from __future__ import annotations

import asyncio
from typing import Any

from solray._private.rpc.connection import Connection, connect


class ControlClient:
    def __init__(self, address: str, token: str, timeout: float = 10.0):
        self.address = address
        self._token = token
        self._timeout = timeout
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> Connection:
        async with self._lock:
            if self._conn is None or self._conn.closed:
                host, port = self.address.rsplit(":", 1)
                self._conn = await connect(host, int(port), self._token, name="control")
            return self._conn

    async def request(self, method: str, payload: Any = None) -> Any:
        for attempt in (0, 1):
            try:
                conn = await self._connection()
                return await asyncio.wait_for(conn.request(method, payload), self._timeout)
            except (ConnectionError, OSError):
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    # Key-value store helpers (namespace: str, key/value: bytes).
    async def kv_put(self, namespace: str, key: bytes, value: bytes, overwrite: bool = True) -> bool:
        return await self.request("kv_put", [namespace, key, value, overwrite])

    async def kv_get(self, namespace: str, key: bytes) -> bytes | None:
        return await self.request("kv_get", [namespace, key])

    async def kv_del(self, namespace: str, key: bytes) -> int:
        return await self.request("kv_del", [namespace, key])

    async def kv_keys(self, namespace: str, prefix: bytes) -> list[bytes]:
        return await self.request("kv_keys", [namespace, prefix])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
