"""Bound values in Kafka requests and responses, as pure functions on kio entities.

A client id or a UUID a client chose may be inside a topic name (`reply.svc-d3565c6f`), a group
id or a member id the broker made of the client id; the replay's bindings (`rr.replay.bindings`)
say what the live value of each recorded one is. A recorded response is served with the live
values stamped in (`stamp_strings`; a live request's values are put back the same way before it
is matched): a decoded entity changed with `dataclasses.replace` and encoded again, so a value
of another length keeps the frame valid (a byte substitution would not). In a response, byte
fields are changed only where the value keeps its length (a consumer protocol's subscription
and assignment bytes carry length-prefixed topic names); record batches are
`records.restamp_batch`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


def stamp_strings(
    entity: Any,
    text: Callable[[str], str],
    data: Callable[[bytes], bytes] | None = None,
    *,
    any_length: bool = False,
) -> Any:
    """`entity` with `text` applied to every string field (nested entities and arrays too) and
    `data` to every byte field where it keeps the length (`any_length`: every byte field, for a
    match key that is never encoded); the same object when nothing changed."""
    if isinstance(entity, str):
        new = text(entity)
        return entity if new == entity else new
    if isinstance(entity, bytes):
        if data is None:
            return entity
        new_data = data(entity)
        kept = any_length or len(new_data) == len(entity)
        return new_data if kept and new_data != entity else entity
    if isinstance(entity, tuple):
        items = tuple(stamp_strings(v, text, data, any_length=any_length) for v in entity)
        return entity if all(a is b for a, b in zip(items, entity, strict=True)) else items
    if dataclasses.is_dataclass(entity) and not isinstance(entity, type):
        changes = {}
        for f in dataclasses.fields(entity):
            old = getattr(entity, f.name)
            new = stamp_strings(old, text, data, any_length=any_length)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(entity, **changes) if changes else entity
    return entity
