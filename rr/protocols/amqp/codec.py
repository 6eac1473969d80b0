"""AMQP 0-9-1 wire codec: protocol header + 7-byte frame header/0xCE framing, pamqp decoding."""

from __future__ import annotations

import base64
import copy
import datetime
import re
import struct
from collections.abc import Hashable
from typing import Any

import pamqp.base
import pamqp.body
import pamqp.commands
import pamqp.exceptions
import pamqp.frame
import pamqp.header

from rrlab.rr.cassette.format import json_split
from rrlab.rr.codecs import Decoder
from rrlab.rr.codecs._framing import BufferedFramer
from rrlab.rr.codecs.base import DEFAULT_MAX_FRAME_BYTES, Decoded, Direction, JsonSummary, Proto

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
_HEADER_MAGIC = PROTOCOL_HEADER[:4]  # what any AMQP version's protocol header starts with
FRAME_END = 0xCE
#: Frame types of AMQP 0-9-1 as RabbitMQ and pamqp use them (heartbeat is 8, not the spec's 4).
FRAME_TYPES = {1: "method", 2: "header", 3: "body", 8: "heartbeat"}
#: a body frame's first byte: a replay tells one by it, its summary unread (`frame_channel`)
BODY_FRAME = b"\x03"
_HEADER = struct.Struct(">BHI")
_SIZE = struct.Struct(">I")  # a frame's payload size, at byte 3 of its header
_ADDRESS = re.compile(r" object at 0x[0-9a-fA-F]+")


class AmqpFramer(BufferedFramer):
    """Splits an AMQP 0-9-1 stream into frames.

    c2s begins with the 8-byte protocol header, emitted as its own frame. s2c has none, except
    that a server refusing the client's version answers with its own protocol header and closes;
    that is framed too, so the stream stays explainable. Any 8 bytes starting "AMQP" frame as a
    header (another version, e.g. 0-9-0 or 0-10): the proxy forwards and records it, and the
    broker's answer, as a client would see them; only non-AMQP bytes there are a framing error.
    """

    proto = Proto.AMQP

    def __init__(
        self, direction: Direction, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    ) -> None:
        super().__init__(direction, max_frame_bytes)
        self._need_header = self.direction is Direction.C2S

    def _frame_length(self, buf: bytearray, start: int, offset: int) -> int | None:
        if offset == 0 and (self._need_header or buf[start] == PROTOCOL_HEADER[0]):
            return self._protocol_header(buf, start, offset)
        if len(buf) - start < 1:
            return None
        if buf[start] not in FRAME_TYPES:
            raise self._error(offset, f"unknown frame type {buf[start]}")
        if len(buf) - start < _HEADER.size:
            return None
        _type, _channel, size = _HEADER.unpack_from(buf, start)
        length = _HEADER.size + size + 1
        if length > self.max_frame_bytes:
            raise self._error(
                offset,
                f"declared frame size {size} exceeds the frame budget of "
                f"{self.max_frame_bytes} bytes (raise max_frame_bytes if this is genuine)",
            )
        return length

    def _protocol_header(self, buf: bytearray, start: int, offset: int) -> int | None:
        have = bytes(buf[start : start + len(PROTOCOL_HEADER)])
        if not _HEADER_MAGIC.startswith(have[:4]):
            raise self._error(
                offset,
                f"expected protocol header {PROTOCOL_HEADER!r}, got {have!r} (not an AMQP client?)",
            )
        if len(have) < len(PROTOCOL_HEADER):
            return None
        self._need_header = False
        return len(PROTOCOL_HEADER)

    def _run_frames(
        self,
        src: bytes | bytearray,
        view: memoryview | None,
        pos: int,
        end: int,
        offset: int,
        raws: list[bytes],
    ) -> int:
        if offset == 0:  # a protocol header may start here: the general path
            return pos
        unpack, limit, types = _SIZE.unpack_from, self.max_frame_bytes, FRAME_TYPES
        while end - pos >= 8:
            (size,) = unpack(src, pos + 3)
            stop = pos + size + 8
            if stop > end or size + 8 > limit or src[pos] not in types or src[stop - 1] != 0xCE:
                break
            raws.append(src[pos:stop] if view is None else view[pos:stop].tobytes())
            pos = stop
        return pos

    def _check_frame(self, raw: bytes, offset: int) -> None:
        if offset == 0 and len(raw) == len(PROTOCOL_HEADER) and raw[:4] == _HEADER_MAGIC:
            return
        if raw[-1] != FRAME_END:
            raise self._error(
                offset + len(raw) - 1, f"frame end octet is {raw[-1]:#04x}, expected 0xce"
            )


# --- decoding -----------------------------------------------------------------------------------

#: Method arguments that are opaque SASL blobs: a summary shows only their length.
_OPAQUE_ARGS = {"response", "challenge"}
#: Peer property tables: a summary keeps only these keys of them.
_PEER_TABLES = {"client_properties", "server_properties"}
_PEER_KEYS = ("product", "version", "platform")


class AmqpDecoder:
    """Decodes AMQP 0-9-1 frames with pamqp. Summary: channel, frame type, method name, args.

    Content header frames carry `properties` and `body_size`; body frames their `size`. A frame
    pamqp cannot read gets `error` in its summary instead of raising: recording must go on.

    The frames of a message stream (body, property-less header, Basic.Publish/Deliver/Ack) take
    a struct-only fast path that yields the summary pamqp's path would (a test holds them equal);
    those frames get no typed `body`. Anything unusual falls through to pamqp.
    """

    def decode(self, direction: Direction, raw: bytes) -> Decoded:
        fast = _fast_summary(raw)
        if fast is not None:
            return Decoded(fast)
        if raw[:1] == b"\x02" and _whole(raw) and len(raw) >= 22:
            return self._header(direction, raw)
        return self.decode_pamqp(direction, raw)

    def redecode(self, direction: Direction, raw: bytes, decoded: Decoded) -> Decoded:
        """Decode a changed copy of the frame `decoded` came from (AMQP frames read alone)."""
        return self.decode(direction, raw)

    def _header(self, direction: Direction, raw: bytes) -> Decoded:
        """A content header with properties: publishers repeat the same few property sets, so
        pamqp reads each distinct one once (the properties depend on those bytes alone)."""
        key = raw[19:-1]  # property flags + property list
        props = _PROPERTIES.get(key)
        if props is None:
            decoded = self.decode_pamqp(direction, raw)
            if "error" not in decoded.summary:
                if len(_PROPERTIES) >= _PROPERTIES_MAX:
                    _PROPERTIES.clear()
                _PROPERTIES[key] = freeze(decoded.summary["properties"])
            return decoded
        return Decoded(
            {
                "body_size": int.from_bytes(raw[11:19], "big"),
                "channel": (raw[1] << 8) | raw[2],
                "frame": "header",
                "properties": dict(props),  # the caller's to edit; what it holds is frozen
            }
        )

    def decode_pamqp(self, direction: Direction, raw: bytes) -> Decoded:
        """The general path: every frame through pamqp (the fast path must agree with it)."""
        if raw == PROTOCOL_HEADER or raw[:4] == b"AMQP":
            return Decoded({"frame": "protocol_header", "version": list(raw[5:8])})
        channel = int.from_bytes(raw[1:3], "big") if len(raw) >= 3 else 0
        frame_type = FRAME_TYPES.get(raw[0], f"type {raw[0]}") if raw else "empty"
        summary: dict[str, Any] = {"channel": channel, "frame": frame_type}
        if raw and raw[0] == 8:
            return Decoded(summary)
        try:
            _consumed, channel, value = pamqp.frame.unmarshal(raw)
        except (pamqp.exceptions.UnmarshalingException, ValueError, struct.error) as err:
            # pamqp names the method object by address ("<Basic.Publish object at 0x7f..>"): drop
            # the address, or the same bytes would get a different summary on every run
            summary["error"] = f"pamqp cannot read the frame: {_ADDRESS.sub('', str(err))}"
            return Decoded(summary)
        if isinstance(value, pamqp.base.Frame):
            summary["method"] = value.name
            summary["args"] = method_args(value)
        elif isinstance(value, pamqp.header.ContentHeader):
            summary["body_size"] = value.body_size
            summary["properties"] = properties(value.properties)
        elif isinstance(value, pamqp.body.ContentBody):
            summary["size"] = len(value.value)
        return Decoded(summary, body=value)


def frame_channel(raw: bytes) -> int:
    """The channel number of a whole frame, read from its header (no summary parsed; 0 for a
    protocol header or a short frame)."""
    return int.from_bytes(raw[1:3], "big") if len(raw) >= 7 and raw[:1] != b"A" else 0


def method_args(method: pamqp.base.Frame) -> dict[str, Any]:
    """A method's arguments, JSON-able; SASL blobs by length, peer tables cut to a few keys."""
    out: dict[str, Any] = {}
    for name in method.__slots__:
        value = getattr(method, name, None)
        if name in _OPAQUE_ARGS:
            out[name] = {"len": len(value or b"")}
        elif name in _PEER_TABLES and isinstance(value, dict):
            out[name] = {k: jsonable(value[k]) for k in _PEER_KEYS if k in value}
        else:
            out[name] = jsonable(value)
    return out


def properties(props: pamqp.commands.Basic.Properties) -> dict[str, Any]:
    """The content header properties that are set, JSON-able."""
    out = {}
    for name in props.__slots__:
        value = getattr(props, name, None)
        if value is not None:
            out[name] = jsonable(value)
    return out


def jsonable(value: Any) -> Any:
    """Map AMQP field values onto canonical-JSON types (no floats: they become strings)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(data).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value)  # float, Decimal, anything else: exact text, never a float


# --- fast path ----------------------------------------------------------------------------------
# Per message a publisher sends three frames and a consumer receives three; through pamqp they
# cost ~12 us each, most of the proxy's budget. These readers cover exactly the common shapes
# and return None for anything else (short/long payloads, bad UTF-8, empty bodies), so pamqp
# still decides every odd frame, including which ones are errors.

_U16 = struct.Struct(">H")
_I64 = struct.Struct(">q")
_HEAD_FLAGS = struct.Struct(">HHQH")  # class id, weight, body size, first property-flags word
_PUBLISH, _DELIVER, _ACK = 0x003C0028, 0x003C003C, 0x003C0050


def _shortstr(p: bytes, at: int) -> tuple[str, int]:
    """(value, next offset); IndexError/UnicodeDecodeError when it is not there or not UTF-8."""
    end = at + 1 + p[at]
    if end > len(p):
        raise IndexError(at)
    return p[at + 1 : end].decode("utf-8"), end


#: content-header properties by their wire bytes (bounded: cleared when full), frozen: each
#: summary gets its own top-level dict, the nested values (headers) are shared and read-only
_PROPERTIES: dict[bytes, FrozenDict] = {}
_PROPERTIES_MAX = 256


def _read_only(self: Any, *args: Any, **kwargs: Any) -> Any:
    raise TypeError("decoded AMQP properties are shared and read-only: copy them to edit them")


class FrozenDict(dict):
    """A dict no one can change in place (JSON encoders and == treat it as a dict)."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v, memo) for k, v in self.items()}

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))


class FrozenList(list):
    """A list no one can change in place (JSON encoders and == treat it as a list)."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return [copy.deepcopy(v, memo) for v in self]

    def __reduce__(self) -> Any:
        return (list, (list(self),))


def freeze(value: Any) -> Any:
    """A read-only deep copy of a JSON-able value (dicts and lists frozen, all the way down)."""
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return FrozenList(freeze(v) for v in value)
    return value


def _whole(raw: bytes) -> bool:
    """A frame whose declared size and end octet match its length (the framer's guarantee)."""
    n = len(raw)
    return n >= 8 and raw[-1] == FRAME_END and int.from_bytes(raw[3:7], "big") == n - 8


def _fast_summary(raw: bytes) -> dict[str, Any] | None:
    """The summary of a common stream frame without pamqp, or None to take the general path."""
    if not _whole(raw):
        return None
    n = len(raw)
    kind = raw[0]
    channel = (raw[1] << 8) | raw[2]
    if kind == 3:
        if n == 8:  # pamqp refuses a size-0 frame: let it say so
            return None
        return {"channel": channel, "frame": "body", "size": n - 8}
    try:
        if kind == 2:
            if n < 22 or raw[19] or raw[20]:  # properties present (or truncated): pamqp
                return None
            _cls, _weight, body_size, _flags = _HEAD_FLAGS.unpack_from(raw, 7)
            # pamqp's Properties default cluster_id to "" (not None), so it is always listed
            props = {"cluster_id": ""}
            return {
                "body_size": body_size,
                "channel": channel,
                "frame": "header",
                "properties": dict(props),  # the caller's to edit; what it holds is frozen
            }
        if kind == 1 and n >= 12:
            method = int.from_bytes(raw[7:11], "big")
            if method == _PUBLISH:
                args = _publish(raw)
                name = "Basic.Publish"
            elif method == _DELIVER:
                args = _deliver(raw)
                name = "Basic.Deliver"
            elif method == _ACK and n == 21:
                (tag,) = _I64.unpack_from(raw, 11)
                args = {"delivery_tag": tag, "multiple": bool(raw[19] & 1)}
                name = "Basic.Ack"
            else:
                return None
            if args is None:
                return None
            return {"args": args, "channel": channel, "frame": "method", "method": name}
    except (IndexError, UnicodeDecodeError, struct.error):
        return None
    return None


_PUBLISH_ID = b"\x00\x3c\x00\x28"  # Basic.Publish's class and method ids, as on the wire
#: content headers up to this size are keyed by their bytes (a publisher repeats a few)
_MEMO_HEADER_MAX = 256


def memo_key(raw: bytes) -> Hashable | None:
    """The key of a frame whose summary repeats in a message stream (`WireProtocol.
    frame_memo_key`): a body frame by channel and size, a content header or Basic.Publish by
    its bytes (an AMQP frame is read alone). Deliveries and acks carry a new tag each time
    (`DeliveryTagSummaries` splices them), and Connection methods may carry credentials: None
    for them, as for everything else."""
    n = len(raw)
    if n <= 8:
        return None
    kind = raw[0]
    if kind == 3:
        return (raw[1], raw[2], n)
    if kind == 2:
        return raw if n <= _MEMO_HEADER_MAX else None
    if kind == 1 and raw[7:11] == _PUBLISH_ID:
        return raw
    return None


def _publish(raw: bytes) -> dict[str, Any] | None:
    (ticket,) = _U16.unpack_from(raw, 11)
    exchange, at = _shortstr(raw, 13)
    routing_key, at = _shortstr(raw, at)
    if at != len(raw) - 2:  # exactly one bit octet left before the frame end
        return None
    bits = raw[at]
    return {
        "exchange": exchange,
        "immediate": bool(bits & 2),
        "mandatory": bool(bits & 1),
        "routing_key": routing_key,
        "ticket": ticket,
    }


def _deliver(raw: bytes) -> dict[str, Any] | None:
    consumer_tag, at = _shortstr(raw, 11)
    (delivery_tag,) = _I64.unpack_from(raw, at)
    redelivered = bool(raw[at + 8] & 1)
    exchange, at = _shortstr(raw, at + 9)
    routing_key, at = _shortstr(raw, at)
    if at != len(raw) - 1:
        return None
    return {
        "consumer_tag": consumer_tag,
        "delivery_tag": delivery_tag,
        "exchange": exchange,
        "redelivered": redelivered,
        "routing_key": routing_key,
    }


_DELIVER_ID = b"\x00\x3c\x00\x3c"  # Basic.Deliver's class and method ids, as on the wire
_ACK_ID = b"\x00\x3c\x00\x50"  # Basic.Ack's
#: a Basic.Ack frame's bytes: header 7, class and method 4, delivery tag 8, bits 1, frame end 1
_ACK_BYTES = 21
#: distinct templates remembered per direction of a connection (cleared when full)
_TEMPLATES_MAX = 256

_Template = tuple[dict[str, Any], dict[str, Any], bytes, bytes]


class DeliveryTagSummaries:
    """Summaries of frames that differ only in their delivery tag, spliced from a template
    (`WireProtocol.frame_splicer`): Basic.Ack either way (a consumer's acks, a broker's
    publisher confirms) and, if `deliveries`, Basic.Deliver (a server frame).

    The frame without its 8 tag bytes keys a template, made from the first such frame by the
    fast path (`_fast_summary`, what `AmqpDecoder.decode` gives such a frame) and its canonical
    JSON split around the tag. The next ones get the template's summary with their own tag and
    the JSON with their tag's digits in between: no decoding, no encoding. Neither method
    carries a credential (the redactor reads Connection.StartOk/SecureOk alone), and an AMQP
    frame is read alone (the decoder keeps no connection state), so nothing else is skipped.
    Anything else (or a frame the fast path leaves to pamqp) is None: decoded as usual."""

    def __init__(self, *, deliveries: bool) -> None:
        self._deliveries = deliveries
        self._templates: dict[bytes, _Template] = {}

    def __call__(self, raw: bytes) -> JsonSummary | None:
        method = raw[7:11]
        if method == _ACK_ID:
            if len(raw) != _ACK_BYTES:  # another size is the decoder's (pamqp) to explain
                return None
            at = 11
        elif method == _DELIVER_ID and self._deliveries:
            if len(raw) < 21:
                return None
            at = 12 + raw[11]  # the delivery tag follows the consumer tag (a short string)
            if at + 9 > len(raw) - 1:
                return None
        else:
            return None
        if raw[0] != 1:
            return None
        key = raw[:at] + raw[at + 8 :]
        (tag,) = _I64.unpack_from(raw, at)
        template = self._templates.get(key)
        if template is None:
            template = self._template(raw, key, tag, method)
            if template is None:
                return None
        summary, args, before, after = template
        args = dict(args)
        args["delivery_tag"] = tag
        summary = dict(summary)
        summary["args"] = args
        return JsonSummary(summary, b"%b%d%b" % (before, tag, after))

    def _template(self, raw: bytes, key: bytes, tag: int, method: bytes) -> _Template | None:
        summary = _fast_summary(raw)
        name = "Basic.Ack" if method == _ACK_ID else "Basic.Deliver"
        if summary is None or summary.get("method") != name:
            return None
        around = json_split(summary, "delivery_tag", tag)
        if around is None:
            return None
        if len(self._templates) >= _TEMPLATES_MAX:
            self._templates.clear()
        template = self._templates[key] = (summary, summary["args"], *around)
        return template


def delivery_tag_splicer(direction: Direction, decoder: Decoder) -> DeliveryTagSummaries:
    """The AMQP `WireProtocol.frame_splicer`: `DeliveryTagSummaries` for each direction, c2s
    for a consumer's acks, s2c for a broker's publisher confirms and its deliveries (an AMQP
    frame is read alone: `decoder` keeps no connection state, unused)."""
    return DeliveryTagSummaries(deliveries=direction is Direction.S2C)
