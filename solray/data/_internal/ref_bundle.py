"""``RefBundle``: one object-store value holding one or more blocks, plus their metadata.

Every Data task returns two objects: the blocks (a table, or a list of tables) and a small
``TaskResult`` with per-block metadata. The driver only ever fetches the small one; blocks move
between workers by reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from solray.data._internal.block import BlockMetadata


@dataclass
class RefBundle:
    ref: Any  # ObjectRef -> pa.Table | list[pa.Table]
    metas: list[BlockMetadata] = field(default_factory=list)
    # False for blocks the dataset itself holds (from_*, materialized): they exist whether or
    # not this execution runs, so they don't count against its memory budget.
    owns_blocks: bool = True

    @property
    def num_rows(self) -> int:
        return sum(m.num_rows or 0 for m in self.metas)

    @property
    def size_bytes(self) -> int:
        return sum(m.size_bytes or 0 for m in self.metas)

    @property
    def num_blocks(self) -> int:
        return len(self.metas)

    @property
    def schema(self):
        for m in self.metas:
            if m.schema is not None:
                return m.schema
        return None

    def input_files(self) -> list[str]:
        out: list[str] = []
        for m in self.metas:
            out.extend(m.input_files or [])
        return out
