"""AMQP 0-9-1 match keys: what of a live client frame must equal the recorded one.

A client's unit of meaning is a *message*: one method frame, and for Basic.Publish also its
content header and body frames (assembled per channel, so a body split at another frame_max
compares equal). Named rules, applied in order to a message's JSON-able form, decide what is
ignored (`RULES`); `match_key` is the canonical JSON of the result and `diff` says field by
field where a live message differs from a recorded one.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pamqp.commands
import pamqp.decode
import pamqp.exceptions
import pamqp.frame

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
        """JSON-able form, the body as JSON when it parses, else text, else base64. A fresh
        copy down to what the rules edit (args, properties and their headers table)."""
        args = dict(self.args)
        out: dict[str, Any] = {"channel": self.channel, "method": self.name, "args": args}
        if self.properties is not None:
            props = dict(self.properties)
            if isinstance(props.get("headers"), dict):
                props["headers"] = dict(props["headers"])
            out["properties"] = props
        if self.body is not None:
            out["body"] = body_value(self.body)
        return out


def body_value(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(body).decode("ascii")}
    try:
        return {"json": json.loads(text)}
    except ValueError:
        return {"text": text}


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
            chunk = raw[7:-1]
            pending.chunks.append(chunk)
            pending.have += len(chunk)
            pending.message.frames += 1
            pending.message.wire += raw
            return self._finish(channel) if pending.have >= pending.size else None
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


@dataclass(frozen=True, slots=True)
class Options:
    """Per-run choices: live->recorded consumer tags, and a user's own nondeterministic fields
    (dotted paths into a JSON body, e.g. `ts`, and header names in the properties table)."""

    live_tags: Mapping[str, str] = field(default_factory=dict)
    ignore_fields: tuple[str, ...] = ()
    ignore_headers: tuple[str, ...] = ()


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


def ignore_user_fields(view: dict[str, Any], opts: Options) -> None:
    """The user's own nondeterministic payload fields and headers (per cassette)."""
    body = view.get("body")
    if isinstance(body, dict) and "json" in body:
        for path in opts.ignore_fields:
            _drop_path(body["json"], path.split("."))
    headers = (view.get("properties") or {}).get("headers")
    if isinstance(headers, dict):
        for name in opts.ignore_headers:
            headers.pop(name, None)


def _drop_path(value: Any, parts: list[str]) -> None:
    if not isinstance(value, dict) or not parts:
        return
    if len(parts) == 1:
        value.pop(parts[0], None)
    else:
        _drop_path(value.get(parts[0]), parts[1:])


RULES: tuple[Rule, ...] = (
    any_credentials,
    heartbeat_is_liveness,
    consumer_tag_from_client,
    ignore_user_fields,
)
_DEFAULTS = Options()


def normalized(message: Message, opts: Options | None = None) -> dict[str, Any]:
    """The message as compared: its JSON-able view with every rule applied."""
    view = message.view()
    opts = opts or _DEFAULTS
    for rule in RULES:
        rule(view, opts)
    return view


def match_key(message: Message, opts: Options | None = None) -> bytes:
    """Sorted-key compact JSON of the normalized message (JSON bodies may hold floats, which
    canonical JSON refuses): equal keys match."""
    view = normalized(message, opts)
    return json.dumps(view, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def is_liveness(summary: Mapping[str, Any]) -> bool:
    """Heartbeat frames: sent on a clock, never matched against the cassette."""
    return summary.get("frame") == HEARTBEAT


# --- diff ---------------------------------------------------------------------------------------


def diff(recorded: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """Field-level differences of two normalized messages, e.g.
    `Basic.Publish ch 1 body.n: recorded 17 live 18`."""
    head = f"{live.get('method')} ch {live.get('channel')}"
    if recorded.get("method") != live.get("method") or recorded.get("channel") != live.get(
        "channel"
    ):
        return [
            f"{head}: recorded {recorded.get('method')} ch {recorded.get('channel')} "
            f"live {live.get('method')} ch {live.get('channel')}"
        ]
    lines: list[str] = []
    for part in ("args", "properties", "body"):
        rec, got = recorded.get(part), live.get(part)
        if part == "body":  # the body's encoding wrapper is not a field
            rec, got = _unwrap(rec), _unwrap(got)
        _walk(part, rec, got, lines)
    return [f"{head} {line}" for line in lines]


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((kind, inner),) = value.items()
        if kind in ("json", "text"):
            return inner
    return value


_ABSENT = object()


def _walk(path: str, rec: Any, got: Any, out: list[str]) -> None:
    if rec == got:
        return
    if isinstance(rec, dict) and isinstance(got, dict):
        for key in sorted(set(rec) | set(got), key=str):
            _walk(f"{path}.{key}", rec.get(key, _ABSENT), got.get(key, _ABSENT), out)
        return
    if isinstance(rec, list) and isinstance(got, list) and len(rec) == len(got):
        for i, (a, b) in enumerate(zip(rec, got, strict=True)):
            _walk(f"{path}[{i}]", a, b, out)
        return
    out.append(f"{path}: recorded {_show(rec)} live {_show(got)}")


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."
