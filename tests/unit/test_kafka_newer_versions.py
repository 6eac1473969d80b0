"""Requests the codec cannot decode (a version newer than kio knows, an unknown API key).

A current client may open with ApiVersions v5 while kio reads v0-v4: a broker that does not
support it answers UNSUPPORTED_VERSION in the v0 layout with its ranges and the client retries.
Recorded through the proxy (rr.record, as `rrlab proxy` records: an API that carries no
credential keeps its bytes, rr.redact `undecodable_kept`), such an exchange is served again to a
request with the same bytes, correlation and client id masked, and a changed one misses naming
the byte where they first differ; one the cassette keeps as a header only (an API that may carry
a credential, an older cassette) matches by API key and version, and the report says so. Never
recorded, the fake broker answers as a broker does; any other undecodable request is a miss
naming the API and version. The live test with a real client and broker:
tests/live/test_kafka_versions_live.py.
"""

from __future__ import annotations

import struct

import pytest
from kio.schema.api_versions.v0.response import ApiVersion
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersion as ApiVersionV3
from kio.schema.api_versions.v3.response import ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.static.primitive import i16
from replay_playbook import run_at_once

from rrlab.replayer.report import ReplayReport
from rrlab.rr.cassette import CassetteWriter
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import client_kind
from rrlab.rr.protocols.kafka import session as kafka_replay
from rrlab.rr.protocols.kafka.apis import response_correlation_id
from rrlab.rr.protocols.kafka.codec import decode_response_body, encode_request, encode_response
from rrlab.rr.protocols.kafka.redact import UNDECODABLE
from rrlab.rr.record import recorder_for
from rrlab.rr.redact import PLACEHOLDER
from rrlab.rr.replay.recording import Recording
from rrlab.rr.replay.session import Listener, PortMap, ReplayContext, ReplayOptions

C2S, S2C = Direction.C2S, Direction.S2C
BROKER_RANGES = {0: (0, 13), 1: (4, 18), 3: (0, 13), 18: (0, 4)}


def api_versions_request(version: int, corr: int, client_id: str, software: str = "go") -> bytes:
    """ApiVersions of any version on the v3 layout (v4 and, for now, v5 have the same body):
    what a client newer than kio sends; kio has no v5 class to encode it."""
    body = ApiVersionsRequest(client_software_name=software, client_software_version="1.0")
    raw = bytearray(encode_request(18, 3, corr, client_id, body))
    struct.pack_into(">h", raw, 6, version)
    return bytes(raw)


def unsupported(corr: int, ranges: dict[int, tuple[int, int]]) -> bytes:
    """A broker's answer to an ApiVersions version it does not support (v0 layout)."""
    entries = tuple(
        ApiVersion(api_key=i16(k), min_version=i16(lo), max_version=i16(hi))
        for k, (lo, hi) in sorted(ranges.items())
    )
    body = ApiVersionsResponseV0(error_code=ErrorCode.unsupported_version, api_keys=entries)
    return encode_response(18, 0, corr, body)


def supported(corr: int, ranges: dict[int, tuple[int, int]]) -> bytes:
    import datetime

    entries = tuple(
        ApiVersionV3(api_key=i16(k), min_version=i16(lo), max_version=i16(hi))
        for k, (lo, hi) in sorted(ranges.items())
    )
    body = ApiVersionsResponse(
        error_code=ErrorCode.none,
        api_keys=entries,
        throttle_time=datetime.timedelta(0),
        supported_features=(),
        finalized_features_epoch=-1,
        finalized_features=(),
        zk_migration_ready=False,
    )
    return encode_response(18, 3, corr, body)


#: the ApiVersions v4 exchange a client retries with
RETRIED = (api_versions_request(4, 1, "c"), supported(1, BROKER_RANGES))


def record(path, exchanges: list[tuple[bytes, bytes]]) -> Recording:
    """One connection recorded as the proxy records it; the cassette opened for replay."""
    writer = CassetteWriter.create(path)
    writer.add_route(Proto.KAFKA, "127.0.0.1:19092", "127.0.0.1:9092")
    conn = writer.open_connection(Proto.KAFKA, "127.0.0.1:19092", "127.0.0.1:9092")
    recorder = recorder_for(writer, conn, Proto.KAFKA, node_map=None)
    for request, response in exchanges:
        recorder.feed(C2S, request)
        recorder.feed(S2C, response)
    recorder.close("closed by client")
    writer.finalize()
    return Recording.open(path, classify=client_kind)


class Link:
    def __init__(self, live_id: int) -> None:
        self.live_id = live_id
        self.sent = bytearray()
        self.closed = False

    act = run_at_once  # the session's actions (rr.replay.session)

    def send(self, data: bytes) -> None:
        self.sent += data

    def close(self) -> None:
        self.closed = True

    def call_later(self, delay, fn):
        fn()

    def take(self) -> bytes:
        data = bytes(self.sent)
        self.sent.clear()
        return data


def serve(recording: Recording) -> tuple[kafka_replay.Session, Link, ReplayContext]:
    ctx = ReplayContext(recording, ReplayOptions(), ReplayReport(), PortMap({19092: 19092}))
    kafka_replay.prepare(ctx)
    link = Link(ctx.next_live_id())
    session = kafka_replay.Session(ctx, Listener(Proto.KAFKA, 19092, 19092), link)
    return session, link, ctx


def test_a_recorded_too_new_api_versions_is_served_its_recorded_answer(tmp_path):
    sent = api_versions_request(5, 1, "go-client")
    recording = record(
        tmp_path / "c",
        [
            (sent, unsupported(1, BROKER_RANGES)),
            (api_versions_request(4, 2, "go-client"), supported(2, BROKER_RANGES)),
        ],
    )
    frames = recording.conns[0].frames
    asked = frames[0].summary
    assert (asked["api"], asked["version"], asked["correlation_id"]) == ("ApiVersions", 5, 1)
    assert "error" in asked and "redacted" not in asked  # an API without credentials: kept
    assert frames[0].raw == sent
    assert frames[1].summary["error_code"] == int(ErrorCode.unsupported_version)
    assert frames[1].summary["answered_version"] == 0

    session, link, ctx = serve(recording)
    # another correlation id and another client id (of another length): masked
    session.on_frame(api_versions_request(5, 77, "another-client-id"))
    answer = link.take()
    assert response_correlation_id(answer) == 77
    assert answer[8:] == frames[1].raw[8:]  # the recorded answer, the live id stamped in
    body = decode_response_body(18, 0, answer)
    assert body.error_code == ErrorCode.unsupported_version
    assert {int(e.api_key): (int(e.min_version), int(e.max_version)) for e in body.api_keys} == {
        **BROKER_RANGES
    }
    session.on_frame(api_versions_request(4, 78, "another-client-id"))
    retried = decode_response_body(18, 4, link.take())
    assert retried.error_code == ErrorCode.none
    assert ctx.report.miss_count == 0 and not link.closed
    assert ctx.report.tally[("kafka", "ApiVersions", "matched")] == 2
    assert recording.conns[0].used == {0, 2}  # both recorded requests consumed
    assert not ctx.report.notes  # matched by bytes, not by header only


def test_a_changed_too_new_api_versions_misses_naming_where_the_bytes_differ(tmp_path):
    """Before, only API key and version were compared: a changed request matched (false pass)."""
    recording = record(
        tmp_path / "c",
        [(api_versions_request(5, 1, "go-client", "go"), unsupported(1, BROKER_RANGES))],
    )
    session, link, ctx = serve(recording)
    live = api_versions_request(5, 9, "go-client", "gO")
    session.on_frame(live)
    assert ctx.report.miss_count == 1
    miss = ctx.report.misses[0]
    # size 4, api key/version/correlation id 8, client id 2 + 9, tagged fields 1, then the
    # software name's length (1 byte) and "g" (1): "O" is byte 26 of the live frame
    assert live[26:27] == b"O"
    assert miss.reason.startswith("ApiVersions v5 request cannot be decoded"), miss.reason
    assert "differs from every recorded ApiVersions v5 request" in miss.reason
    assert "first differs at byte 26 of the live frame (byte 26 of the recorded)" in miss.reason
    assert miss.diff == [
        "first differs at byte 26 of the live frame (byte 26 of the recorded): "
        "recorded 00 03 67|6f 04 31 2e 30 00, live 00 03 67|4f 04 31 2e 30 00"
    ]
    assert miss.closest == {"conn": recording.conns[0].id, "frame": 0}
    # answered as a broker answers a version it does not take: the client may go on
    body = decode_response_body(18, 0, link.take())
    assert body.error_code == ErrorCode.unsupported_version and not link.closed
    assert recording.conns[0].used == set()


def test_a_too_new_api_versions_sent_again_is_answered_again_only_with_the_same_bytes(tmp_path):
    """ApiVersions may repeat (a reconnect): the recorded answer is served again to the same
    bytes once the recorded request is used, never to changed ones."""
    recording = record(
        tmp_path / "c", [(api_versions_request(5, 1, "go"), unsupported(1, BROKER_RANGES))]
    )
    session, link, ctx = serve(recording)
    for corr in (2, 3):
        session.on_frame(api_versions_request(5, corr, "go"))
        assert response_correlation_id(link.take()) == corr
    assert ctx.report.tally[("kafka", "ApiVersions", "matched")] == 1
    assert ctx.report.tally[("kafka", "ApiVersions", "synthesized")] == 1
    session.on_frame(api_versions_request(5, 4, "go", "rust"))
    assert ctx.report.miss_count == 1


def test_a_changed_too_new_request_of_another_api_misses_and_closes(tmp_path):
    """Metadata v14 (kio reads v0-v13) on the v12 body: kept whole, served to the same bytes, a
    miss otherwise."""
    from kio.schema.metadata.v12.request import MetadataRequest
    from kio.schema.metadata.v12.response import MetadataResponse

    def metadata(corr: int, client_id: str, auto_create: bool) -> bytes:
        body = MetadataRequest(
            topics=None,
            allow_auto_topic_creation=auto_create,
            include_topic_authorized_operations=False,
        )
        raw = bytearray(encode_request(3, 12, corr, client_id, body))
        struct.pack_into(">h", raw, 6, 14)
        return bytes(raw)

    import datetime

    answer = MetadataResponse(
        throttle_time=datetime.timedelta(0),
        brokers=(),
        cluster_id=None,
        controller_id=-1,
        topics=(),
    )
    recorded = metadata(1, "c", True)
    # a response of a version kio cannot read is served as recorded: v12's bytes stand in
    recording = record(tmp_path / "c", [(recorded, encode_response(3, 12, 1, answer))])
    assert recording.conns[0].frames[0].raw == recorded
    session, link, ctx = serve(recording)
    session.on_frame(metadata(5, "client-7", True))
    assert response_correlation_id(link.take()) == 5 and ctx.report.miss_count == 0
    session.on_frame(metadata(6, "client-7", False))
    assert ctx.report.miss_count == 1 and link.closed and not link.sent
    reason = ctx.report.misses[0].reason
    assert reason.startswith("Metadata v14 request cannot be decoded"), reason
    # size 4, api key/version/correlation id 8, client id 2 + 8 (1 recorded), tagged fields 1,
    # topics (null) 1: allow_auto_topic_creation is byte 24 of the live frame, 17 of the recorded
    assert (
        "first differs at byte 24 of the live frame (byte 17 of the recorded): "
        "recorded 00 00|01 00 00, live 00 00|00 00 00" in reason
    )


def test_a_request_the_cassette_keeps_as_a_header_only_matches_by_header_and_says_so(tmp_path):
    """A cassette recorded before such requests were kept (the placeholder in its place):
    API key and version match, whatever the bytes; the report notes it."""
    from rrlab.rr.cassette import CassetteWriter as Writer

    path = tmp_path / "old"
    writer = Writer.create(path)
    writer.add_route(Proto.KAFKA, "127.0.0.1:19092", "127.0.0.1:9092")
    conn = writer.open_connection(Proto.KAFKA, "127.0.0.1:19092", "127.0.0.1:9092")
    placeholder = struct.pack(">i", len(PLACEHOLDER)) + PLACEHOLDER
    summary = {
        "api": "ApiVersions",
        "api_key": 18,
        "correlation_id": 1,
        "error": "no kio schema for ApiVersions v5 request",
        "redacted": [UNDECODABLE],
        "version": 5,
    }
    writer.write_frame(conn, C2S, Proto.KAFKA, summary, placeholder, redacted=True)
    answer = unsupported(1, BROKER_RANGES)
    writer.write_frame(conn, S2C, Proto.KAFKA, {"api": "ApiVersions", "correlation_id": 1}, answer)
    writer.close_connection(conn, "closed by client")
    writer.finalize()
    session, link, ctx = serve(Recording.open(path, classify=client_kind))
    session.on_frame(api_versions_request(5, 3, "any", "any software"))
    assert link.take()[8:] == answer[8:] and ctx.report.miss_count == 0
    (note,) = ctx.report.notes
    assert note.startswith("kafka ApiVersions v5 requests (not decodable) matched by API key and ")
    assert "re-record to compare their bytes" in note


def test_a_too_new_request_of_an_api_that_may_carry_a_credential_matches_by_header(tmp_path):
    """rr.redact keeps only the header of a DescribeDelegationToken newer than kio (its answer
    holds HMACs): replay matches it by API key and version, and says why."""
    version = 9
    head = struct.pack(">hhih", 40, version, 1, 1) + b"c\x00"
    recording = record(
        tmp_path / "c",
        [(struct.pack(">i", len(head) + 4) + head + b"\x01\x02\x03\x04", struct.pack(">ii", 4, 1))],
    )
    request = recording.conns[0].frames[0]
    assert request.raw.endswith(PLACEHOLDER) and request.summary["redacted"] == [UNDECODABLE]
    session, link, ctx = serve(recording)
    live_head = struct.pack(">hhih", 40, version, 8, 1) + b"c\x00"
    session.on_frame(struct.pack(">i", len(live_head) + 2) + live_head + b"\x09\x09")
    assert link.take() == struct.pack(">ii", 4, 8) and ctx.report.miss_count == 0
    (note,) = ctx.report.notes
    assert "ExpireDelegationToken may carry a credential: hmac" in note


def test_a_never_recorded_too_new_api_versions_gets_unsupported_version_with_the_ranges(tmp_path):
    recording = record(
        tmp_path / "c", [(api_versions_request(4, 1, "c"), supported(1, BROKER_RANGES))]
    )
    session, link, ctx = serve(recording)
    session.on_frame(api_versions_request(5, 9, "go-client"))
    answer = link.take()
    assert response_correlation_id(answer) == 9
    body = decode_response_body(18, 0, answer)  # the v0 layout, as Apache Kafka answers
    assert body.error_code == ErrorCode.unsupported_version
    offered = {int(e.api_key): (int(e.min_version), int(e.max_version)) for e in body.api_keys}
    assert offered == BROKER_RANGES  # what the recorded broker offered the recorded client
    session.on_frame(api_versions_request(4, 10, "go-client"))
    assert decode_response_body(18, 4, link.take()).error_code == ErrorCode.none
    assert ctx.report.miss_count == 0 and not link.closed


def test_with_no_api_versions_recorded_the_ranges_are_those_the_codec_reads(tmp_path):
    import datetime

    from kio.schema.heartbeat.v4.request import HeartbeatRequest
    from kio.schema.heartbeat.v4.response import HeartbeatResponse

    beat = HeartbeatRequest(group_id="g", generation_id=1, member_id="m", group_instance_id=None)
    answer = HeartbeatResponse(throttle_time=datetime.timedelta(0), error_code=ErrorCode.none)
    recording = record(
        tmp_path / "c", [(encode_request(12, 4, 1, "c", beat), encode_response(12, 4, 1, answer))]
    )
    session, link, _ctx = serve(recording)
    session.on_frame(api_versions_request(5, 3, "go-client"))
    body = decode_response_body(18, 0, link.take())
    offered = {int(e.api_key): (int(e.min_version), int(e.max_version)) for e in body.api_keys}
    assert offered[18] == (0, 4) and offered[1] == (4, 18)


@pytest.mark.parametrize(
    ("api", "version", "named"), [(1, 99, "Fetch v99"), (300, 0, "Unknown300 v0")]
)
def test_any_other_undecodable_request_is_a_miss_naming_api_and_version(
    tmp_path, api, version, named
):
    recording = record(
        tmp_path / "c", [(api_versions_request(4, 1, "c"), supported(1, BROKER_RANGES))]
    )
    session, link, ctx = serve(recording)
    raw = bytearray(api_versions_request(4, 5, "c"))
    struct.pack_into(">hh", raw, 4, api, version)
    session.on_frame(bytes(raw))
    assert ctx.report.miss_count == 1 and link.closed and not link.sent
    reason = ctx.report.misses[0].reason
    assert reason.startswith(f"{named} request cannot be decoded"), reason
    assert ("reads Fetch v4-v18" if api == 1 else "knows no API with key 300") in reason
