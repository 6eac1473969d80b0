"""MQTT 3.1.1 / 5: remaining-length framing, a decoder that learns the protocol level from
CONNECT, redaction of CONNECT passwords and MQTT 5 authentication data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rrlab.rr.codecs import Proto
from rrlab.rr.protocols.base import Description, FrameRef, WireProtocol, clip, describe_any, finish
from rrlab.rr.replay.recording import Role

from . import normalize as match_rules
from . import redact as mqtt_redact
from . import roles
from . import session as replay
from .codec import MqttDecoder, MqttFramer


class MqttProtocol(WireProtocol):
    proto = Proto.MQTT
    label_keys = ("packet",)
    framer_cls = MqttFramer
    decoder_cls = MqttDecoder
    redact = staticmethod(mqtt_redact.redact)
    normalize = match_rules

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
