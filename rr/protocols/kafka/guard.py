"""Bounds check of a Kafka entity before kio's native reader sees it.

kio 0.6.5's native reader reserves memory for an array's declared length before reading its
items: a corrupt or hostile frame declaring ~2^31 items makes the allocation fail, and a failed
allocation in native code aborts the whole process (no Python exception). This walk follows
the same schema (kio's own field introspection) reading only lengths, and refuses any array,
string or byte field that claims more than the bytes left in the frame. It allocates nothing.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
    is_optional,
)

_FIXED = {
    "int8": 1,
    "bool": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "float64": 8,
    "uuid": 16,
}


class BoundsError(ValueError):
    """A declared length that cannot fit in the frame."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Step:
    name: str
    kind: str  # kafka_type of a primitive, or "entity"
    array: bool
    optional: bool
    entity: Any = None  # nested entity class


def check(cls: type[Any], buf: bytes | memoryview, offset: int) -> int:
    """Walk `cls` at `offset`; raise BoundsError on any length that overruns `buf`.

    Returns the offset after the entity (the same as kio's reader, which the tests check)."""
    return _walk(cls, memoryview(buf), offset, len(buf))


@cache
def _plan(cls: type[Any]) -> tuple[tuple[_Step, ...], dict[int, _Step]]:
    regular, tagged = [], {}
    header = cls.__name__ == "RequestHeader"
    for f in dataclasses.fields(cls):
        tag = get_field_tag(f)
        klass = classify_field(f)
        optional = False if tag is not None else is_optional(f)
        if isinstance(klass, EntityField | EntityTupleField):
            step = _Step(f.name, "entity", klass.is_array, optional, klass.type_)
        else:
            assert isinstance(klass, PrimitiveField | PrimitiveTupleField)
            kind = get_schema_field_type(f)
            if header and f.name == "client_id":
                kind = "legacy_string"  # Kafka keeps the header's client id non-compact
            step = _Step(f.name, kind, klass.is_array, optional)
        if tag is None:
            regular.append(step)
        else:
            tagged[int(tag)] = step
    return tuple(regular), tagged


def _walk(cls: type[Any], buf: memoryview, pos: int, end: int) -> int:
    flexible = bool(cls.__flexible__)
    regular, tagged = _plan(cls)
    for step in regular:
        pos = _field(step, flexible, buf, pos, end)
    if flexible:
        count, pos = _uvarint(buf, pos, end)
        for _ in range(count):
            tag, pos = _uvarint(buf, pos, end)
            size, pos = _uvarint(buf, pos, end)
            stop = _need(pos, size, end, "tagged field")
            if tag in tagged:
                _field(tagged[tag], flexible, buf, pos, stop)
            pos = stop
    return pos


def _field(step: _Step, flexible: bool, buf: memoryview, pos: int, end: int) -> int:
    if step.array:
        if flexible:
            n, pos = _uvarint(buf, pos, end)
            n -= 1  # compact arrays store length + 1; 0 is null
        else:
            n, pos = _int(buf, pos, end, 4)
        if n > end - pos:
            raise BoundsError(f"{step.name}: array of {n} items in {end - pos} bytes")
        for _ in range(max(n, 0)):
            pos = _one(step, flexible, buf, pos, end, nullable=False)
        return pos
    return _one(step, flexible, buf, pos, end, nullable=step.optional)


def _one(step: _Step, flexible: bool, buf: memoryview, pos: int, end: int, nullable: bool) -> int:
    kind = step.kind
    if kind == "entity":
        if nullable:  # KIP-893 nullable struct: int8 marker, -1 for null
            marker, pos = _int(buf, pos, end, 1)
            if marker < 0:
                return pos
        return _walk(step.entity, buf, pos, end)
    if kind in _FIXED:
        return _need(pos, _FIXED[kind], end, step.name)
    if kind == "legacy_string" or (kind == "string" and not flexible):
        n, pos = _int(buf, pos, end, 2)
    elif not flexible:  # bytes, records
        n, pos = _int(buf, pos, end, 4)
    else:
        n, pos = _uvarint(buf, pos, end)
        n -= 1
    return _need(pos, max(n, 0), end, step.name)


def _need(pos: int, n: int, end: int, what: str) -> int:
    if pos + n > end:
        raise BoundsError(f"{what}: needs {n} bytes at {pos}, only {end - pos} left")
    return pos + n


def _int(buf: memoryview, pos: int, end: int, size: int) -> tuple[int, int]:
    stop = _need(pos, size, end, "integer")
    return int.from_bytes(buf[pos:stop], "big", signed=True), stop


def _uvarint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise BoundsError("varint runs past the frame")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise BoundsError("varint longer than 5 bytes")
