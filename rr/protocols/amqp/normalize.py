"""AMQP 0-9-1 match keys: what of a live client frame must equal the recorded one.

A client's unit of meaning is a *message*: one method frame, and for Basic.Publish also its
content header and body frames (assembled per channel, so a body split at another frame_max
compares equal). Named rules, applied in order to a message's JSON-able view (`args`,
`properties`, `body`), decide what is ignored (`RULES`), then the user's ignore paths
(`rr.diff`, the same for every protocol); `match_key` is the sorted JSON of the result, the body
by its bytes unless an ignore path reaches into it, and `diff` says field by field where a live
message differs from a recorded one.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pamqp.commands
import pamqp.decode
import pamqp.exceptions
import pamqp.frame

from rrlab.rr import diff as rrdiff

from .codec import BODY_FRAME, frame_channel

#: Client methods followed by a content header and body frames.
CONTENT_METHODS = frozenset({"Basic.Publish"})
#: What a client-chosen consumer tag becomes in a match key (any non-empty tag matches).
CLIENT_TAG = "<client-chosen>"
HEARTBEAT = "heartbeat"
PROTOCOL_HEADER = "protocol_header"


@dataclass(slots=True)
class Message:
    """One client unit: a method (with its content, if it carries any), a protocol header, a
    heartbeat, or a stray header/body frame. `frames` counts the wire frames it took."""

    channel: int
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] | None = None
    body: bytes | None = None
    frames: int = 1
    #: the exact bytes of its frames: equal bytes match without normalizing
    wire: bytes = b""

    def view(self) -> dict[str, Any]:
        """JSON-able form, the body as a value (`rr.diff.value_of`). A fresh copy down to what
        the rules edit (args, properties and their headers table)."""
        args = dict(self.args)
        out: dict[str, Any] = {"channel": self.channel, "method": self.name, "args": args}
        if self.properties is not None:
            props = dict(self.properties)
            if isinstance(props.get("headers"), dict):
                props["headers"] = dict(props["headers"])
            out["properties"] = props
        if self.body is not None:
            out["body"] = rrdiff.value_of(self.body)
        return out


class _Recorded(Protocol):
    """A recorded frame as the replay reads it (`RecFrame`): its bytes, its summary on demand."""

    @property
    def raw(self) -> bytes: ...

    @property
    def summary(self) -> Mapping[str, Any]: ...


@dataclass(slots=True)
class _Pending:
    message: Message
    size: int
    chunks: list[bytes] = field(default_factory=list)
    have: int = 0
    headed: bool = False


class Assembler:
    """Turns one connection's client frames (decoder summary + raw bytes) into messages.

    Content frames are collected per channel until the header's body size is reached; a
    content frame no method announced becomes a message of its own (it will not match)."""

    def __init__(self) -> None:
        self._pending: dict[int, _Pending] = {}

    def feed(self, summary: Mapping[str, Any], raw: bytes) -> Message | None:
        kind = summary.get("frame")
        channel = int(summary.get("channel", 0))
        if kind == PROTOCOL_HEADER:
            return Message(0, PROTOCOL_HEADER, {"version": summary.get("version")}, wire=raw)
        if kind == HEARTBEAT:
            return Message(channel, HEARTBEAT, wire=raw)
        pending = self._pending.get(channel)
        if kind == "header" and pending is not None and not pending.headed:
            pending.headed = True
            pending.message.frames += 1
            pending.message.wire += raw
            pending.message.properties = dict(summary.get("properties") or {})
            pending.size = int(summary.get("body_size", 0))
            return self._finish(channel) if pending.size == 0 else None
        if kind == "body" and pending is not None and pending.headed:
            return self.add_body(channel, raw)
        if pending is not None:  # the content never came: the method stands alone
            del self._pending[channel]
        if kind != "method":
            rest = {k: v for k, v in summary.items() if k != "channel"}
            return Message(channel, str(kind), rest, wire=raw)
        name = str(summary.get("method"))
        args = dict(summary.get("args") or {})
        if name == "Connection.StartOk":
            args["response"] = {"user": sasl_user(raw)}
        message = Message(channel, name, args, wire=raw)
        if name in CONTENT_METHODS:
            self._pending[channel] = _Pending(message, 0)
            return None
        return message

    def feed_recorded(self, frame: _Recorded) -> Message | None:
        """`feed` for a recorded frame, whose summary is parsed only when read: a body frame
        continuing a message's content is told by its bytes, its summary unread (a quarter of
        a message stream's frames)."""
        raw = frame.raw
        if raw[:1] == BODY_FRAME:
            channel = frame_channel(raw)
            pending = self._pending.get(channel)
            if pending is not None and pending.headed:
                return self.add_body(channel, raw)
        return self.feed(frame.summary, raw)

    def add_body(self, channel: int, raw: bytes) -> Message | None:
        """A body frame of the content `channel` is reading (its header seen): the message
        once its body is whole."""
        pending = self._pending[channel]
        chunk = raw[7:-1]
        pending.chunks.append(chunk)
        pending.have += len(chunk)
        pending.message.frames += 1
        pending.message.wire += raw
        return self._finish(channel) if pending.have >= pending.size else None

    def _finish(self, channel: int) -> Message:
        pending = self._pending.pop(channel)
        pending.message.body = b"".join(pending.chunks)
        return pending.message


def sasl_user(raw: bytes) -> str | None:
    """The user named by a Connection.StartOk's SASL response (PLAIN or AMQPLAIN); never the
    secret, which a cassette holds only as a placeholder."""
    try:
        _n, _ch, frame = pamqp.frame.unmarshal(raw)
    except (pamqp.exceptions.UnmarshalingException, ValueError, struct.error):
        return None
    if not isinstance(frame, pamqp.commands.Connection.StartOk):
        return None
    response = frame.response or ""
    data = response.encode("utf-8", "surrogateescape") if isinstance(response, str) else response
    if frame.mechanism == "PLAIN" and data.count(b"\x00") == 2:
        return data.split(b"\x00")[1].decode("utf-8", "replace")
    if frame.mechanism == "AMQPLAIN":
        try:
            _n, table = pamqp.decode.field_table(struct.pack(">I", len(data)) + data)
        except (ValueError, struct.error, binascii.Error):
            return None
        login = table.get("LOGIN")
        return login.decode() if isinstance(login, bytes) else login
    return None


# --- rules --------------------------------------------------------------------------------------


#: A message as an ignore path sees it: a path that does not start with `args`, `properties`
#: or `body` starts in the body; header names are entries of the `headers` property table.
SHAPE = rrdiff.Shape(frozenset({"args", "properties", "body"}), "body", ("properties", "headers"))


@functools.cache
def ignore_rules(fields: tuple[str, ...], headers: tuple[str, ...]) -> rrdiff.Ignore:
    return rrdiff.Ignore.build(SHAPE, fields, headers)


@dataclass(frozen=True, slots=True)
class Options:
    """Per-run choices: live->recorded consumer tags, and a user's own nondeterministic fields
    (ignore paths, e.g. `ts` in the body or `properties.message_id`, and header names)."""

    live_tags: Mapping[str, str] = field(default_factory=dict)
    ignore_fields: tuple[str, ...] = ()
    ignore_headers: tuple[str, ...] = ()

    @property
    def ignore(self) -> rrdiff.Ignore:
        return ignore_rules(tuple(self.ignore_fields), tuple(self.ignore_headers))


Rule = Callable[[dict[str, Any], Options], None]


def any_credentials(view: dict[str, Any], _opts: Options) -> None:
    """StartOk: the user and mechanism count, the (redacted) secret and client software don't."""
    if view["method"] == "Connection.StartOk":
        view["args"].pop("client_properties", None)


def consumer_tag_from_client(view: dict[str, Any], opts: Options) -> None:
    """Basic.Consume: a tag the client picked matches any tag (pika draws a random one); an
    empty tag (the server names it) must stay empty. Later frames naming the live tag are
    compared under the recorded tag it was mapped to."""
    args = view["args"]
    if view["method"] == "Basic.Consume" and args.get("consumer_tag"):
        args["consumer_tag"] = CLIENT_TAG
    elif view["method"] == "Basic.Cancel" and "consumer_tag" in args:
        args["consumer_tag"] = opts.live_tags.get(args["consumer_tag"], args["consumer_tag"])


def heartbeat_is_liveness(view: dict[str, Any], _opts: Options) -> None:
    """TuneOk: the heartbeat interval the client settles on is a liveness setting (the fake
    broker beats at the live value), not behaviour."""
    if view["method"] == "Connection.TuneOk":
        view["args"].pop("heartbeat", None)


RULES: tuple[Rule, ...] = (
    any_credentials,
    heartbeat_is_liveness,
    consumer_tag_from_client,
)
_DEFAULTS = Options()


def normalized(message: Message, opts: Options | None = None) -> dict[str, Any]:
    """The message as compared and shown: its view with every rule and ignore path applied."""
    view = message.view()
    opts = opts or _DEFAULTS
    for rule in RULES:
        rule(view, opts)
    return opts.ignore.apply(view)


def match_key(message: Message, opts: Options | None = None) -> bytes:
    """Sorted-key compact JSON of the normalized message, the body by its bytes (a digest)
    unless an ignore path reaches into it: equal keys match."""
    opts = opts or _DEFAULTS
    view = normalized(message, opts)
    if message.body is not None and not opts.ignore.touches("body"):
        view["body"] = {"sha256": hashlib.sha256(message.body).hexdigest()}
    return rrdiff.canonical(view)


def is_liveness(summary: Mapping[str, Any]) -> bool:
    """Heartbeat frames: sent on a clock, never matched against the cassette."""
    return summary.get("frame") == HEARTBEAT


def is_heartbeat(raw: bytes) -> bool:
    """`is_liveness` from a frame's bytes (frame type 8), its summary unread."""
    return raw[:1] == b"\x08"


#: A close that asks for nothing but the close (reply-success; 0 from clients that send it).
GRACEFUL_REPLY_CODES = frozenset({0, 200})
#: Client methods that only tear down: a close of the connection or a channel, and the answer
#: to the broker's own close.
CLOSES = frozenset({"Connection.Close", "Channel.Close"})
CLOSE_OKS = frozenset({"Connection.CloseOk", "Channel.CloseOk"})


def is_closing(summary: Mapping[str, Any]) -> bool:
    """A graceful close (or the answer to the broker's close): the client only tears down, so a
    recorded one it skipped is not behaviour, and an unrecorded one gets its CloseOk."""
    method = summary.get("method")
    if method in CLOSE_OKS:
        return True
    args = summary.get("args") or {}
    return method in CLOSES and args.get("reply_code") in GRACEFUL_REPLY_CODES


# --- diff ---------------------------------------------------------------------------------------


def diff(
    recorded: Mapping[str, Any],
    live: Mapping[str, Any],
    recorded_body: bytes | None = None,
    live_body: bytes | None = None,
) -> list[str]:
    """Field-level differences of two normalized messages, e.g.
    `Basic.Publish ch 1 body.n: recorded 17 live 18`; with the bodies' bytes, a body equal as a
    value but not as bytes says so."""
    head = f"{live.get('method')} ch {live.get('channel')}"
    if recorded.get("method") != live.get("method") or recorded.get("channel") != live.get(
        "channel"
    ):
        return [
            f"{head}: recorded {recorded.get('method')} ch {recorded.get('channel')} "
            f"live {live.get('method')} ch {live.get('channel')}"
        ]
    lines = []
    for part in ("args", "properties", "body"):
        absent = rrdiff.ABSENT
        lines += rrdiff.lines(recorded.get(part, absent), live.get(part, absent), part)
    if not lines and recorded_body != live_body and "body" in live:
        lines = ["body: same value, different bytes"]
    return [f"{head} {line}" for line in lines]
