"""Kafka responses the recording never held, built on kio's classes for the client's version:
Heartbeat answers, Produce/Fetch answers from the log model, error answers for misses.

`blank(cls, **fields)` fills every field the caller does not give with its zero value (kio's own
default where it has one), so one builder serves every API and version kio knows.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import types
import typing
import uuid
from typing import Any

from kio.schema.errors import ErrorCode
from kio.schema.index import api_key_map, schema_name_map
from kio.static.primitive import i16

from .apis import api_name
from .fields import has_field
from .rewrite import parseable_range

__all__ = [
    "blank",
    "has_field",
    "item_cls",
    "known_versions",
    "kio_ranges",
    "unsupported_api_versions",
    "with_errors",
    "zero",
]

_EPOCH = datetime.datetime.fromtimestamp(0, datetime.UTC)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def zero(tp: Any) -> Any:
    """The zero value of a kio field type."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if type(None) in args:
            return None
        return zero(args[0])
    if origin is tuple:
        return ()
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return blank(tp)
    if tp is ErrorCode:
        return ErrorCode.none
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return next(iter(tp))
    name = getattr(tp, "__name__", "")
    if "Timedelta" in name:
        return datetime.timedelta(0)
    if name in ("TZAware", "TZAwareMicros"):
        return _EPOCH
    if tp is bool:
        return False
    if tp is uuid.UUID:
        return uuid.UUID(int=0)
    if tp is bytes or name == "Records":
        return b""
    if tp is str or _is_str(tp):
        return tp("") if tp is not str else ""
    try:
        return tp(0)
    except Exception:
        return 0


def _is_str(tp: Any) -> bool:
    bound = getattr(tp, "__bound__", None)
    return bound is str or (isinstance(tp, type) and issubclass(tp, str))


def blank(cls: type, **fields: Any) -> Any:
    """An instance of kio entity `cls` with `fields` set and everything else zero/default.

    A name in `fields` that `cls`'s version does not have is left out: callers give what they
    know (e.g. a log start offset) and each version takes the fields it has."""
    values: dict[str, Any] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in fields:
            values[f.name] = fields[f.name]
        elif f.default is not dataclasses.MISSING:
            continue
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            continue
        else:
            values[f.name] = zero(hints[f.name])
    return cls(**values)


def item_cls(cls: type, name: str) -> type:
    """The entity class of the items of tuple field `name` (or of the optional field)."""
    tp = _hints(cls)[name]
    for arg in (tp, *typing.get_args(tp)):
        if dataclasses.is_dataclass(arg) and isinstance(arg, type):
            return arg
        for inner in typing.get_args(arg):
            if dataclasses.is_dataclass(inner) and isinstance(inner, type):
                return inner
    raise TypeError(f"{cls.__name__}.{name} holds no entity")


def with_errors(entity: Any, code: ErrorCode) -> Any:
    """`entity` with every error_code field (at any depth) set to `code`."""
    if not dataclasses.is_dataclass(entity):
        return entity
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(entity):
        value = getattr(entity, f.name)
        if f.name == "error_code":
            changes[f.name] = code
        elif isinstance(value, tuple):
            changes[f.name] = tuple(with_errors(v, code) for v in value)
        elif dataclasses.is_dataclass(value):
            changes[f.name] = with_errors(value, code)
    return dataclasses.replace(entity, **changes)


@functools.cache
def kio_ranges() -> dict[int, tuple[int, int]]:
    """api key -> the highest contiguous (min, max) range kio parses both ways."""
    out = {}
    for key, name in api_key_map.items():
        versions = sorted(schema_name_map.get(name, {}))
        if versions:
            parsed = parseable_range(key, versions[0], versions[-1])
            if parsed is not None:
                out[key] = parsed
    return out


def known_versions(api_key: int) -> str:
    """What the codec reads of an API, for a miss: `the codec reads Fetch v4-v18`."""
    rng = kio_ranges().get(api_key)
    name = api_name(api_key)
    if rng is None:
        return f"the codec knows no API with key {api_key}"
    return f"the codec reads {name} v{rng[0]}-v{rng[1]}"


def unsupported_api_versions(ranges: dict[int, tuple[int, int]]) -> Any:
    """What a broker answers an ApiVersions request of a version it does not support: the v0
    layout, UNSUPPORTED_VERSION, and every API's range (Kafka's own answer, KIP-511), here
    the ranges the recorded broker offered, or those the codec reads if none was recorded."""
    from kio.schema.api_versions.v0.response import ApiVersion, ApiVersionsResponse

    offered = ranges or kio_ranges()
    entries = tuple(
        ApiVersion(api_key=i16(k), min_version=i16(lo), max_version=i16(hi))
        for k, (lo, hi) in sorted(offered.items())
    )
    return ApiVersionsResponse(error_code=ErrorCode.unsupported_version, api_keys=entries)
