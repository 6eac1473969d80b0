"""Scheduling is not behaviour: in transcript order, each channel of a connection is a lane of
its own (a worker's threads share a socket, and how their channels' messages interleave on it
is the scheduler's), and a live client's acks of concurrent deliveries (Basic.Ack, Basic.Nack,
Basic.Reject) match the recorded ack of the same delivery tag wherever it stands in its
channel; the other messages of a channel keep their recorded order among themselves, whatever
acks are still to come: MQTT's ack lanes, for AMQP. (Lookup mode matches every message by key
in any order already.)"""

from __future__ import annotations

from . import normalize as norm
from .transcript import Step, Transcript

#: client methods that settle a delivery, by its delivery tag
ACKS = frozenset({"Basic.Ack", "Basic.Nack", "Basic.Reject"})


def transcript_step(tr: Transcript, message: norm.Message, key: bytes) -> Step | None:
    """The recorded step a live message matches in transcript order, or None: the next one;
    for an ack, the unused ack with its key (channel, delivery tag, flags) anywhere; for any
    other message, the next unused step of its channel that is not an ack."""
    step = tr.upcoming()
    if step is None or tr.key(step) == key:
        return step
    if message.name in ACKS:
        return tr.earliest(key)
    step = channel_next(tr, message.channel)
    return step if step is not None and tr.key(step) == key else None


def channel_next(tr: Transcript, channel: int, name: str = "") -> Step | None:
    """The next unused recorded step of a channel that is not an ack (what a live message on
    that channel is compared with in transcript order); for an ack (`name`), its next ack."""
    ack = name in ACKS
    for later in tr.unused():
        if later.message.channel == channel and (later.message.name in ACKS) == ack:
            return later
    return None
