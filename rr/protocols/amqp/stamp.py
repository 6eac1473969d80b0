"""AMQP server frames with bound values stamped in: recorded client-chosen values (a reply queue
named by a UUID, a correlation id, a consumer tag) replaced by the live ones in method
arguments, content properties (headers too) and bodies. A body whose length changes gets its
content header's `body_size` set to match. Pure: recorded bytes and a `Bindings` in, bytes out.

The common frames are spliced, not re-marshalled: a Basic.Deliver's consumer tag (the only
bound value in most deliveries) is replaced where it stands, a content header is touched only
when it mentions a bound value or its body changed size (then its `body_size` field alone), so
a delivery costs a few byte slices. Anything else that mentions a bound value goes through
pamqp (unmarshal, stamp every string field, marshal)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pamqp.frame

from rrlab.rr.replay.bindings import Bindings

METHOD, HEADER, BODY = 1, 2, 3
FRAME_END = b"\xce"
#: class and method ids of Basic.Deliver (60, 60), the first bytes of its method payload
DELIVER = b"\x00\x3c\x00\x3c"
#: a method payload starts at byte 7 (type, channel, size) with class and method ids (4 bytes)
ARGS_AT = 11
#: a content header's body size: a long long after class id and weight
BODY_SIZE = slice(11, 19)


def stamp_frames(raws: Iterable[bytes], bindings: Bindings) -> list[bytes]:
    """The frames in order, each carrying live values where it carried bound recorded ones."""
    out: list[bytes] = []
    header_at: int | None = None  # the content header whose body follows
    for raw in raws:
        kind = raw[0] if raw else 0
        if kind == BODY and header_at is not None:
            body = raw[7:-1]
            new = bindings.bytes_to_live(body)
            if new != body:
                out[header_at] = _resized(out[header_at], len(new) - len(body))
                raw = raw[:3] + len(new).to_bytes(4, "big") + new + FRAME_END
            out.append(raw)
            continue
        header_at = None
        if kind == METHOD and bindings.mentions_recorded(raw):
            raw = _stamped_deliver(raw, bindings) or _stamped(raw, bindings)
        elif kind == HEADER:
            if bindings.mentions_recorded(raw):
                raw = _stamped(raw, bindings)
            header_at = len(out)
        out.append(raw)
    return out


def _stamped_deliver(raw: bytes, bindings: Bindings) -> bytes | None:
    """A Basic.Deliver whose consumer tag is the only bound value in it, with the live tag
    spliced in; None for any other frame (the general path stamps it)."""
    if raw[7:ARGS_AT] != DELIVER or len(raw) <= ARGS_AT:
        return None
    end = ARGS_AT + 1 + raw[ARGS_AT]
    tag, rest = raw[ARGS_AT + 1 : end], raw[end:-1]
    if bindings.mentions_recorded(rest):
        return None
    live = bindings.bytes_to_live(tag)
    if len(live) > 255:  # no longer a short string: pamqp says so
        return None
    payload = b"".join((DELIVER, bytes((len(live),)), live, rest))
    return raw[:3] + len(payload).to_bytes(4, "big") + payload + FRAME_END


def _resized(header: bytes, delta: int) -> bytes:
    """A content header frame with its body size moved by `delta`."""
    size = int.from_bytes(header[BODY_SIZE], "big") + delta
    return header[: BODY_SIZE.start] + size.to_bytes(8, "big") + header[BODY_SIZE.stop :]


def _stamped(raw: bytes, bindings: Bindings) -> bytes:
    """A method or content header frame re-marshalled with its string fields stamped."""
    _n, channel, frame = pamqp.frame.unmarshal(raw)
    target = getattr(frame, "properties", frame)
    return pamqp.frame.marshal(frame, channel) if _stamp_fields(target, bindings) else raw


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
