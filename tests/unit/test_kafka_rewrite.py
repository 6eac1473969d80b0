"""Kafka address rewriting and ApiVersions capping on real kio entities, encoded and decoded."""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.static.primitive import i16, i32

from rrlab.rr.cassette import CassetteWriter
from rrlab.rr.codecs import Direction
from rrlab.rr.protocols.kafka.codec import decode_response_body, encode_request, encode_response
from rrlab.rr.protocols.kafka.rewrite import (
    NodeMap,
    RewriteError,
    cap_api_versions,
    needs_rewrite,
    parseable_range,
    response_correlation_id,
    rewrite_response,
)
from rrlab.rr.record import RecordingBroken, recorder_for

UPSTREAM = [(1, "broker-a.internal", 9092), (2, "broker-b.internal", 9093), (3, "10.0.0.7", 9094)]
ZERO = datetime.timedelta(0)


def make(cls: type, **values: Any) -> Any:
    """Build `cls` from the subset of `values` it has fields for (fields differ by version)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def encode(api_key: int, version: int, body: Any) -> bytes:
    return encode_response(api_key, version, 77, body)


def nested(api: str, version: int, name: str) -> type:
    return getattr(importlib.import_module(f"kio.schema.{api}.v{version}.response"), name)


def roundtrip(api_key: int, version: int, body: Any, node_map: NodeMap) -> tuple[Any, int]:
    raw = encode(api_key, version, body)
    result = rewrite_response(raw, api_key, version, node_map)
    assert response_correlation_id(result.raw) == 77
    return decode_response_body(api_key, version, result.raw), result.addresses


@pytest.mark.parametrize("version", [0, 1, 4, 8, 9, 10, 12, 13])
def test_metadata_brokers_rewritten_all_versions(version: int) -> None:
    cls = load_response_schema(3, version)
    broker_cls = nested("metadata", version, "MetadataResponseBroker")
    brokers = tuple(
        make(broker_cls, node_id=i32(n), host=h, port=i32(p), rack=None) for n, h, p in UPSTREAM
    )
    body = make(
        cls,
        throttle_time=ZERO,
        brokers=brokers,
        cluster_id="c1",
        controller_id=i32(1),
        topics=(),
        error_code=ErrorCode.none,
    )
    node_map = NodeMap(base_port=19093)
    decoded, n = roundtrip(3, version, body, node_map)
    assert n == 3
    assert [(b.node_id, b.host, b.port) for b in decoded.brokers] == [
        (1, "127.0.0.1", 19093),
        (2, "127.0.0.1", 19094),
        (3, "127.0.0.1", 19095),
    ]
    assert [(x.upstream_host, x.upstream_port, x.listen_port) for x in node_map.nodes] == [
        (h, p, 19093 + i) for i, (_, h, p) in enumerate(UPSTREAM)
    ]


def test_metadata_same_address_same_port_and_rewrite_is_idempotent() -> None:
    node_map = NodeMap(base_port=30000)
    cls = load_response_schema(3, 12)
    broker_cls = nested("metadata", 12, "MetadataResponseBroker")
    body = make(
        cls,
        throttle_time=ZERO,
        brokers=(broker_cls(node_id=i32(5), host="h", port=i32(1)),),
        topics=(),
    )
    first, n1 = roundtrip(3, 12, body, node_map)
    again, n2 = roundtrip(3, 12, body, node_map)
    assert (n1, n2) == (1, 1)
    assert first == again
    assert first.brokers[0].port == 30000
    assert len(node_map.nodes) == 1 and node_map.nodes[0].node_ids == (5,)
    # a fresh map (the next run) allocates the same port for the same discovery order
    assert roundtrip(3, 12, body, NodeMap(base_port=30000)) == (first, 1)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_find_coordinator_single_v0_to_v3(version: int) -> None:
    cls = load_response_schema(10, version)
    node_map = NodeMap(base_port=19093)
    node_map.port_for("broker-a.internal", 9092, 1)  # already discovered through Metadata
    body = make(
        cls,
        throttle_time=ZERO,
        error_code=ErrorCode.none,
        error_message=None,
        node_id=i32(2),
        host="broker-b.internal",
        port=i32(9093),
    )
    decoded, n = roundtrip(10, version, body, node_map)
    assert n == 1
    assert (decoded.node_id, decoded.host, decoded.port) == (2, "127.0.0.1", 19094)


@pytest.mark.parametrize("version", [4, 5, 6])
def test_find_coordinator_array_v4_plus(version: int) -> None:
    cls = load_response_schema(10, version)
    coord_cls = nested("find_coordinator", version, "Coordinator")
    coords = tuple(
        make(
            coord_cls,
            key=f"group-{n}",
            node_id=i32(n),
            host=h,
            port=i32(p),
            error_code=ErrorCode.none,
            error_message=None,
        )
        for n, h, p in UPSTREAM
    )
    body = make(cls, throttle_time=ZERO, coordinators=coords)
    decoded, n = roundtrip(10, version, body, NodeMap(base_port=19093))
    assert n == 3
    assert [(c.key, c.host, c.port) for c in decoded.coordinators] == [
        ("group-1", "127.0.0.1", 19093),
        ("group-2", "127.0.0.1", 19094),
        ("group-3", "127.0.0.1", 19095),
    ]


@pytest.mark.parametrize("version", [0, 1, 2])
def test_describe_cluster_brokers(version: int) -> None:
    cls = load_response_schema(60, version)
    broker_cls = nested("describe_cluster", version, "DescribeClusterBroker")
    brokers = tuple(
        make(broker_cls, broker_id=i32(n), host=h, port=i32(p), rack="r1", is_fenced=False)
        for n, h, p in UPSTREAM
    )
    body = make(cls, throttle_time=ZERO, error_code=ErrorCode.none, cluster_id="c", brokers=brokers)
    node_map = NodeMap(base_port=21000)
    decoded, n = roundtrip(60, version, body, node_map)
    assert n == 3
    assert [(b.broker_id, b.host, b.port, b.rack) for b in decoded.brokers] == [
        (1, "127.0.0.1", 21000, "r1"),
        (2, "127.0.0.1", 21001, "r1"),
        (3, "127.0.0.1", 21002, "r1"),
    ]
    assert [n.node_ids for n in node_map.nodes] == [(1,), (2,), (3,)]


def test_produce_kip951_node_endpoints_and_plain_produce() -> None:
    assert not needs_rewrite(0, 9)  # no node endpoints before v10: streamed through
    assert needs_rewrite(0, 10) and needs_rewrite(1, 16) and needs_rewrite(3, 0)
    cls = load_response_schema(0, 10)
    ep_cls = nested("produce", 10, "NodeEndpoint")
    body = make(
        cls,
        responses=(),
        throttle_time=ZERO,
        node_endpoints=(ep_cls(node_id=i32(2), host="broker-b.internal", port=i32(9093)),),
    )
    decoded, n = roundtrip(0, 10, body, NodeMap(base_port=19093))
    assert n == 1
    assert (decoded.node_endpoints[0].host, decoded.node_endpoints[0].port) == ("127.0.0.1", 19093)
    # without endpoints (the usual case) the frame is forwarded byte for byte
    plain = dataclasses.replace(body, node_endpoints=())
    raw = encode(0, 10, plain)
    assert rewrite_response(raw, 0, 10, NodeMap()).raw == raw


def test_new_node_callback_runs_once_per_address_in_order() -> None:
    seen = []
    node_map = NodeMap(base_port=19093, on_new=seen.append)
    for host, port in [("a", 1), ("b", 2), ("a", 1), ("c", 3)]:
        node_map.port_for(host, port)
    assert [(n.upstream_host, n.listen_port) for n in seen] == [
        ("a", 19093),
        ("b", 19094),
        ("c", 19095),
    ]


def api_versions_body(version: int, entries: list[tuple[int, int, int]], error=ErrorCode.none):
    cls = load_response_schema(18, version)
    entry_cls = nested("api_versions", version, "ApiVersion")
    keys = tuple(
        entry_cls(api_key=i16(k), min_version=i16(a), max_version=i16(b)) for k, a, b in entries
    )
    return make(cls, error_code=error, api_keys=keys, throttle_time=ZERO)


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_api_versions_capped_to_kio(version: int) -> None:
    # Produce 0-99 (kio knows a contiguous subrange), an api key kio does not know, Metadata 0-13.
    body = api_versions_body(version, [(0, 0, 99), (9999, 0, 3), (3, 0, 13)])
    raw = encode(18, version, body)
    result = rewrite_response(raw, 18, version, NodeMap())
    assert result.api_versions_capped == 2
    decoded = decode_response_body(18, version, result.raw)
    got = {e.api_key: (e.min_version, e.max_version) for e in decoded.api_keys}
    assert got == {0: parseable_range(0, 0, 99), 3: (0, 13)}
    lo, hi = got[0]
    for v in range(lo, hi + 1):  # every advertised version is parseable both ways
        assert load_response_schema(0, v) is not None


def test_api_versions_header_is_v0_even_when_flexible() -> None:
    body = api_versions_body(3, [(3, 0, 12), (9999, 0, 1)])
    raw = rewrite_response(encode(18, 3, body), 18, 3, NodeMap()).raw
    # header v0: correlation id then straight into the body (error code), no tagged-field byte
    assert raw[4:8] == (77).to_bytes(4, "big")
    assert raw[8:10] == b"\0\0"


def test_api_versions_unsupported_version_answer_in_v0_format() -> None:
    # Client asked for v4, broker only knows v3: it answers UNSUPPORTED_VERSION in v0 format.
    body = api_versions_body(0, [(18, 0, 3), (9999, 0, 1)], error=ErrorCode.unsupported_version)
    raw = encode(18, 0, body)
    result = rewrite_response(raw, 18, 4, NodeMap())
    decoded = decode_response_body(18, 0, result.raw)
    assert decoded.error_code == ErrorCode.unsupported_version
    assert [(e.api_key, e.min_version, e.max_version) for e in decoded.api_keys] == [(18, 0, 3)]


def test_cap_leaves_parseable_response_alone() -> None:
    body = api_versions_body(3, [(3, 0, 12)])
    assert cap_api_versions(body) == (body, 0)
    raw = encode(18, 3, body)
    assert rewrite_response(raw, 18, 3, NodeMap()).raw == raw


def test_flexible_response_keeps_header_v1_after_rewrite() -> None:
    cls = load_response_schema(3, 12)
    broker_cls = nested("metadata", 12, "MetadataResponseBroker")
    brokers = (broker_cls(node_id=i32(1), host="h", port=i32(1)),)
    body = make(cls, throttle_time=ZERO, brokers=brokers, topics=())
    raw = rewrite_response(encode(3, 12, body), 3, 12, NodeMap()).raw
    assert raw[4:8] == (77).to_bytes(4, "big")
    assert raw[8] == 0  # header v1: the (empty) tagged-field count, then the body
    assert decode_response_body(3, 12, raw).brokers[0].host == "127.0.0.1"


# Frames declaring absurd array lengths. kio 0.6.5's native reader reserves memory for the
# declared count first and aborts the whole process ("memory allocation of N bytes failed") when
# that fails: a 5-byte compact-array varint (~2^35 items) always does; an int32 count of 2^31-1
# does on a machine with less than 16 GB to spare. Run in a child so an abort shows as a signal.
_HUGE_FRAMES = r"""
import struct
from rrlab.rr.protocols.kafka.rewrite import NodeMap, RewriteError, rewrite_response

def frame(body):
    return struct.pack(">i", len(body)) + body

CID, PAD = struct.pack(">i", 7), bytes(64)
HUGE_COMPACT = bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x7F])  # uvarint 2^35 - 1
HUGE_INT32 = struct.pack(">i", 2**31 - 1)
cases = {
    # header v1 (tagged fields), throttle time, brokers compact array
    "metadata v12": (3, 12, frame(CID + b"\0" + bytes(4) + HUGE_COMPACT + PAD)),
    # header v0, brokers int32 array
    "metadata v1": (3, 1, frame(CID + HUGE_INT32 + PAD)),
    # header v0 even though the body is flexible: error code, api_keys compact array
    "api_versions v3": (18, 3, frame(CID + bytes(2) + HUGE_COMPACT + PAD)),
    "api_versions v0": (18, 0, frame(CID + bytes(2) + HUGE_INT32 + PAD)),
}
for name, (api_key, version, raw) in cases.items():
    try:
        rewrite_response(raw, api_key, version, NodeMap())
    except RewriteError as err:
        print(name, "|", err, flush=True)
    else:
        print(name, "| decoded?!", flush=True)
"""


def test_huge_declared_lengths_are_a_rewrite_error_not_an_abort() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _HUGE_FRAMES], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"child died ({proc.returncode}): {proc.stderr[-800:]}"
    results = dict(line.split(" | ", 1) for line in proc.stdout.splitlines())
    assert set(results) == {"metadata v12", "metadata v1", "api_versions v3", "api_versions v0"}
    for name, message in results.items():
        assert "items in" in message, (name, message)  # the bounds walk refused it, not kio


def test_unrewritable_response_is_never_forwarded(tmp_path: Path) -> None:
    """The stream rewriter refuses (RecordingBroken) rather than pass on an unread address."""
    events = []
    writer = CassetteWriter.create(tmp_path / "c")
    conn = writer.open_connection("kafka", "127.0.0.1:1", "127.0.0.1:2")
    rec = recorder_for(
        writer, conn, "kafka", node_map=NodeMap(base_port=40000), on_rewrite=events.append
    )
    rewriter = rec.rewriter
    request = make(
        load_request_schema(3, 12),
        topics=None,
        include_topic_authorized_operations=False,
        allow_auto_topic_creation=False,
    )
    rec.feed(Direction.C2S, encode_request(3, 12, 9, "c", request))
    # a Metadata v12 response whose brokers array claims ~2^35 entries
    body = (9).to_bytes(4, "big") + b"\0" + bytes(4) + b"\xff\xff\xff\xff\x7f" + bytes(64)
    sent = []
    with pytest.raises(RecordingBroken, match="Metadata|api 3 v12"):
        rec.feed(Direction.S2C, len(body).to_bytes(4, "big") + body, sent.append)
    assert sent == []  # not one byte of it reached the client
    assert rewriter.failed and "correlation id 9" in rewriter.failed
    assert [(e.api_key, e.version, bool(e.error)) for e in events] == [(3, 12, True)]
    rec.close("recording stopped")
    writer.finalize()


def test_unknown_version_of_an_address_api_is_held_not_streamed() -> None:
    assert needs_rewrite(3, 999)  # Metadata, a version kio does not know: held (and refused)
    assert not needs_rewrite(12, 999)  # Heartbeat never names an address: streams through
    with pytest.raises(RewriteError, match="no kio schema"):
        rewrite_response(b"\0\0\0\x04\0\0\0\x01", 3, 999, NodeMap())


def test_node_map_tells_new_nodes_and_ids_learnt_later() -> None:
    """The proxy writes the manifest's node map from these calls as nodes are discovered."""
    new: list[tuple[str, int, int, tuple[int, ...]]] = []
    ids: list[tuple[int, int]] = []
    node_map = NodeMap(
        base_port=30000,
        on_new=lambda n: new.append((n.upstream_host, n.upstream_port, n.listen_port, n.node_ids)),
        on_new_id=lambda n, node_id: ids.append((n.listen_port, node_id)),
    )
    assert node_map.port_for("b1", 9092) == 30000  # e.g. a coordinator named without its id
    assert node_map.port_for("b1", 9092, node_id=7) == 30000  # Metadata gives the id later
    assert node_map.port_for("b1", 9092, node_id=7) == 30000  # already known: no call
    assert node_map.port_for("b2", 9092, node_id=8) == 30001
    assert new == [("b1", 9092, 30000, ()), ("b2", 9092, 30001, (8,))]
    assert ids == [(30000, 7)]


def test_the_same_api_versions_answer_is_decoded_and_capped_once(monkeypatch) -> None:
    # Every client connection asks ApiVersions and the broker answers the same bytes (but for
    # the correlation id): the capped frame is made once, and each answer keeps its own id.
    from rrlab.rr.protocols.kafka import rewrite as rewrite_module

    body = api_versions_body(3, [(0, 0, 99), (9999, 0, 3), (3, 0, 13), (500, 1, 2)])
    first = encode_response(18, 3, 41, body)
    second = encode_response(18, 3, 42, body)
    decodes = []
    real = rewrite_module._decode
    monkeypatch.setattr(rewrite_module, "_decode", lambda *a: decodes.append(a[1:]) or real(*a))
    one = rewrite_response(first, 18, 3, NodeMap())
    two = rewrite_response(second, 18, 3, NodeMap())
    assert decodes == [(18, 3)]
    assert (one.api_versions_capped, two.api_versions_capped) == (3, 3)
    assert response_correlation_id(one.raw) == 41 and response_correlation_id(two.raw) == 42
    assert one.raw[8:] == two.raw[8:]
    assert int.from_bytes(two.raw[:4], "big") == len(two.raw) - 4
    expected = rewrite_module._encode(second, 18, 3, cap_api_versions(body)[0])
    assert two.raw == expected
