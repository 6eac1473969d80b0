"""Scheduling is not behaviour: in transcript order, a live client's acks of concurrent
deliveries (Basic.Ack, Basic.Nack, Basic.Reject) match the recorded ack of the same delivery
tag wherever it stands in the recorded connection, and its other messages keep their recorded
order among themselves, whatever acks are still to come: MQTT's ack lanes, for AMQP. (Lookup
mode matches every message by key in any order already.)"""

from __future__ import annotations

from . import normalize as norm
from .transcript import Step, Transcript

#: client methods that settle a delivery, by its delivery tag
ACKS = frozenset({"Basic.Ack", "Basic.Nack", "Basic.Reject"})


def transcript_step(tr: Transcript, message: norm.Message, key: bytes) -> Step | None:
    """The recorded step a live message matches in transcript order, or None: the next one;
    for an ack, the unused ack with its key (channel, delivery tag, flags) anywhere; for any
    other message, the next unused step that is not an ack."""
    step = tr.upcoming()
    if step is None or tr.key(step) == key:
        return step
    if message.name in ACKS:
        return tr.earliest(key)
    for later in tr.unused():
        if later.message.name not in ACKS:
            return later if tr.key(later) == key else None
    return None
