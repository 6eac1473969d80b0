"""What a recorded MQTT client packet stands for when the live command never sent it: the one
place that says which packets are behaviour (`rr.replay.recording.Role`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rrlab.rr.replay.recording import Role

from . import normalize as norm

#: Client packets that are what the command did: messages published, subscriptions made and
#: dropped, and the acks of messages (theirs and the broker's).
BEHAVIOUR = frozenset(
    {"PUBLISH", "SUBSCRIBE", "UNSUBSCRIBE", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP"}
)


def client_role(summary: Mapping[str, Any]) -> Role:
    if summary.get("packet") in norm.LIVENESS:
        return Role.LIVENESS
    if norm.is_closing(summary):  # type: ignore[arg-type]
        return Role.CLOSING
    if summary.get("packet") in BEHAVIOUR:
        return Role.BEHAVIOUR
    return Role.SETUP
