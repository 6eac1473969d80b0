"""Kafka API keys, names and header shapes: the one list the decoder, the correlation tracker,
the redactor and the address rewriter share (each used to keep its own)."""

from __future__ import annotations

import struct

from kio.schema.index import api_key_map

PRODUCE, FETCH, LIST_OFFSETS, METADATA, OFFSET_COMMIT, OFFSET_FETCH = 0, 1, 2, 3, 8, 9
FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 10, 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS, SASL_HANDSHAKE, API_VERSIONS, CREATE_TOPICS = 15, 16, 17, 18, 19
DESCRIBE_CONFIGS, DESCRIBE_CLUSTER, DESCRIBE_TOPIC_PARTITIONS = 32, 60, 75
GET_TELEMETRY_SUBSCRIPTIONS, PUSH_TELEMETRY = 71, 72
ALTER_CONFIGS, SASL_AUTHENTICATE, CREATE_DELEGATION_TOKEN = 33, 36, 38
RENEW_DELEGATION_TOKEN, EXPIRE_DELEGATION_TOKEN, DESCRIBE_DELEGATION_TOKEN = 39, 40, 41
INCREMENTAL_ALTER_CONFIGS, ALTER_USER_SCRAM_CREDENTIALS, ENVELOPE = 44, 51, 58
DELETE_TOPICS, DELETE_RECORDS, ADD_PARTITIONS_TO_TXN, ADD_OFFSETS_TO_TXN = 20, 21, 24, 25
END_TXN, TXN_OFFSET_COMMIT = 26, 28

#: Kafka's own API names (ApiVersions, SaslAuthenticate, ...), from kio's key -> module map.
API_NAMES = {key: name.title().replace("_", "") for key, name in api_key_map.items()}

#: The `api` of a SASL token sent without a Kafka header (after SaslHandshake v0), either way.
SASL_RAW_TOKEN = "SaslRawToken"

#: Every frame starts with its size (int32, not counting itself).
SIZE = struct.Struct(">i")
#: Every request header version starts with api key, api version, correlation id (after the size).
REQUEST_HEAD = struct.Struct(">hhi")
#: Bytes of a request frame up to and including its correlation id.
REQUEST_HEAD_BYTES = SIZE.size + REQUEST_HEAD.size
#: Bytes of a response frame up to and including its correlation id (size, correlation id): all a
#: stream rewriter needs to see to pair a response with its request.
RESPONSE_HEAD_BYTES = 8


def api_name(api_key: int) -> str:
    return API_NAMES.get(api_key, f"Unknown{api_key}")


def request_key(raw: bytes) -> tuple[int, int, int]:
    """(api key, api version, correlation id) of a size-prefixed request frame (>= 12 bytes)."""
    return REQUEST_HEAD.unpack_from(raw, 4)


def response_correlation_id(raw: bytes) -> int:
    """The correlation id of a size-prefixed response frame (>= 8 bytes)."""
    return SIZE.unpack_from(raw, 4)[0]
