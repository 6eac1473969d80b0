"""Every Kafka (API, version) a real broker we record from accepts and kio can parse, through
every stage: the proxy's summary, redaction and address rewrite, the cassette (written, then
read back), the replay's partition-log model and group state, and the fake broker's answer.

The matrix is generated, never listed: the versions come from kio's schemas intersected with
the ranges Apache Kafka and Tansu advertise (tests/fixtures/kafka-api-versions.json, captured
from the real brokers by `python -m rrlab.brokers.kafka_versions`), so a new kio release or a broker
upgrade extends it. Each pair records one exchange (a request and a response built from kio's
schema with sample values, records included for Produce and Fetch) on its own connection, the
way `rrlab proxy` does (`rr.record.recorder_for` with a node map); all pairs share one cassette,
which the fake broker's session serves to a live request over a `Link` without sockets.
"""

from __future__ import annotations

import dataclasses
import struct
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kafka_samples import record_batch, sample
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.index import api_key_map, schema_name_map
from kio.static.constants import EntityType
from kio.static.primitive import i16
from replay_playbook import run_at_once

from rrlab.brokers import kafka_versions
from rrlab.replayer.report import ReplayReport
from rrlab.rr.cassette import CassetteWriter
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import client_kind
from rrlab.rr.protocols.kafka import session as kafka_replay
from rrlab.rr.protocols.kafka.apis import (
    API_VERSIONS,
    FETCH,
    PRODUCE,
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
    api_name,
    response_correlation_id,
)
from rrlab.rr.protocols.kafka.build import item_cls
from rrlab.rr.protocols.kafka.codec import decode_response_any, encode_request, encode_response
from rrlab.rr.protocols.kafka.fields import has_field
from rrlab.rr.protocols.kafka.rewrite import NodeMap, advertises_addresses, parseable_range
from rrlab.rr.record import recorder_for
from rrlab.rr.replay.recording import Recording
from rrlab.rr.replay.session import Listener, PortMap, ReplayContext, ReplayOptions

C2S, S2C = Direction.C2S, Direction.S2C
ROUTE, NODE_BASE, MOVE = 19092, 19093, 1000
RECORDED_HOST, RECORDED_PORT = "broker-7.example", 9092
BASE, VALUES = 40, [b'{"n":0}', b'{"n":1}', b'{"n":2}']
SECRET = b"pw-not-in-cassette"
#: The APIs the issue names as "looked inside" by the replayer or proxy: all of them must be in
#: the matrix (every other API both brokers advertise rides along through the generic path).
REQUIRED = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 17, 18, 22, 36, 60}


def _advertised() -> dict[int, set[int]]:
    """api key -> every version Apache Kafka or Tansu advertises."""
    out: dict[int, set[int]] = {}
    for ranges in kafka_versions.load().values():
        for key, (lo, hi) in ranges.items():
            out.setdefault(key, set()).update(range(lo, hi + 1))
    return out


def _pairs() -> list[tuple[int, int]]:
    """(api key, version) advertised by a broker with both request and response in kio."""
    pairs = []
    for key, versions in sorted(_advertised().items()):
        known = schema_name_map.get(api_key_map.get(key, ""), {})
        for version in sorted(versions):
            kinds = known.get(version, {})
            if EntityType.request in kinds and EntityType.response in kinds:
                pairs.append((key, version))
    return pairs


PAIRS = _pairs()


def _topic(key: int, version: int) -> str:
    return f"t.{api_name(key)}.v{version}"


def _topic_id(key: int, version: int) -> uuid.UUID:
    return uuid.UUID(int=(key << 16) | version | (1 << 64))


def _api_keys(cls: type) -> tuple[Any, ...]:
    """An ApiVersions answer naming versions kio cannot parse (the proxy must cap them)."""
    entry = item_cls(cls, "api_keys")
    ranges = [(0, 0, 13), (1, 0, 18), (18, 0, 9), (3, 0, 13)]
    return tuple(
        dataclasses.replace(
            sample(entry, {}), api_key=i16(k), min_version=i16(lo), max_version=i16(hi)
        )
        for k, lo, hi in ranges
    )


def _hints(key: int, version: int, direction: Direction) -> dict[str, Any]:
    """Sample values that decide behaviour, by field name (the rest come from the schema)."""
    produce_request = key == PRODUCE and direction is C2S
    fetch_response = key == FETCH and direction is S2C
    records = b""
    if produce_request:
        records = record_batch(0, VALUES)  # a producer's batch starts at 0; the broker places it
    elif fetch_response:
        records = record_batch(BASE, VALUES)
    hints: dict[str, Any] = {
        "name": _topic(key, version),
        "topic": _topic(key, version),
        "topic_id": _topic_id(key, version),
        "host": RECORDED_HOST,
        "port": RECORDED_PORT,
        "node_id": 7,
        "broker_id": 7,
        "error_code": ErrorCode.none,
        "partition": 0,
        "partition_index": 0,
        "index": 0,
        "acks": -1,
        "records": records,
        "fetch_offset": BASE,
        "base_offset": BASE,
        "high_watermark": BASE + len(VALUES),
        "last_stable_offset": BASE + len(VALUES),
        "log_start_offset": 0,
        "partition_max_bytes": 1 << 20,
        "max_bytes": 1 << 20,
        "session_id": 0,
        "session_epoch": -1,
        "replica_id": -1,
        "mechanism": "PLAIN",
        "mechanisms": ("PLAIN",),
        "auth_bytes": b"\x00user\x00" + SECRET if direction is C2S else b"",
        "api_keys": _api_keys,
    }
    return hints


def _request(key: int, version: int) -> Any:
    return sample(load_request_schema(key, version), _hints(key, version, C2S))


def _response(key: int, version: int) -> Any:
    return sample(load_response_schema(key, version), _hints(key, version, S2C))


@dataclasses.dataclass
class Recorded:
    """What recording one pair gave: the frames the cassette holds, what the client saw."""

    conn: int
    summaries: dict[Direction, dict[str, Any]]
    client_saw: bytes
    raws: dict[Direction, bytes] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Matrix:
    recording: Recording
    recorded: dict[tuple[int, int], Recorded]
    raw_frames: bytes  # every recorded frame's bytes, as the cassette holds them


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> Matrix:
    """One cassette holding one exchange per pair, recorded as the proxy records."""
    path = tmp_path_factory.mktemp("matrix") / "cassette"
    writer = CassetteWriter.create(path)
    writer.add_route(Proto.KAFKA, f"127.0.0.1:{ROUTE}", f"127.0.0.1:{RECORDED_PORT}")

    def new_node(node) -> None:
        for node_id in node.node_ids:
            writer.set_kafka_node(
                node_id, f"{node.upstream_host}:{node.upstream_port}", node.listen_port
            )

    node_map = NodeMap(base_port=NODE_BASE, on_new=new_node)
    recorded = {}
    for key, version in PAIRS:
        conn = writer.open_connection(Proto.KAFKA, f"127.0.0.1:{ROUTE}", "127.0.0.1:9092")
        recorder = recorder_for(writer, conn, Proto.KAFKA, node_map=node_map)
        request = encode_request(key, version, 11, "recorded-client", _request(key, version))
        response = encode_response(key, version, 11, _response(key, version))
        recorder.feed(C2S, request)
        client_saw = recorder.feed(S2C, response)
        if (key, version) == (SASL_HANDSHAKE, 0):  # KIP-43: then SASL tokens with no header
            recorder.feed(C2S, raw_token(SECRET))
            recorder.feed(S2C, struct.pack(">i", 0))  # PLAIN's success: an empty token
        recorder.close("closed by client")
        recorded[(key, version)] = Recorded(conn, {}, client_saw)
    writer.finalize()
    recording = Recording.open(path, classify=client_kind)
    by_conn = {r.conn: r for r in recorded.values()}
    for rc in recording.conns:
        for frame in rc.frames:
            by_conn[rc.id].summaries.setdefault(frame.dir, frame.summary)
            by_conn[rc.id].raws.setdefault(frame.dir, frame.raw)
    raw = b"".join(f.raw for rc in recording.conns for f in rc.frames)
    return Matrix(recording, recorded, raw)


class FakeLink:
    """The live client as a session sees it: what it was sent, timers run at once."""

    def __init__(self, live_id: int) -> None:
        self.live_id = live_id
        self.sent = bytearray()
        self.closed = False
        self.waits: list[float] = []

    act = run_at_once  # the session's actions (rr.replay.session)

    def send(self, data: bytes) -> None:
        self.sent += data

    def close(self) -> None:
        self.closed = True

    def call_later(self, delay: float, fn: Callable[[], None]) -> Any:
        self.waits.append(delay)
        fn()
        return None

    def frames(self) -> list[bytes]:
        out, data = [], bytes(self.sent)
        while data:
            size = struct.unpack_from(">i", data)[0] + 4
            out.append(data[:size])
            data = data[size:]
        return out


def _context(matrix: Matrix) -> ReplayContext:
    """The fake broker's context for the matrix cassette (listeners moved by MOVE)."""
    recording = Recording.open(matrix.recording.path, classify=client_kind)
    moves = {port: port + MOVE for _proto, port in recording.listeners()}
    ctx = ReplayContext(recording, ReplayOptions(), ReplayReport(), PortMap(moves))
    kafka_replay.prepare(ctx)
    return ctx


@pytest.fixture(scope="module")
def served(matrix) -> ReplayContext:
    return _context(matrix)


@pytest.fixture(scope="module")
def served_for_misses(matrix) -> ReplayContext:
    """A second fake broker: the matrix test above moves the produce logs' cursors."""
    return _context(matrix)


def _serve(ctx: ReplayContext, *raws: bytes) -> tuple[FakeLink, int]:
    """One live connection sending `raws`; the link and how many misses it caused."""
    link = FakeLink(ctx.next_live_id())
    listener = Listener(Proto.KAFKA, ROUTE, ROUTE + MOVE)
    session = kafka_replay.Session(ctx, listener, link)
    before = ctx.report.miss_count
    for raw in raws:
        session.on_frame(raw)
    return link, ctx.report.miss_count - before


def raw_token(password: bytes) -> bytes:
    """A SASL PLAIN token as sent after a SaslHandshake v0: size prefix, no Kafka header."""
    token = b"\x00user\x00" + password
    return struct.pack(">i", len(token)) + token


def _addresses(entity: Any) -> list[tuple[str, int]]:
    """Every (host, port) in a decoded response, at any depth."""
    out = []
    if dataclasses.is_dataclass(entity):
        names = {f.name for f in dataclasses.fields(entity)}
        if {"host", "port"} <= names:
            out.append((entity.host, int(entity.port)))
        for name in names:
            out += _addresses(getattr(entity, name))
    elif isinstance(entity, tuple):
        for item in entity:
            out += _addresses(item)
    return out


def test_the_matrix_covers_every_api_the_replayer_or_proxy_reads():
    keys = {key for key, _v in PAIRS}
    assert REQUIRED <= keys, f"missing from the matrix: {sorted(REQUIRED - keys)}"
    fetch = [v for key, v in PAIRS if key == FETCH]
    produce = [v for key, v in PAIRS if key == PRODUCE]
    assert min(fetch) == 4 and min(produce) == 3  # the oldest Kafka 4 accepts and kio reads
    assert len(PAIRS) > 200


@pytest.mark.parametrize(("key", "version"), PAIRS, ids=[f"{api_name(k)}-v{v}" for k, v in PAIRS])
def test_version_through_record_and_replay(matrix, served, key, version):
    rec = matrix.recorded[(key, version)]
    name = api_name(key)

    # proxy: summaries of both frames read the version, nothing undecoded
    for direction in (C2S, S2C):
        summary = rec.summaries[direction]
        assert summary["api"] == name and summary["version"] == version, summary
        assert "error" not in summary, summary
    if key in (PRODUCE, FETCH):
        side = C2S if key == PRODUCE else S2C
        counts = [p["count"] for p in rec.summaries[side]["records"]]
        assert counts == [len(VALUES)], rec.summaries[side]

    # proxy: what the client saw names no real broker address, and ApiVersions is capped
    seen, _answered = decode_response_any(key, version, rec.client_saw)
    if advertises_addresses(key, version):
        hosts = _addresses(seen)
        assert hosts and all(h == ("127.0.0.1", NODE_BASE) for h in hosts), hosts
    if key == API_VERSIONS:
        for entry in seen.api_keys:
            lo, hi = int(entry.min_version), int(entry.max_version)
            assert parseable_range(int(entry.api_key), lo, hi) == (lo, hi), entry

    # replay: the partition-log model learnt the recorded records and offsets
    ctx = served
    world = ctx.shared[Proto.KAFKA]
    topic = str(_topic_id(key, version)) if version >= 13 else _topic(key, version)
    if key == PRODUCE:
        log = world.produce[(topic, 0)]
        assert list(log.offsets) == [BASE + n for n in range(len(VALUES))]
        part_cls = item_cls(item_cls(load_response_schema(key, version), "responses"),
                            "partition_responses")  # fmt: skip
        assert log.log_start_offset == (0 if has_field(part_cls, "log_start_offset") else -1)
    if key == FETCH:
        log = world.fetch[(topic, 0)]
        assert log.bases == [BASE] and log.high_watermark == BASE + len(VALUES)

    # replay: a live client sending the same request (its own correlation and client id) gets
    # what the recorded client got, with its correlation id, the moved listener port in addresses
    live = encode_request(key, version, 4242, "live-client", _request(key, version))
    tokens = [raw_token(b"another-pw")] if (key, version) == (SASL_HANDSHAKE, 0) else []
    link, missed = _serve(ctx, live, *tokens)
    assert missed == 0, ctx.report.misses[-1].line()
    assert not link.closed
    answer, *after = link.frames()
    assert after == [struct.pack(">i", 0)] * len(tokens)  # the recorded server token
    assert response_correlation_id(answer) == 4242
    got, _answered = decode_response_any(key, version, answer)
    if key == PRODUCE:
        (topic_answer,) = got.responses
        (part,) = topic_answer.partition_responses
        assert (part.error_code, int(part.base_offset)) == (ErrorCode.none, BASE)
    elif key == FETCH:
        (topic_answer,) = got.responses
        (part,) = topic_answer.partitions
        assert bytes(part.records) == record_batch(BASE, VALUES)
        assert int(part.high_watermark) == BASE + len(VALUES)
    else:  # the recorded answer (credentials redacted in it), addresses moved with the listeners
        expected, _ = decode_response_any(key, version, rec.raws[S2C])
        if advertises_addresses(key, version):
            expected = _moved(expected)
            assert all(port == NODE_BASE + MOVE for _h, port in _addresses(got))
        assert got == expected


def _moved(entity: Any) -> Any:
    """`entity` with every advertised port moved by MOVE (what a moved fake broker serves)."""
    if dataclasses.is_dataclass(entity):
        changes = {}
        names = {f.name for f in dataclasses.fields(entity)}
        for name in names:
            value = getattr(entity, name)
            if name == "port" and "host" in names:
                changes[name] = type(value)(int(value) + MOVE)
            elif isinstance(value, tuple) or dataclasses.is_dataclass(value):
                changes[name] = _moved(value)
        return dataclasses.replace(entity, **changes)
    if isinstance(entity, tuple):
        return tuple(_moved(item) for item in entity)
    return entity


PRODUCE_VERSIONS = [v for key, v in PAIRS if key == PRODUCE]


@pytest.mark.parametrize("version", PRODUCE_VERSIONS, ids=[f"v{v}" for v in PRODUCE_VERSIONS])
def test_a_changed_record_is_a_miss_naming_the_field_in_every_produce_version(
    served_for_misses, version
):
    ctx = served_for_misses
    request = _request(PRODUCE, version)
    (topic,) = request.topic_data
    (part,) = topic.partition_data
    changed = [VALUES[0], b'{"n":17}', VALUES[2]]
    part = dataclasses.replace(part, records=record_batch(0, changed))
    topic = dataclasses.replace(topic, partition_data=(part,))
    request = dataclasses.replace(request, topic_data=(topic,))
    link, missed = _serve(ctx, encode_request(PRODUCE, version, 9, "live", request))
    assert missed == 1
    miss = ctx.report.misses[-1]
    assert any("value.n: recorded 1 live 17" in line for line in miss.diff), miss.line()
    (answer,) = link.frames()
    got, _ = decode_response_any(PRODUCE, version, answer)
    assert got.responses[0].partition_responses[0].error_code == ErrorCode.invalid_record


def test_no_credential_reaches_the_cassette_in_any_sasl_authenticate_version(matrix):
    versions = [v for key, v in PAIRS if key == SASL_AUTHENTICATE]
    assert versions
    assert SECRET not in matrix.raw_frames
    for version in versions:
        summary = matrix.recorded[(SASL_AUTHENTICATE, version)].summaries[C2S]
        assert summary.get("redacted"), summary
