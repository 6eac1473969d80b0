"""Kafka requests and responses of any API version, built from kio's schemas with sample values.

`sample(cls, hints)` fills every field of a kio entity class (nested entities, arrays of one
item, optional and tagged fields included) with a non-zero value of its type; `hints` gives
the values that decide behaviour (a topic, a partition's records, a broker address, ...) by
field name. Nothing here names a version: the version-matrix test asks kio which exist.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import io
import types
import typing
import uuid
from collections.abc import Mapping
from typing import Any

from kio.records.schema import NewRecordBatch, Record, RecordHeader
from kio.records.writers import write_batch
from kio.schema.errors import ErrorCode
from kio.static.primitive import TZAwareMicros, i8, i16, i32, i64

T0 = datetime.datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=datetime.UTC)

#: A value for a field, by name: a constant, or a function of the entity class being built.
Hints = Mapping[str, Any]


def record_batch(base_offset: int, values: list[bytes], key: bytes = b"k") -> bytes:
    """A v2 record batch (magic 2, CRC-32C by kio) of records `key` / each value, one header."""
    ts = TZAwareMicros.parse(T0)
    recs = tuple(
        Record(
            attributes=i8(0),
            timestamp=ts,
            offset=i64(n),
            key=key,
            value=value,
            headers=(RecordHeader(key=b"h", value=b"v"),),
        )
        for n, value in enumerate(values)
    )
    out = io.BytesIO()
    write_batch(
        out,
        NewRecordBatch(
            producer_id=i64(-1),
            producer_epoch=i16(-1),
            base_sequence=i32(-1),
            attributes=i16(0),
            records=recs,
        ),
    )
    raw = bytearray(out.getvalue())
    raw[0:8] = base_offset.to_bytes(8, "big", signed=True)  # base offset is outside the CRC
    return bytes(raw)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def sample(cls: type, hints: Hints) -> Any:
    """An instance of kio entity `cls`, every field given a sample value: the hint of its name
    where that fits the field's type (a topic `name` is not a mechanism enum), else one made
    from the type."""
    values = {}
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        hint = hints.get(f.name, _NO_HINT)
        if callable(hint) and not isinstance(hint, type):
            hint = hint(cls)
        fitted = _fit(tp, hint)
        values[f.name] = _value(tp, hints) if fitted is _NO_HINT else fitted
    return cls(**values)


_NO_HINT = object()


def _fit(tp: Any, value: Any) -> Any:
    """`value` as field type `tp` (e.g. an int as i16), or _NO_HINT if it is not of that kind."""
    if value is _NO_HINT:
        return value
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        if value is None:
            return None
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is tuple:
        return value if isinstance(value, tuple) else _NO_HINT
    if not isinstance(tp, type):
        return _NO_HINT
    if issubclass(tp, enum.Enum):
        return value if isinstance(value, tp) else _NO_HINT
    if issubclass(tp, bool):
        return value if isinstance(value, bool) else _NO_HINT
    for kind in (str, bytes, int, uuid.UUID):
        if issubclass(tp, kind):
            if not isinstance(value, kind) or isinstance(value, bool | enum.Enum):
                return _NO_HINT
            return value if tp is kind else tp(value)
    return _NO_HINT


def _value(tp: Any, hints: Hints) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _value(args[0], hints)
    if origin is tuple:
        return (_value(typing.get_args(tp)[0], hints),)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return sample(tp, hints)
    if tp is ErrorCode:
        return ErrorCode.none
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return list(tp)[-1]
    name = getattr(tp, "__name__", "")
    if "Timedelta" in name:
        return tp.parse(datetime.timedelta(milliseconds=250))
    if name in ("TZAware", "TZAwareMicros"):
        return tp.parse(T0.replace(microsecond=0))
    if tp is bool:
        return True
    if tp is uuid.UUID:
        return uuid.UUID(int=0x5A5A)
    if name == "Records":
        return tp(b"")
    if tp is bytes:
        return b"sample-bytes"
    if tp is str or (isinstance(tp, type) and issubclass(tp, str)):
        return tp("sample")
    if isinstance(tp, type) and issubclass(tp, float):
        return tp(1.5)
    return tp(1)
