"""AMQP server frames with bound values stamped in: recorded client-chosen values (a reply queue
named by a UUID, a correlation id, a consumer tag) replaced by the live ones in method
arguments, content properties (headers too) and bodies. A body whose length changes gets its
content header's `body_size` set to match. Pure: recorded bytes and a `Bindings` in, bytes out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pamqp.frame
import pamqp.header

from rrlab.rr.replay.bindings import Bindings

METHOD, HEADER, BODY = 1, 2, 3


def stamp_frames(raws: Iterable[bytes], bindings: Bindings) -> list[bytes]:
    """The frames in order, each carrying live values where it carried bound recorded ones."""
    out: list[bytes] = []
    header_at: int | None = None  # the content header whose body follows
    header: pamqp.header.ContentHeader | None = None
    header_channel = 0
    size_delta = 0
    for raw in raws:
        kind = raw[0] if raw else 0
        if kind == BODY and header is not None:
            new = bindings.bytes_to_live(raw[7:-1])
            if new != raw[7:-1]:
                size_delta += len(new) - (len(raw) - 8)
                raw = raw[:1] + raw[1:3] + len(new).to_bytes(4, "big") + new + raw[-1:]
            out.append(raw)
            if size_delta and header_at is not None:
                header.body_size += size_delta
                size_delta = 0
                out[header_at] = pamqp.frame.marshal(header, header_channel)
            continue
        header, header_at, size_delta = None, None, 0
        if kind == METHOD and bindings.mentions_recorded(raw):
            _n, channel, method = pamqp.frame.unmarshal(raw)
            if _stamp_fields(method, bindings):
                raw = pamqp.frame.marshal(method, channel)
        elif kind == HEADER:
            _n, channel, frame = pamqp.frame.unmarshal(raw)
            if bindings.mentions_recorded(raw) and _stamp_fields(frame.properties, bindings):
                raw = pamqp.frame.marshal(frame, channel)
            header, header_at, header_channel = frame, len(out), channel
        out.append(raw)
    return out


def _stamp_fields(obj: Any, bindings: Bindings) -> bool:
    """Stamp every string (and field-table) attribute of a pamqp method or properties object;
    True if one changed."""
    changed = False
    for name in getattr(type(obj), "__slots__", ()):
        value = getattr(obj, name, None)
        if isinstance(value, str | dict | list):
            new = _stamp_value(value, bindings)
            if new != value:
                setattr(obj, name, new)
                changed = True
    return changed


def _stamp_value(value: Any, bindings: Bindings) -> Any:
    if isinstance(value, str):
        return bindings.to_live(value)
    if isinstance(value, bytes):
        return bindings.bytes_to_live(value)
    if isinstance(value, dict):
        return {k: _stamp_value(v, bindings) for k, v in value.items()}
    if isinstance(value, list):
        return [_stamp_value(v, bindings) for v in value]
    return value
