"""Just enough of Kubernetes' protobuf encoding to read the Secrets helm stores its releases
in (client-go sends built-in types as protobuf; the emulator answers in JSON, which it reads)."""

from __future__ import annotations

import base64


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def _map_entry(buf: bytes) -> tuple[str, bytes]:
    entry = dict(_fields(buf))
    return entry.get(1, b"").decode(), entry.get(2, b"")


def _object_meta(buf: bytes) -> dict:
    md: dict = {}
    for number, value in _fields(buf):
        if number in (1, 2, 3):
            md[{1: "name", 2: "generateName", 3: "namespace"}[number]] = value.decode()
        elif number in (11, 12):
            k, v = _map_entry(value)
            md.setdefault("labels" if number == 11 else "annotations", {})[k] = v.decode()
    return md


def decode_secret(body: bytes) -> dict:
    """A protobuf-encoded v1 Secret (``k8s\\0`` + runtime.Unknown) as its JSON form."""
    if not body.startswith(b"k8s\x00"):
        raise ValueError("not a Kubernetes protobuf object")
    unknown = dict(_fields(body[4:]))
    type_meta = dict(_fields(unknown.get(1, b"")))
    kind = type_meta.get(2, b"").decode()
    if kind != "Secret":
        raise ValueError(f"the emulator reads protobuf Secrets only, not {kind!r}")
    secret: dict = {"apiVersion": "v1", "kind": "Secret", "metadata": {}, "data": {}}
    for number, value in _fields(unknown[2]):
        if number == 1:
            secret["metadata"] = _object_meta(value)
        elif number == 2:
            k, v = _map_entry(value)
            secret["data"][k] = base64.b64encode(v).decode()
        elif number == 3:
            secret["type"] = value.decode()
    return secret
