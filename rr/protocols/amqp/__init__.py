"""AMQP 0-9-1: protocol header + 7-byte header/0xCE framing, pamqp decoding (fast path for the
message-stream frames), redaction of Connection.StartOk/SecureOk responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rrlab.rr.cassette.format import json_string
from rrlab.rr.codecs import Proto
from rrlab.rr.protocols.base import Description, FrameRef, WireProtocol, describe_any, finish
from rrlab.rr.replay.recording import Role

from . import normalize as match_rules
from . import redact as amqp_redact
from . import roles
from . import session as replay
from .codec import AmqpDecoder, AmqpFramer, FrozenDict, delivery_tag_splicer, memo_key

_NO_PROPERTIES = {"cluster_id": ""}


def summary_cache_key(summary: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Key of the summaries that repeat with a message stream: body frames, property-less
    content headers and Basic.Publish (a publisher's every frame). Every value of the summary is
    in the key, each checked to be exactly of its type (so True never stands for 1): equal keys
    mean byte-equal encodings. None for every other summary."""
    frame = summary.get("frame")
    channel = summary.get("channel")
    if channel.__class__ is not int:
        return None
    if frame == "body":
        size = summary.get("size")
        if len(summary) == 3 and size.__class__ is int:
            return (channel, size)
        return None
    if frame == "header":
        if len(summary) == 4:
            props, body_size = summary.get("properties"), summary.get("body_size")
            if body_size.__class__ is int and props.__class__ is dict and props == _NO_PROPERTIES:
                return (channel, body_size, None)
        return None
    if frame != "method":
        return None
    args = summary.get("args")
    if len(summary) != 4 or args.__class__ is not dict or len(args) != 5:
        return None
    if summary.get("method") != "Basic.Publish":
        return None
    key = (
        channel,
        args.get("exchange"),
        args.get("routing_key"),
        args.get("ticket"),
        args.get("immediate"),
        args.get("mandatory"),
    )
    if key[1].__class__ is str and key[2].__class__ is str and key[3].__class__ is int:
        if key[4].__class__ is bool and key[5].__class__ is bool:
            return key
    return None


#: content header key (see `header_json`) -> (its JSON before the headers table's entries,
#: each header's name and JSON `"name":` in sorted order, its JSON after them); bounded
_HEADER_TEMPLATES: dict[tuple[Any, ...], tuple[str, tuple[tuple[str, str], ...], str]] = {}
_HEADER_TEMPLATES_MAX = 1024
_PLAIN = (str, int)


def header_json(summary: Mapping[str, Any]) -> bytes | None:
    """Canonical JSON of a content header's summary whose properties and headers table hold
    strings and integers alone (`summary_fast_json`): a publisher's headers mostly differ from
    message to message in a value (a sequence number, an id), which the summary cache cannot
    key. A template per channel, body size, properties (all but the headers table) and header
    names holds the JSON around the table's values, which are encoded each time; each value is
    checked to be exactly a str or an int (so True never stands for 1, and nothing else is
    written here). None for every other summary."""
    if summary.get("frame") != "header" or len(summary) != 4:
        return None
    channel, body_size = summary.get("channel"), summary.get("body_size")
    props = summary.get("properties")
    if channel.__class__ is not int or body_size.__class__ is not int:
        return None
    if props.__class__ is not dict:
        return None
    headers = props.get("headers")
    if headers is not None and headers.__class__ is not FrozenDict:
        if headers.__class__ is not dict:  # (the decoder's are frozen: shared by summaries)
            return None
    rest = [item for item in props.items() if item[1].__class__ in _PLAIN]
    if len(rest) != len(props) - (headers is not None):
        return None
    key = (channel, body_size, tuple(rest), None if headers is None else tuple(headers))
    template = _HEADER_TEMPLATES.get(key)
    if template is None:
        template = _header_template(channel, body_size, props, headers)
        if template is None:
            return None
        if len(_HEADER_TEMPLATES) >= _HEADER_TEMPLATES_MAX:
            _HEADER_TEMPLATES.clear()
        _HEADER_TEMPLATES[key] = template
    before, labels, after = template
    if headers is None:
        return before.encode("utf-8")
    table: list[str] = []
    append = table.append
    try:
        for name, label in labels:
            value = headers[name]
            if value.__class__ is str:
                append(label + json_string(value))
            elif value.__class__ is int:
                append(label + repr(value))
            else:
                return None
    except ValueError:  # an integer too long to print: summary_json says so
        return None
    return (before + ",".join(table) + after).encode("utf-8")


def _header_template(
    channel: int, body_size: int, props: Mapping[str, Any], headers: Mapping[str, Any] | None
) -> tuple[str, tuple[tuple[str, str], ...], str] | None:
    """The JSON of a content header around its headers table's entries (see `header_json`;
    the canonical JSON of strings and integers, names sorted): the JSON of one with no headers
    table is `before` alone."""
    names = list(props) + ([] if headers is None else list(headers))
    if not all(name.__class__ is str for name in names):
        return None
    entries: list[str] = []
    try:
        for name in sorted(props):
            value = props[name]
            if headers is not None and value is headers:
                entries.append("\0")  # where the table goes: a string's JSON has no raw NUL
            elif value.__class__ is str:
                entries.append(json_string(name) + ":" + json_string(value))
            else:
                entries.append(json_string(name) + ":" + repr(value))
    except ValueError:
        return None
    whole = f'{{"body_size":{body_size},"channel":{channel},"frame":"header",' + (
        f'"properties":{{{",".join(entries)}}}}}'
    )
    if headers is None:
        return whole, (), ""
    before, after = whole.split("\0")
    labels = tuple((name, json_string(name) + ":") for name in sorted(headers))
    return before + '"headers":{', labels, "}" + after


class AmqpProtocol(WireProtocol):
    proto = Proto.AMQP
    label_keys = ("method", "frame")
    framer_cls = AmqpFramer
    decoder_cls = AmqpDecoder
    redact = staticmethod(amqp_redact.redact)
    normalize = match_rules
    summary_cache_key = staticmethod(summary_cache_key)
    summary_fast_json = staticmethod(header_json)
    frame_memo_key = staticmethod(memo_key)
    frame_splicer = staticmethod(delivery_tag_splicer)

    def session(self, ctx: Any, listener: Any, link: Any) -> replay.Session:
        return replay.Session(ctx, listener, link)

    def is_liveness(self, summary: Mapping[str, Any]) -> bool:
        return replay.is_liveness(summary)  # type: ignore[arg-type]

    def is_closing(self, summary: Mapping[str, Any]) -> bool:
        return replay.is_closing(summary)  # type: ignore[arg-type]

    def prepare(self, ctx: Any) -> None:
        replay.prepare(ctx)

    def delivery_causes(self, ctx: Any) -> Mapping[FrameRef, FrameRef]:
        shared = ctx.shared.get(Proto.AMQP)
        if shared is None or shared.causes is None:
            replay.prepare(ctx)
            shared = ctx.shared[Proto.AMQP]
        return shared.causes.cause_of  # (clock-driven publishes' deliveries wait for nothing)

    def role(self, summary: Mapping[str, Any]) -> Role:
        return roles.client_role(summary)

    def detail(self, summary: Mapping[str, Any]) -> str:
        s = summary
        args = s.get("args") or {}
        parts = [f"{k}={args[k]!r}" for k in ("exchange", "routing_key", "queue") if k in args]
        if s.get("frame") == "header":
            parts.append(f"body {s.get('body_size')} bytes")
            key = (s.get("properties") or {}).get("headers", {}).get("key")
            if key is not None:
                parts.append(f"key={key!r}")
        return " ".join(parts)

    def payload(self, summary: Mapping[str, Any], raw: bytes) -> bytes:
        if summary.get("frame") == "body":
            return raw[7:-1]  # the body frame's payload: after its header, before 0xCE
        return raw

    def describe(self, summary: Mapping[str, Any]) -> Description:
        s = summary
        if not ("method" in s or "frame" in s or "channel" in s):
            return describe_any(s)
        what = str(s.get("method") or s.get("frame") or "?")
        return finish(s, what, [f"ch={s['channel']}"] if "channel" in s else [])


AMQP = AmqpProtocol()
