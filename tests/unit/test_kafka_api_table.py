"""The fake broker's Kafka API handling is one table keyed by the named API keys
(rr.protocols.kafka.apis), as franz-go's kfake registers one handler per key: what each API is
(liveness, repeatable, closing) is read from it, never from a set of raw integers."""

from __future__ import annotations

from rrlab.rr.protocols.kafka import apis
from rrlab.rr.protocols.kafka import session as kafka_session
from rrlab.rr.protocols.kafka.session import APIS, CLOSING_APIS, LIVENESS_APIS, Session, rule_for

#: API key -> its constant's name, for the constants named after their API
NAMED = {
    value: name
    for name, value in vars(apis).items()
    if type(value) is int and name.title().replace("_", "") == apis.api_name(value)
}


def test_every_key_of_the_table_is_a_named_api_constant():
    assert set(APIS) <= set(NAMED)
    assert not hasattr(kafka_session, "REPEATABLE")


def test_the_table_says_what_each_api_is():
    repeatable = {NAMED[k] for k, rule in APIS.items() if rule.repeatable}
    assert repeatable == {
        "LIST_OFFSETS", "METADATA", "OFFSET_FETCH", "FIND_COORDINATOR", "JOIN_GROUP",
        "SYNC_GROUP", "DESCRIBE_GROUPS", "LIST_GROUPS", "API_VERSIONS", "CREATE_TOPICS",
        "DESCRIBE_CONFIGS", "DESCRIBE_CLUSTER", "GET_TELEMETRY_SUBSCRIPTIONS", "PUSH_TELEMETRY",
        "DESCRIBE_TOPIC_PARTITIONS",
    }  # fmt: skip
    assert LIVENESS_APIS == {
        "Heartbeat", "Metadata", "ApiVersions", "Fetch", "OffsetCommit", "FindCoordinator",
        "GetTelemetrySubscriptions", "PushTelemetry",
    }  # fmt: skip
    assert CLOSING_APIS == {"LeaveGroup"}
    assert rule_for(apis.PRODUCE).handle is Session._produce
    assert rule_for(apis.FETCH).handle is Session._fetch
    assert rule_for(apis.SASL_HANDSHAKE).handle is Session._control  # not in the table
    synthesized = {NAMED[k] for k, rule in APIS.items() if rule.unrecorded is not None}
    assert synthesized == {"METADATA", "OFFSET_COMMIT", "HEARTBEAT", "LEAVE_GROUP"}
