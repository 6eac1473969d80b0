"""One object per wire protocol: everything protocol-specific the recorder, `rrlab inspect` and
the replayer need, in one place (`rr.cassette` knows no protocol).

    protocol = protocol_for("kafka")
    protocol.framer(direction) / protocol.decoder()      # codecs (one decoder per connection)
    protocol.label(summary) / protocol.describe(summary) # a frame's name / one-line description
    conn = protocol.connection()                         # the frame pipeline of one connection
    conn.feed(direction, data) -> [PipelineFrame(summary, raw, redacted, wire, decoded), ...]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rrlab.rr.codecs import DEFAULT_MAX_FRAME_BYTES, Decoded, Decoder, Direction, Framer, Proto
from rrlab.rr.replay.recording import ClientKind, Role

from .amqp import AMQP, AmqpProtocol
from .base import Description, WireProtocol
from .kafka import KAFKA, KafkaProtocol
from .mqtt import MQTT, MqttProtocol
from .pipeline import FrameConnection, PipelineFrame

#: The registry: every protocol object, by its `Proto` (a new protocol: its import above and
#: its entry here; see rr/protocols/README.md).
PROTOCOLS: dict[Proto, WireProtocol] = {p.proto: p for p in (KAFKA, AMQP, MQTT)}
if set(PROTOCOLS) != set(Proto):  # a Proto without its protocol object fails at import
    raise TypeError(f"no protocol object for {sorted(set(Proto) - set(PROTOCOLS))}")


def protocol_for(proto: Proto | str) -> WireProtocol:
    """The protocol object of `proto` ("kafka", "amqp", "mqtt"); ValueError for anything else."""
    return PROTOCOLS[Proto(proto)]


_KINDS: dict[tuple[str, Role], ClientKind] = {}  # one object per kind: the index keeps many


def client_kind(proto: Proto, summary: Mapping[str, Any]) -> ClientKind:
    """A recorded client frame's kind for the end-of-run report: its label, and its role
    (`WireProtocol.role`): behaviour never sent is a miss; liveness (sent on a clock) and a
    closing handshake (how a client tears down is not behaviour; closing acks that depend on
    what was served are settled by the session) are exempt from "unused".
    Called for every recorded client frame when a cassette opens for serving (those whose
    summary was seen before are answered from the reader's memo): kept cheap."""
    protocol = PROTOCOLS[proto]
    key = (protocol.label(summary), protocol.role(summary))
    kind = _KINDS.get(key)
    if kind is None:
        kind = _KINDS[key] = ClientKind(*key)
    return kind


def framer_for(
    proto: Proto | str, direction: Direction | str, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> Framer:
    """A fresh incremental framer for one direction of one connection."""
    return protocol_for(proto).framer(direction, max_frame_bytes)


def decoder_for(proto: Proto | str) -> Decoder:
    """A fresh decoder for one connection (use one per connection, both directions)."""
    return protocol_for(proto).decoder()


def redact(
    proto: Proto | str,
    direction: Direction | str,
    raw: bytes,
    decoded: Decoded,
    decoder: Decoder | None = None,
) -> tuple[bytes, Decoded]:
    """Credentials out of one frame of `proto` (see `rr.redact`; the protocol decides)."""
    return protocol_for(proto).redact(Direction(direction), raw, decoded, decoder)


__all__ = [
    "AMQP",
    "KAFKA",
    "MQTT",
    "PROTOCOLS",
    "AmqpProtocol",
    "Description",
    "FrameConnection",
    "KafkaProtocol",
    "MqttProtocol",
    "PipelineFrame",
    "WireProtocol",
    "client_kind",
    "decoder_for",
    "framer_for",
    "protocol_for",
    "redact",
]
