"""What a recorded Kafka request stands for when the live command never sent it: the one place
that says which APIs are behaviour (`rr.replay.recording.Role`). Liveness and closing come from
the API table (`session.APIS`): OffsetCommit is there as liveness, because auto-commit runs on a
clock and the frame alone does not tell a client's own commit from it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rrlab.rr.replay.recording import Role

from .apis import (
    ADD_OFFSETS_TO_TXN,
    ADD_PARTITIONS_TO_TXN,
    CREATE_TOPICS,
    DELETE_RECORDS,
    DELETE_TOPICS,
    END_TXN,
    JOIN_GROUP,
    PRODUCE,
    TXN_OFFSET_COMMIT,
    api_name,
)
from .session import is_closing, is_liveness

#: Requests that are what the command did: records produced, topics made or removed, a
#: consumer group joined (subscribing), transactions.
BEHAVIOUR = frozenset(
    api_name(key)
    for key in (
        PRODUCE,
        CREATE_TOPICS,
        JOIN_GROUP,
        DELETE_TOPICS,
        DELETE_RECORDS,
        ADD_PARTITIONS_TO_TXN,
        ADD_OFFSETS_TO_TXN,
        END_TXN,
        TXN_OFFSET_COMMIT,
    )
)


def client_role(summary: Mapping[str, Any]) -> Role:
    if is_liveness(summary):  # type: ignore[arg-type]
        return Role.LIVENESS
    if is_closing(summary):  # type: ignore[arg-type]
        return Role.CLOSING
    if summary.get("api") in BEHAVIOUR:
        return Role.BEHAVIOUR
    return Role.SETUP
