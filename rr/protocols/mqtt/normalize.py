"""MQTT (3.1.1 and 5) match keys: what of a live packet must equal the recorded one.

Small named rules, like VCR.py's matchers, each removing one thing a client may legitimately
change between runs: its random client id, the packet ids it picks, the DUP flag of a resend,
its keep-alive, credentials (the cassette holds a placeholder), a v5 topic alias. Everything
else compares: topic, QoS, retain, properties (v5 user properties by name) and the payload (its
bytes; with an ignore path into it, its value). Ignore paths and diff lines are `rr.diff`'s, on
the packet's view: its summary fields, `properties` and `payload` (`SHAPE`).
Pure functions on decoder summaries and payload bytes: no sockets, no cassette I/O.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from rrlab.rr import diff as rrdiff

from .codec import PUBREL, ack_head, publish_head

Summary = dict[str, Any]
Rule = Callable[[Summary], None]

#: Client packets sent on a clock: answered by the replayer itself, never matched.
LIVENESS = frozenset({"PINGREQ"})
#: Client packets that may only tear down (`is_closing` reads their reason code).
CLOSING_PACKETS = frozenset({"DISCONNECT"})
#: DISCONNECT reason codes of a client that only closes (v5 0x00 normal; 3.1.1 sends none).
GRACEFUL_DISCONNECT = frozenset({None, 0})
#: Client packets whose packet id the client picks (the replayer maps it).
CLIENT_CHOSEN_IDS = frozenset({"PUBLISH", "PUBREL", "SUBSCRIBE", "UNSUBSCRIBE"})
#: Server packets echoing a client-chosen packet id: the live id is stamped into them.
ECHOES_CLIENT_ID = frozenset({"PUBACK", "PUBREC", "PUBCOMP", "SUBACK", "UNSUBACK"})
#: Client packets acknowledging a broker's push (its packet id is the broker's).
PUSH_ACKS = frozenset({"PUBACK", "PUBREC", "PUBCOMP"})
#: Acks run in flows of their own: when a client acks a push, or releases its own QoS 2
#: publish, depends on when the broker's packets arrived, not on what the client does.
ACK_LANES = PUSH_ACKS | {"PUBREL"}
_ACK_LIKE = frozenset({"PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "DISCONNECT", "AUTH"})

#: A packet as an ignore path sees it: a path that does not start with `properties` or
#: `payload` starts in the payload; header names are v5 user properties.
SHAPE = rrdiff.Shape(
    frozenset({"properties", "payload"}), "payload", ("properties", "user_property")
)


@functools.cache
def _rules(fields: tuple[str, ...], headers: tuple[str, ...]) -> rrdiff.Ignore:
    return rrdiff.Ignore.build(SHAPE, fields, headers)


def ignore_rules(
    ignore_fields: Iterable[str] = (), ignore_headers: Iterable[str] = ()
) -> rrdiff.Ignore:
    """A run's ignore rules as paths into a packet's view."""
    return _rules(tuple(ignore_fields), tuple(ignore_headers))


# --- rules (each edits a normalized copy in place) ---------------------------------------------


def any_client_id(s: Summary) -> None:
    """Client ids are often random (mosquitto's `mosq-…`, amqtt's default): binding prefers an
    equal one but never requires it."""
    s.pop("client_id", None)


def any_credentials(s: Summary) -> None:
    """The cassette holds a placeholder for passwords and v5 authentication data: compare the
    user and whether a password was sent, never the secret (nor the recorded summary's note of
    what the redactor replaced: a live packet has none)."""
    s.pop("redacted", None)
    props = s.get("properties")
    if isinstance(props, dict):
        props.pop("authentication_data", None)


def any_receive_maximum(s: Summary) -> None:
    """A v5 client's Receive Maximum is flow control (the replayer honours the live one), not
    behaviour: a library's default may change."""
    props = s.get("properties")
    if s.get("packet") == "CONNECT" and isinstance(props, dict):
        props.pop("receive_maximum", None)


def ignore_keep_alive(s: Summary) -> None:
    """Keep-alive only decides when PINGREQs come, and those are answered by the replayer."""
    s.pop("keep_alive", None)


def client_packet_ids(s: Summary) -> None:
    """Packet ids the client picks are mapped, not compared; the live id goes into answers."""
    if s.get("packet") in CLIENT_CHOSEN_IDS:
        s.pop("packet_id", None)


def ignore_dup_flag(s: Summary) -> None:
    """DUP marks a resend; the packet is the same one."""
    s.pop("dup", None)


def ignore_topic_alias(s: Summary) -> None:
    """A v5 topic alias is a client's compression choice (the topic itself still compares)."""
    props = s.get("properties")
    if isinstance(props, dict):
        props.pop("topic_alias", None)


def success_by_default(s: Summary) -> None:
    """A v5 ack or DISCONNECT without a reason code means 0 (success), as if it had one."""
    if s.get("packet") in _ACK_LIKE:
        s.setdefault("reason_code", 0)


def payload_by_content(s: Summary) -> None:
    """The payload itself is compared (see `match_key`), so its size says nothing more."""
    s.pop("payload_size", None)


def user_properties_by_name(s: Summary) -> None:
    """v5 user properties are headers: compared by name, in any order (as Kafka's, AMQP's)."""
    props = s.get("properties")
    if isinstance(props, dict) and isinstance(props.get("user_property"), list):
        props["user_property"] = rrdiff.by_name(props["user_property"])


def empty_properties(s: Summary) -> None:
    """An empty v5 property list equals none."""
    if not s.get("properties"):
        s.pop("properties", None)


RULES: tuple[Rule, ...] = (
    any_client_id,
    any_credentials,
    any_receive_maximum,
    ignore_keep_alive,
    client_packet_ids,
    ignore_dup_flag,
    ignore_topic_alias,
    success_by_default,
    payload_by_content,
    user_properties_by_name,
    empty_properties,
)


def normalize(summary: Summary, rules: Iterable[Rule] = RULES) -> Summary:
    """A copy of a decoder summary with every rule applied (nested dicts copied, not shared)."""
    s = {k: (dict(v) if isinstance(v, dict) else v) for k, v in summary.items()}
    for rule in rules:
        rule(s)
    return s


# --- keys --------------------------------------------------------------------------------------


def freeze(value: Any) -> Hashable:
    """A hashable, order-insensitive-for-dicts image of a JSON-like value."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def connect_key(summary: Summary) -> Hashable:
    """What a live CONNECT must share with a recorded one to bind to its connection: protocol
    name and level, clean start, will, user, password presence, v5 properties."""
    return freeze(normalize(summary))


def match_key(
    summary: Summary, payload: bytes | None = None, ignore: rrdiff.Ignore = rrdiff.NO_IGNORE
) -> Hashable:
    """The key a client packet is matched by. The payload compares as bytes, or, with an ignore
    path into it, as its value without the ignored fields."""
    if not ignore:
        return (freeze(normalize(summary)), payload)
    view = ignore.apply(packet_view(summary, payload))
    body = view.pop("payload", rrdiff.ABSENT)
    if ignore.touches("payload"):
        return (freeze(view), ("value", freeze(body)))
    return (freeze(view), payload)


def packet_view(summary: Summary, payload: bytes | None) -> Summary:
    """The normalized summary with the payload as a value: what ignore paths and diffs see."""
    view = normalize(summary)
    if payload is not None:
        view["payload"] = rrdiff.value_of(payload)
    return view


def is_closing(summary: Summary) -> bool:
    """A graceful DISCONNECT: the client only tears down (a recorded one it skipped is not
    behaviour; an unrecorded one just closes)."""
    return summary.get("packet") in CLOSING_PACKETS and (
        summary.get("reason_code") in GRACEFUL_DISCONNECT
    )


def lane(packet: str) -> str:
    """The flow a client packet is ordered in (transcript mode): each kind of ack on its own,
    everything else (SUBSCRIBE, PUBLISH, UNSUBSCRIBE, DISCONNECT, AUTH) in one."""
    return packet if packet in ACK_LANES else "main"


def client_id(summary: Summary) -> str | None:
    value = summary.get("client_id")
    return value if isinstance(value, str) else None


def correlation_data(summary: Summary) -> bytes | None:
    """A v5 PUBLISH's correlation data: a value its sender chose to tell its answer by (bound
    whole, as a client id is, whatever its shape: text or bytes)."""
    props = summary.get("properties")
    value = props.get("correlation_data") if isinstance(props, dict) else None
    if isinstance(value, dict) and isinstance(value.get("base64"), str):
        return base64.b64decode(value["base64"])
    return None


def expected_answer(summary: Summary) -> tuple[str, int | None] | None:
    """The server packet (type, packet id) that answers a client packet, if one does."""
    packet, pid = summary.get("packet"), summary.get("packet_id")
    if packet == "CONNECT":
        return "CONNACK", None
    if packet == "PUBLISH":
        qos = summary.get("qos", 0)
        return ("PUBACK", pid) if qos == 1 else ("PUBREC", pid) if qos == 2 else None
    answers = {
        "PUBREL": "PUBCOMP",
        "PUBREC": "PUBREL",  # the client received a QoS 2 push; the broker releases it
        "SUBSCRIBE": "SUBACK",
        "UNSUBSCRIBE": "UNSUBACK",
        "PINGREQ": "PINGRESP",
    }
    return (answers[packet], pid) if packet in answers else None


# --- diffs -------------------------------------------------------------------------------------


def describe(summary: Summary) -> str:
    """`PUBLISH topic t`, `SUBSCRIBE`, …: how a packet is named in diff lines."""
    packet = str(summary.get("packet", "?"))
    topic = summary.get("topic")
    return f"{packet} topic {topic}" if isinstance(topic, str) else packet


def diff(
    recorded: Summary,
    live: Summary,
    recorded_payload: bytes | None = None,
    live_payload: bytes | None = None,
    ignore: rrdiff.Ignore = rrdiff.NO_IGNORE,
    bindings: Any = None,
) -> list[str]:
    """Field-level differences of what is compared, e.g.
    `PUBLISH topic t payload.n: recorded 17 live 18` (the payload as a value); with the run's
    `bindings`, values that would bind are not named."""
    if recorded.get("packet") != live.get("packet"):  # another packet: its fields say nothing
        return [f"packet: recorded {describe(recorded)} live {describe(live)}"]
    rec = ignore.apply(packet_view(recorded, recorded_payload))
    got = ignore.apply(packet_view(live, live_payload))
    if bindings is not None:
        got = bindings.aligned(rec, got)
    lines = rrdiff.lines(rec, got)
    if not lines and recorded_payload != live_payload and not ignore.touches("payload"):
        lines = ["payload: same value, different bytes"]
    return [f"{describe(live)} {line}" for line in lines]


def view(summary: Summary, payload: bytes | None) -> Summary:
    """A summary with its payload as a value, for reports."""
    if payload is None:
        return dict(summary)
    return {**summary, "payload": rrdiff.value_of(payload)}


# --- the hot path ------------------------------------------------------------------------------


def fast_key(raw: bytes, v5: bool, ignore: rrdiff.Ignore = rrdiff.NO_IGNORE) -> Hashable | None:
    """A match key read straight from the bytes for the packets a replay of many messages is
    made of (3.1.1 PUBLISH and acks of pushes), with the same equality as `match_key` (packet
    id of a PUBLISH and DUP ignored, topic/QoS/retain/payload compared); None for anything else
    (decode and use `match_key`). Saves the decode, most of a replayed packet's CPU."""
    if v5 or len(raw) < 4:
        return None
    ack = ack_head(raw)
    if ack is not None:  # PUBACK, PUBREC, PUBCOMP: 2-byte packet id, nothing else
        return None if ack[0] == PUBREL else ("fast", *ack)
    if raw[0] >> 4 == 3 and not ignore:
        return _fast_publish(raw, raw[0] & 0x0F)
    return None


def _fast_publish(raw: bytes, flags: int) -> Hashable | None:
    head = publish_head(raw)
    if head is None:
        return None
    qos, topic, _packet_id, body = head
    return ("fast", 3, topic, qos, flags & 0x01, raw[body:])
