"""Durable tables of the control service, in SQLite (write-through, WAL mode).

One generic table keyed by (table, key) holding msgpack values: the control service writes
each record when it changes and reads everything back when a head restarts on the same
file. Without a path the store is a no-op (the embedded cluster lives and dies with its
driver, so there is nothing to keep).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgpack


class ControlStore:
    def __init__(self, path: str | None):
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS records (tbl TEXT NOT NULL, key BLOB NOT NULL, "
                "value BLOB NOT NULL, PRIMARY KEY (tbl, key))"
            )

    def put(self, table: str, key: Any, value: Any) -> None:
        if self._db is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO records (tbl, key, value) VALUES (?, ?, ?)",
                (table, msgpack.packb(key), msgpack.packb(value, use_bin_type=True)),
            )

    def delete(self, table: str, key: Any) -> None:
        if self._db is not None:
            self._db.execute("DELETE FROM records WHERE tbl = ? AND key = ?", (table, msgpack.packb(key)))

    def load(self, table: str) -> dict:
        if self._db is None:
            return {}
        rows = self._db.execute("SELECT key, value FROM records WHERE tbl = ?", (table,)).fetchall()
        return {
            _hashable(msgpack.unpackb(k, raw=False)): msgpack.unpackb(v, raw=False, strict_map_key=False)
            for k, v in rows
        }

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key
