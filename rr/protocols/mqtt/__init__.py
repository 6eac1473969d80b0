"""MQTT 3.1.1 / 5: remaining-length framing, a decoder that learns the protocol level from
CONNECT, redaction of CONNECT passwords and MQTT 5 authentication data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rrlab.rr.cassette.format import json_split
from rrlab.rr.codecs import Proto
from rrlab.rr.protocols.base import Description, FrameRef, WireProtocol, clip, describe_any, finish
from rrlab.rr.replay.recording import Role

from . import normalize as match_rules
from . import redact as mqtt_redact
from . import roles
from . import session as replay
from .codec import MqttDecoder, MqttFramer

#: packet key (see `packet_json`) -> the JSON before and after the packet id; bounded
_TEMPLATES: dict[Any, tuple[bytes, bytes]] = {}
_TEMPLATES_MAX = 1024


def packet_json(summary: Mapping[str, Any]) -> bytes | None:
    """Canonical JSON of the packets of a QoS 1/2 message stream (`summary_fast_json`): an
    MQTT 3.1.1 PUBLISH and the acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP: a packet
    name and id), which recur but for their packet id. A template per packet (a PUBLISH: per
    QoS, flags, topic and payload size) holds the JSON around the id. Every value is checked to
    be exactly of its type (so True never stands for 1). None for every other summary."""
    packet_id = summary.get("packet_id")
    if packet_id.__class__ is not int:
        return None
    packet = summary.get("packet")
    n = len(summary)
    if n == 2:
        if packet.__class__ is not str:
            return None
        key: Any = packet
    elif n == 7 and packet == "PUBLISH":
        key = (
            summary.get("qos"),
            summary.get("retain"),
            summary.get("dup"),
            summary.get("topic"),
            summary.get("payload_size"),
        )
        if key[0].__class__ is not int or key[1].__class__ is not bool:
            return None
        if key[2].__class__ is not bool or key[3].__class__ is not str:
            return None
        if key[4].__class__ is not int:
            return None
    else:
        return None
    template = _TEMPLATES.get(key)
    if template is None:
        template = json_split(summary, "packet_id", packet_id)
        if template is None:
            return None
        if len(_TEMPLATES) >= _TEMPLATES_MAX:
            _TEMPLATES.clear()
        _TEMPLATES[key] = template
    return b"%b%d%b" % (template[0], packet_id, template[1])


class MqttProtocol(WireProtocol):
    proto = Proto.MQTT
    label_keys = ("packet",)
    framer_cls = MqttFramer
    decoder_cls = MqttDecoder
    redact = staticmethod(mqtt_redact.redact)
    normalize = match_rules
    summary_fast_json = staticmethod(packet_json)

    def session(self, ctx: Any, listener: Any, link: Any) -> replay.Session:
        return replay.Session(ctx, listener, link)

    def is_liveness(self, summary: Mapping[str, Any]) -> bool:
        return replay.is_liveness(summary)  # type: ignore[arg-type]

    def is_closing(self, summary: Mapping[str, Any]) -> bool:
        return replay.is_closing(summary)  # type: ignore[arg-type]

    def role(self, summary: Mapping[str, Any]) -> Role:
        return roles.client_role(summary)

    def prepare(self, ctx: Any) -> None:
        replay.prepare(ctx)

    def delivery_causes(self, ctx: Any) -> Mapping[FrameRef, FrameRef]:
        if Proto.MQTT not in ctx.shared:
            replay.prepare(ctx)
        return ctx.shared[Proto.MQTT].cause_of

    def detail(self, summary: Mapping[str, Any]) -> str:
        s = summary
        if "topic" in s:
            size = s.get("payload_size", 0)
            return f"topic={s['topic']} qos={s.get('qos', 0)} payload {size} bytes"
        subs = s.get("subscriptions")
        if subs:
            return "topics " + ", ".join(f"{x.get('topic')} (qos {x.get('qos', 0)})" for x in subs)
        if s.get("packet") == "CONNECT":
            return f"client_id={s.get('client_id')!r}"
        return ""

    def payload(self, summary: Mapping[str, Any], raw: bytes) -> bytes:
        size = summary.get("payload_size")
        return raw[-int(size) :] if size else raw  # a PUBLISH's payload ends the packet

    def describe(self, summary: Mapping[str, Any]) -> Description:
        s = summary
        if not ("packet" in s or "type" in s):
            return describe_any(s)
        ids = []
        if "packet_id" in s:
            ids.append(f"pid={s['packet_id']}")
        if isinstance(s.get("topic"), str):
            ids.append(f"topic={clip(s['topic'], 24)}")
        return finish(s, str(s.get("packet", s.get("type"))), ids)


MQTT = MqttProtocol()
