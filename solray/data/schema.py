"""``Schema``: a dataset's column names and types (wraps a ``pyarrow.Schema``)."""

from __future__ import annotations

import pyarrow as pa


class Schema:
    def __init__(self, base_schema: pa.Schema):
        self.base_schema = base_schema

    @property
    def names(self) -> list[str]:
        return list(self.base_schema.names)

    @property
    def types(self) -> list:
        return [f.type for f in self.base_schema]

    def __eq__(self, other) -> bool:
        if isinstance(other, Schema):
            return self.base_schema == other.base_schema
        if isinstance(other, pa.Schema):
            return self.base_schema == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self.names))

    def __len__(self) -> int:
        return len(self.base_schema)

    def __iter__(self):
        return iter(self.base_schema)

    def field(self, name):
        return self.base_schema.field(name)

    def __str__(self) -> str:
        names = self.names or []
        types = [_type_str(t) for t in self.types]
        w1 = max([len("Column")] + [len(n) for n in names])
        w2 = max([len("Type")] + [len(t) for t in types])
        lines = [f"{'Column':<{w1}}  Type", f"{'-' * len('Column'):<{w1}}  {'-' * len('Type')}"]
        for n, t in zip(names, types, strict=True):
            lines.append(f"{n:<{w1}}  {t}".rstrip())
        del w2
        return "\n".join(lines)

    __repr__ = __str__


def _type_str(t: pa.DataType) -> str:
    if isinstance(t, pa.FixedShapeTensorType):
        return f"ArrowTensorType(shape={tuple(t.shape)}, dtype={t.value_type})"
    if getattr(t, "extension_name", None) == "solray.data.python_object":
        return "ArrowPythonObjectType"
    return str(t)
