"""One object per wire protocol: everything protocol-specific the recorder, `rrlab inspect` and
the replayer need, in one place (`rr.cassette` knows no protocol).

    protocol = protocol_for("kafka")
    protocol.framer(direction) / protocol.decoder()      # codecs (one decoder per connection)
    protocol.label(summary) / protocol.describe(summary) # a frame's name / one-line description
    conn = protocol.connection()                         # the frame pipeline of one connection
    conn.feed(direction, data) -> [PipelineFrame(summary, raw, redacted, wire, decoded), ...]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rrlab.rr.codecs import DEFAULT_MAX_FRAME_BYTES, Decoded, Decoder, Direction, Framer, Proto
from rrlab.rr.replay.recording import ClientKind, Role

from .base import Description, WireProtocol
from .pipeline import FrameConnection, PipelineFrame

if TYPE_CHECKING:
    from .amqp import AMQP, AmqpProtocol
    from .kafka import KAFKA, KafkaProtocol
    from .mqtt import MQTT, MqttProtocol


# One loader per protocol: its package is imported the first time it is asked for, so a replay
# of a Kafka cassette never imports AMQP or MQTT code (pamqp and the sessions: ~0.08 s of the
# fake broker's start-up). Still ordinary imports: import-linter sees every edge.
def _kafka() -> WireProtocol:
    from .kafka import KAFKA

    return KAFKA


def _amqp() -> WireProtocol:
    from .amqp import AMQP

    return AMQP


def _mqtt() -> WireProtocol:
    from .mqtt import MQTT

    return MQTT


#: The registry: each protocol's loader, by its `Proto` (a new protocol: its loader above and
#: its entry here; see rr/protocols/README.md).
_LOADERS: dict[Proto, Callable[[], WireProtocol]] = {
    Proto.KAFKA: _kafka,
    Proto.AMQP: _amqp,
    Proto.MQTT: _mqtt,
}
if set(_LOADERS) != set(Proto):  # a Proto without its protocol object fails at import
    raise TypeError(f"no protocol object for {sorted(set(Proto) - set(_LOADERS))}")
_LOADED: dict[Proto, WireProtocol] = {}


def protocol_for(proto: Proto | str) -> WireProtocol:
    """The protocol object of `proto` ("kafka", "amqp", "mqtt"); ValueError for anything else."""
    key = Proto(proto)
    protocol = _LOADED.get(key)
    if protocol is None:
        protocol = _LOADED[key] = _LOADERS[key]()
    return protocol


class _Registry(Mapping[Proto, WireProtocol]):
    """`PROTOCOLS`: every protocol object by its `Proto`, each loaded when first looked up."""

    def __getitem__(self, proto: Proto) -> WireProtocol:
        if proto not in _LOADERS:
            raise KeyError(proto)
        return protocol_for(proto)

    def __iter__(self) -> Iterator[Proto]:
        return iter(_LOADERS)

    def __len__(self) -> int:
        return len(_LOADERS)


PROTOCOLS: Mapping[Proto, WireProtocol] = _Registry()

_BY_NAME = {"KAFKA": Proto.KAFKA, "AMQP": Proto.AMQP, "MQTT": Proto.MQTT}


def __getattr__(name: str) -> Any:
    """KAFKA, AMQP, MQTT and their classes, loaded on first use (PEP 562)."""
    if name in _BY_NAME:
        return protocol_for(_BY_NAME[name])
    if name.endswith("Protocol") and name.removesuffix("Protocol").upper() in _BY_NAME:
        return type(protocol_for(_BY_NAME[name.removesuffix("Protocol").upper()]))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_KINDS: dict[tuple[str, Role], ClientKind] = {}  # one object per kind: the index keeps many


def client_kind(proto: Proto, summary: Mapping[str, Any]) -> ClientKind:
    """A recorded client frame's kind for the end-of-run report: its label, and its role
    (`WireProtocol.role`): behaviour never sent is a miss; liveness (sent on a clock) and a
    closing handshake (how a client tears down is not behaviour; closing acks that depend on
    what was served are settled by the session) are exempt from "unused".
    Called for every recorded client frame when a cassette opens for serving (those whose
    summary was seen before are answered from the reader's memo): kept cheap."""
    protocol = _LOADED.get(proto) or protocol_for(proto)
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
