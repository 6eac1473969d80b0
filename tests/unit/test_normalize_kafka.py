"""rr.protocols.kafka.normalize and the replayer's Kafka response builder, on real kio entities
and on the committed cassettes."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest
from kio.index import load_request_schema
from kio.schema.errors import ErrorCode
from kio.schema.index import api_key_map, schema_name_map
from kio.static.constants import EntityType

from rrlab.rr.cassette import CassetteReader
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import decoder_for
from rrlab.rr.protocols.kafka import normalize as norm
from rrlab.rr.protocols.kafka.build import blank, item_cls, with_errors
from rrlab.rr.protocols.kafka.codec import decode_response_body, encode_response, response_schema

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"


def _requests(name: str):
    decoder = decoder_for(Proto.KAFKA)
    for frame in CassetteReader.open(CASSETTES / name).frames():
        decoded = decoder.decode(frame.dir, frame.raw)
        if frame.dir is Direction.C2S and decoded.body is not None:
            yield decoded.summary, decoded.body


def test_keys_of_a_recording_are_stable_and_ignore_client_software():
    """Decoding the same cassette twice gives the same keys; ApiVersions' KIP-511 client
    software fields and every timeout do not count."""
    first = [
        norm.request_key(s["api_key"], s["version"], b) for s, b in _requests("worker-kafka-tansu")
    ]
    second = [
        norm.request_key(s["api_key"], s["version"], b) for s, b in _requests("worker-kafka-tansu")
    ]
    assert first == second and len(first) > 5
    summary, body = next(
        (s, b) for s, b in _requests("worker-kafka-tansu") if s["api"] == "ApiVersions"
    )
    other = dataclasses.replace(
        body, client_software_name="someone-else", client_software_version="9.9"
    )
    assert norm.request_key(18, summary["version"], body) == norm.request_key(
        18, summary["version"], other
    )
    summary, body = next(
        (s, b) for s, b in _requests("worker-kafka-tansu") if s["api"] == "CreateTopics"
    )
    slower = dataclasses.replace(body, timeout=datetime.timedelta(seconds=99))
    assert norm.request_key(19, summary["version"], body) == norm.request_key(
        19, summary["version"], slower
    )


def test_a_changed_topic_changes_the_key_and_the_diff_names_it():
    summary, body = next(
        (s, b) for s, b in _requests("worker-kafka-tansu") if s["api"] == "CreateTopics"
    )
    topic = body.topics[0]
    renamed = dataclasses.replace(body, topics=(dataclasses.replace(topic, name="other"),))
    v = summary["version"]
    assert norm.request_key(19, v, body) != norm.request_key(19, v, renamed)
    diff = norm.view_diff(norm.request_view(19, body), norm.request_view(19, renamed))
    assert diff == [f'topics[0].name: recorded "{topic.name}" live "other"']


def test_sasl_authenticate_matches_any_credential():
    cls = load_request_schema(36, 2)
    a = blank(cls, auth_bytes=b"\x00user\x00rrlab-redacted")
    b = blank(cls, auth_bytes=b"\x00user\x00the-real-password")
    assert norm.request_key(36, 2, a) == norm.request_key(36, 2, b)


def test_record_diff_is_field_level_and_honours_ignore_rules():
    rec = norm.RecordFace(b"k", b'{"n":17,"ts":1}', (("seq", b"17"),))
    live = norm.RecordFace(b"k", b'{"n":18,"ts":2}', (("seq", b"17"),))
    where = "Produce topic t partition 0 record 17"
    assert norm.record_diff(where, rec, live) == [
        f"{where} value.n: recorded 17 live 18",
        f"{where} value.ts: recorded 1 live 2",
    ]
    assert norm.record_diff(where, rec, live, ignore_fields=["ts"]) == [
        f"{where} value.n: recorded 17 live 18"
    ]
    assert norm.record_diff(where, rec, live, ignore_fields=["value.ts"]) == [
        f"{where} value.n: recorded 17 live 18"
    ]
    other_header = norm.RecordFace(b"k", rec.value, (("seq", b"18"),))
    assert norm.record_diff(where, rec, other_header) == [
        f"{where} headers.seq: recorded 17 live 18"
    ]
    assert norm.record_diff(where, rec, other_header, ignore_headers=["seq"]) == []
    assert norm.record_diff(where, rec, other_header, ignore_fields=["headers.seq"]) == []


def test_record_key_ignores_headers_keys_and_json_fields_by_path():
    """The log model's record key: bytes without rules, the view without the ignored paths
    with them; headers compare by name in any order."""
    a = norm.RecordFace(b"id-1", b'{"n":1,"trace":{"id":"x"}}', (("a", b"1"), ("t", b"p")))
    b = norm.RecordFace(b"id-2", b'{"n":1,"trace":{"id":"y"}}', (("t", b"q"), ("a", b"1")))
    assert norm.record_key(a) != norm.record_key(b)
    rules = norm.record_rules(["key", "trace.id"], ["t"])
    assert norm.record_key(a, rules) == norm.record_key(b, rules)
    half = norm.record_rules(["key", "trace.id"])
    assert norm.record_key(a, half) != norm.record_key(b, half)
    swapped = norm.RecordFace(a.key, a.value, tuple(reversed(a.headers)))
    assert norm.record_key(a) == norm.record_key(swapped)
    spaced = norm.RecordFace(a.key, b'{"n": 1, "trace": {"id": "x"}}', a.headers)
    assert norm.record_key(a) != norm.record_key(spaced)  # bytes, when no rule reaches in
    assert norm.record_diff("r", a, spaced) == ["r value: same value, different bytes"]


def test_record_lists_are_crossed_like_every_protocols():
    """`items.id` drops `id` in every element of `items` (rr.diff's one list rule)."""
    rec = norm.RecordFace(None, b'{"items":[{"id":1,"n":1},{"id":2,"n":2}]}', ())
    live = norm.RecordFace(None, b'{"items":[{"id":7,"n":1},{"id":8,"n":2}]}', ())
    assert norm.record_diff("r", rec, live) == [
        "r value.items[0].id: recorded 1 live 7",
        "r value.items[1].id: recorded 2 live 8",
    ]
    assert norm.record_diff("r", rec, live, ignore_fields=["items.id"]) == []
    rules = norm.record_rules(["items.id"])
    assert norm.record_key(rec, rules) == norm.record_key(live, rules)


def _response_schemas():
    for key, name in api_key_map.items():
        for version, kinds in schema_name_map.get(name, {}).items():
            if EntityType.response in kinds:
                yield key, version


@pytest.mark.parametrize("api_key,version", list(_response_schemas()))
def test_blank_builds_every_response_kio_knows(api_key, version):
    """Synthesized answers (heartbeats, errors) encode and decode for every API and version."""
    cls = response_schema(api_key, version)
    entity = with_errors(blank(cls), ErrorCode.unknown_server_error)
    raw = encode_response(api_key, version, 42, entity)
    assert decode_response_body(api_key, version, raw) == entity
    if any(f.name == "error_code" for f in dataclasses.fields(cls)):
        assert entity.error_code is ErrorCode.unknown_server_error


def test_item_cls_finds_nested_entities():
    cls = response_schema(0, 9)
    topic = item_cls(cls, "responses")
    assert item_cls(topic, "partition_responses").__name__ == "PartitionProduceResponse"


def test_a_part_no_ignore_path_reaches_still_compares_by_bytes():
    a = norm.RecordFace(b"k", b'{"n":1}', (("t", b"1"),))
    b = norm.RecordFace(b"k", b'{"n": 1}', (("t", b"2"),))
    headers = norm.record_rules(ignore_headers=["t"])
    assert norm.record_key(a, headers) != norm.record_key(b, headers)  # value bytes differ
    both = norm.record_rules(["value.x"], ["t"])
    assert norm.record_key(a, both) == norm.record_key(b, both)  # the value, as a value
