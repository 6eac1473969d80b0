"""What a recorded AMQP client frame stands for when the live command never sent it: the one
place that says which methods are behaviour (`rr.replay.recording.Role`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rrlab.rr.replay.recording import Role

from . import normalize as norm

#: Client methods that are what the command did: messages published and settled, consumers
#: started, queues and exchanges declared and bound. Content frames (header, body) follow
#: their Basic.Publish, which is the one named when it never came.
BEHAVIOUR = frozenset(
    {
        "Basic.Publish",
        "Basic.Ack",
        "Basic.Nack",
        "Basic.Reject",
        "Basic.Consume",
        "Queue.Declare",
        "Queue.Bind",
        "Queue.Unbind",
        "Exchange.Declare",
        "Exchange.Bind",
        "Exchange.Unbind",
        "Tx.Commit",
    }
)


def client_role(summary: Mapping[str, Any]) -> Role:
    if norm.is_liveness(summary):
        return Role.LIVENESS
    if norm.is_closing(summary):
        return Role.CLOSING
    if summary.get("method") in BEHAVIOUR:
        return Role.BEHAVIOUR
    return Role.SETUP
