"""Kafka fields that only some versions of an API have, each read in one place.

kio generates one class per API version, and a field appears (or is renamed) at the version that
added it: Fetch partitions carry `log_start_offset` from v5 on, Produce answers from v5 on,
Produce/Fetch/OffsetCommit name topics by id from v13/v13/v10 on, Metadata topics carry ids
from v10 on. Code that reads one of these through attribute access works for the versions its
author's client happened to send and fails for the rest (an AttributeError in the fake broker
for a client that speaks Fetch v4). So each concept has one accessor here, saying what it
returns when the version does not have the field, and the replayer and proxy read through them.

Fields every version kio knows has (Fetch `fetch_offset`, Produce `acks`, ...) are read
directly; tests/unit/test_kafka_version_matrix.py runs every version and finds any that is not.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

#: Kafka's own "unknown" for an offset (log start, last stable) a version does not report.
UNKNOWN_OFFSET = -1


def _int_or(entity: Any, name: str, default: int) -> int:
    value = getattr(entity, name, None)
    return default if value is None else int(value)


def log_start_offset(partition: Any) -> int:
    """Log start offset of a Fetch response partition or Produce answer partition (v5+), or
    UNKNOWN_OFFSET where the version has none."""
    return _int_or(partition, "log_start_offset", UNKNOWN_OFFSET)


def last_stable_offset(partition: Any) -> int:
    """Last stable offset of a Fetch response partition (v4+), or UNKNOWN_OFFSET."""
    return _int_or(partition, "last_stable_offset", UNKNOWN_OFFSET)


def high_watermark(partition: Any) -> int:
    """High watermark of a Fetch response partition (every version; 0 if absent)."""
    return _int_or(partition, "high_watermark", 0)


def topic_name(topic: Any, names: dict[str, str]) -> str:
    """A request or response topic entity's name: its `name`/`topic` field, or for versions that
    name topics by id (Produce/Fetch v13+, OffsetCommit v10+) the name `names` knows for the id
    (learnt from Metadata), else the id itself."""
    for attr in ("name", "topic"):
        value = getattr(topic, attr, None)
        if value:
            return str(value)
    topic_id = getattr(topic, "topic_id", None)
    return names.get(str(topic_id), str(topic_id))


def topic_id(topic: Any) -> str | None:
    """A topic entity's id (Metadata v10+, Produce/Fetch v13+), or None where it has none."""
    value = getattr(topic, "topic_id", None)
    return None if value is None else str(value)


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def has_field(cls: type, name: str) -> bool:
    """Whether kio entity class `cls` (one API version) has field `name`."""
    return name in _field_names(cls)


def topic_ident(topic_cls: type, request_topic: Any) -> dict[str, Any]:
    """The fields a response topic entry names its topic by, echoing the request's topic: its id
    where `topic_cls`'s version names topics by id, else its name (`name` or `topic`)."""
    if has_field(topic_cls, "topic_id"):
        return {"topic_id": request_topic.topic_id}
    field = "topic" if has_field(topic_cls, "topic") else "name"
    value = getattr(request_topic, "name", None) or getattr(request_topic, "topic", None)
    return {field: value}


def max_wait_seconds(request: Any) -> float:
    """How long a Fetch request lets the broker wait (seconds; 0 if the version has no wait)."""
    value = getattr(request, "max_wait", None)
    if value is None:
        value = getattr(request, "max_wait_ms", 0)
    total = getattr(value, "total_seconds", None)
    return float(total()) if total is not None else float(value) / 1000.0


def metadata_topics(response: Any) -> tuple[Any, ...]:
    """The topic entries of a Metadata response (every version; () if none)."""
    return tuple(getattr(response, "topics", None) or ())
