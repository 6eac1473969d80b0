"""ConnectionRecorder: any chunking of a stream gives the same frames on disk and on the wire;
Kafka responses that need rewriting are held and replaced, all other bytes stream through."""

from __future__ import annotations

import dataclasses
import datetime
import struct
from pathlib import Path
from typing import Any

import pamqp.commands
import pamqp.frame
import pytest
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.static.primitive import i16, i32

from rrlab.rr.cassette import CassetteReader, CassetteWriter, verify
from rrlab.rr.codecs import Direction
from rrlab.rr.policy import BudgetExceeded, Budgets
from rrlab.rr.protocols.kafka.codec import encode_request, encode_response
from rrlab.rr.protocols.kafka.rewrite import NodeMap
from rrlab.rr.record import ConnectionRecorder, RecordingBroken, recorder_for

C2S, S2C = Direction.C2S, Direction.S2C
ZERO = datetime.timedelta(0)


def make(cls: type, **values: Any) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def nested(api_key: int, version: int, name: str) -> type:
    module = __import__(load_response_schema(api_key, version).__module__, fromlist=[name])
    return getattr(module, name)


def kafka_exchange() -> tuple[list[bytes], list[bytes]]:
    """ApiVersions v3, Metadata v12 (rewritten) and Heartbeat v4 (streamed), requests+responses."""
    reqs = [
        encode_request(
            18,
            3,
            1,
            "c",
            make(
                load_request_schema(18, 3),
                client_software_name="t",
                client_software_version="1",
            ),
        ),
        encode_request(
            3,
            12,
            2,
            "c",
            make(
                load_request_schema(3, 12),
                topics=None,
                include_topic_authorized_operations=False,
                allow_auto_topic_creation=False,
            ),
        ),
        encode_request(
            12,
            4,
            3,
            "c",
            make(
                load_request_schema(12, 4),
                group_id="g",
                generation_id=i32(1),
                member_id="m",
                group_instance_id=None,
            ),
        ),
    ]
    entry = nested(18, 3, "ApiVersion")
    api_versions = make(
        load_response_schema(18, 3),
        error_code=ErrorCode.none,
        api_keys=(
            entry(api_key=i16(3), min_version=i16(0), max_version=i16(12)),
            entry(api_key=i16(9999), min_version=i16(0), max_version=i16(1)),
        ),
        throttle_time=ZERO,
    )
    broker = nested(3, 12, "MetadataResponseBroker")
    metadata = make(
        load_response_schema(3, 12),
        throttle_time=ZERO,
        brokers=(broker(node_id=i32(7), host="kafka-7.internal", port=i32(9092)),),
        cluster_id="c",
        controller_id=i32(7),
        topics=(),
    )
    heartbeat = make(load_response_schema(12, 4), throttle_time=ZERO, error_code=ErrorCode.none)
    resps = [
        encode_response(18, 3, 1, api_versions),
        encode_response(3, 12, 2, metadata),
        encode_response(12, 4, 3, heartbeat),
    ]
    return reqs, resps


def new_recorder(tmp_path: Path, name: str, **kw: Any) -> tuple[CassetteWriter, ConnectionRecorder]:
    writer = CassetteWriter.create(tmp_path / name, budgets=kw.pop("budgets", None))
    conn = writer.open_connection("kafka", "127.0.0.1:1", "127.0.0.1:2")
    node_map = kw.pop("node_map", NodeMap(base_port=40000))
    rec = recorder_for(writer, conn, "kafka", node_map=node_map, **kw)
    return writer, rec


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 64, 10_000])
def test_kafka_any_chunking_same_frames_and_bytes(tmp_path: Path, size: int) -> None:
    reqs, resps = kafka_exchange()
    writer, rec = new_recorder(tmp_path, f"c{size}")
    c2s_out = b"".join(rec.feed(C2S, c) for c in chunks(b"".join(reqs), size))
    s2c_out = b"".join(rec.feed(S2C, c) for c in chunks(b"".join(resps), size))
    assert c2s_out == b"".join(reqs)  # requests are never changed
    rec.close("client closed")
    writer.finalize()
    verify(writer.path)
    frames = list(CassetteReader.open(writer.path).frames())
    assert [(f.dir, f.summary["api"]) for f in frames] == [
        (C2S, "ApiVersions"),
        (C2S, "Metadata"),
        (C2S, "Heartbeat"),
        (S2C, "ApiVersions"),
        (S2C, "Metadata"),
        (S2C, "Heartbeat"),
    ]
    # the client got exactly what the cassette holds (the rewritten frames)
    assert s2c_out == b"".join(f.raw for f in frames if f.dir is S2C)
    av, md, hb = (f.raw for f in frames if f.dir is S2C)
    assert hb == resps[2]  # untouched
    assert av != resps[0] and b"kafka-7.internal" in resps[1] and b"kafka-7.internal" not in md
    assert struct.unpack_from(">i", md, 0)[0] == len(md) - 4
    assert all("error" not in f.summary for f in frames)


def test_kafka_streams_untouched_responses_and_holds_the_rewritten(tmp_path: Path) -> None:
    reqs, resps = kafka_exchange()
    writer, rec = new_recorder(tmp_path, "c")
    for r in reqs:
        rec.feed(C2S, r)
    # a held response: nothing goes out until the whole frame is there
    assert rec.feed(S2C, resps[0][:20]) == b""
    first = rec.feed(S2C, resps[0][20:])
    assert first and first != resps[0]
    assert rec.feed(S2C, resps[1][:7]) == b""  # not enough to read the correlation id yet
    assert rec.feed(S2C, resps[1][7:9]) == b""  # known now: Metadata, held
    assert b"127.0.0.1" in rec.feed(S2C, resps[1][9:])
    # a streamed response: bytes leave as soon as its correlation id is known
    assert rec.feed(S2C, resps[2][:5]) == b""
    assert rec.feed(S2C, resps[2][5:9]) == resps[2][:9]
    assert rec.feed(S2C, resps[2][9:]) == resps[2][9:]
    rec.close("done")
    writer.finalize()
    assert writer.frame_count == 6


def test_node_map_is_shared_and_recorded_in_order(tmp_path: Path) -> None:
    seen = []
    node_map = NodeMap(base_port=40000, on_new=seen.append)
    reqs, resps = kafka_exchange()
    for name in ("a", "b"):
        writer, rec = new_recorder(tmp_path, name, node_map=node_map)
        for r in reqs:
            rec.feed(C2S, r)
        rec.feed(S2C, b"".join(resps))
        writer.finalize()
    assert [(n.upstream_host, n.upstream_port, n.listen_port, n.node_ids) for n in seen] == [
        ("kafka-7.internal", 9092, 40000, (7,))
    ]


def test_partial_frame_at_close_is_noted_not_written(tmp_path: Path) -> None:
    reqs, resps = kafka_exchange()
    writer, rec = new_recorder(tmp_path, "c")
    rec.feed(C2S, reqs[0])
    rec.feed(C2S, reqs[1][:10])  # client reset mid-frame
    reason = rec.close("client connection lost: reset")
    writer.finalize()
    verify(writer.path)
    assert "c2s 10 bytes of a partial frame not recorded" in reason
    manifest = CassetteReader.open(writer.path).manifest
    assert manifest.connections[0].close_reason == reason
    assert [f.summary["api"] for f in CassetteReader.open(writer.path).frames()] == ["ApiVersions"]


def test_close_lets_go_of_an_unfinished_frame(tmp_path: Path) -> None:
    """The proxy's pair and sides refer to each other, so the recorder (and a 48 MiB partial
    frame) lived on after a close until the garbage collector ran: close lets go of it."""
    writer, rec = new_recorder(tmp_path, "c")
    declared = 4 << 20
    rec.feed(C2S, struct.pack(">i", declared) + b"\x00" * 65532)
    for _ in range(8):  # a large pending frame: kept as the chunks came
        rec.feed(C2S, b"x" * 65536)
    assert rec.buffered == 9 * 65536
    reason = rec.close("client closed")
    assert f"c2s {9 * 65536} bytes of a partial frame not recorded" in reason
    assert rec.buffered == 0
    assert rec.feed(C2S, b"after") == b"after"  # passes through unrecorded, as before
    writer.finalize()
    verify(writer.path)
    assert list(CassetteReader.open(writer.path).frames()) == []


def test_framing_error_keeps_what_was_written(tmp_path: Path) -> None:
    reqs, _ = kafka_exchange()
    writer, rec = new_recorder(tmp_path, "c")
    rec.feed(C2S, reqs[0])
    with pytest.raises(RecordingBroken, match="byte offset"):
        rec.feed(C2S, b"\xff\xff\xff\xffzzzz")  # declared size -1: not Kafka
    assert rec.feed(C2S, b"more") == b"more"  # broken: bytes still pass, nothing more written
    reason = rec.close("aborted")
    writer.finalize()
    verify(writer.path)
    assert "framing error" in reason
    assert writer.frame_count == 1


def test_close_reason_says_the_cause_once(tmp_path: Path) -> None:
    """The proxy closes a broken connection with "recording stopped: <cause>": the cause was
    then appended again ("framing error: X; framing error: X", issue G.8)."""
    writer, rec = new_recorder(tmp_path, "c")
    with pytest.raises(RecordingBroken) as err:
        rec.feed(C2S, b"\xff\xff\xff\xff")
    reason = rec.close(f"recording stopped: {err.value}")
    assert reason.count("framing error") == 1 and reason.startswith("recording stopped: ")
    writer.finalize()


def test_budget_exceeded_propagates_and_cassette_stays_valid(tmp_path: Path) -> None:
    reqs, _ = kafka_exchange()
    writer, rec = new_recorder(tmp_path, "c", budgets=Budgets(max_frames=2))
    rec.feed(C2S, reqs[0] + reqs[1])
    with pytest.raises(BudgetExceeded):
        rec.feed(C2S, reqs[2])
    rec.close("budget")
    writer.finalize()
    verify(writer.path)
    assert writer.frame_count == 2


def test_amqp_passthrough_records_every_frame_any_chunking(tmp_path: Path) -> None:
    stream = b"AMQP\x00\x00\x09\x01" + b"".join(
        pamqp.frame.marshal(pamqp.commands.Basic.Publish(exchange="", routing_key=f"q{i}"), i)
        for i in range(1, 6)
    )
    writer = CassetteWriter.create(tmp_path / "a")
    conn = writer.open_connection("amqp", "127.0.0.1:1", "127.0.0.1:2")
    rec = recorder_for(writer, conn, "amqp")
    for piece in chunks(stream, 3):
        assert rec.feed(C2S, piece) is piece  # no copy, no delay
    rec.close("client closed")
    writer.finalize()
    frames = list(CassetteReader.open(writer.path).frames())
    assert len(frames) == 6
    assert b"".join(f.raw for f in frames) == stream
    assert [f.summary.get("channel") for f in frames[1:]] == [1, 2, 3, 4, 5]


def test_amqp_other_version_header_and_the_brokers_answer_pass_and_are_recorded(
    tmp_path: Path,
) -> None:
    """A client speaking another AMQP version gets the broker's own header back (then the broker
    closes), as without the proxy; both headers are in the cassette (issue G.6)."""
    writer = CassetteWriter.create(tmp_path / "a")
    conn = writer.open_connection("amqp", "127.0.0.1:1", "127.0.0.1:2")
    rec = recorder_for(writer, conn, "amqp")
    sent: list[bytes] = []
    rec.feed(C2S, b"AMQP\x00\x00\x09\x00", sent.append)
    rec.feed(S2C, b"AMQP\x00\x00\x09\x01", sent.append)
    assert sent == [b"AMQP\x00\x00\x09\x00", b"AMQP\x00\x00\x09\x01"] and rec.broken is None
    rec.close("upstream closed")
    writer.finalize()
    frames = list(CassetteReader.open(writer.path).frames())
    assert [(f.dir, f.summary["frame"], f.summary["version"]) for f in frames] == [
        (C2S, "protocol_header", [0, 9, 0]),
        (S2C, "protocol_header", [0, 9, 1]),
    ]


def test_frames_reach_the_file_before_their_bytes_are_forwarded(tmp_path: Path) -> None:
    reqs, resps = kafka_exchange()
    writer, rec = new_recorder(tmp_path, "c")
    order: list[str] = []
    real_write = writer.write_frames

    def write_frames(*args: Any, **kw: Any) -> int:
        order.append(f"write {len(args[3])}")
        return real_write(*args, **kw)

    writer.write_frames = write_frames  # type: ignore[method-assign]
    rec.feed(C2S, b"".join(reqs), lambda out: order.append(f"forward {len(out)}"))
    # one write for the chunk, then the bytes go out: a SIGKILL between loses nothing sent
    assert order == ["write 3", f"forward {len(b''.join(reqs))}"]
    order.clear()
    rec.feed(S2C, b"".join(resps), lambda out: order.append("forward"))
    assert order == ["write 3", "forward"]
    order.clear()
    rec.feed(C2S, reqs[0][:5], lambda out: order.append("forward"))  # a partial frame: no write
    assert order == ["forward"]
    writer.finalize()
    assert writer.frame_count == 6


def test_watchers_hear_of_a_chunk_after_its_bytes_went_out(tmp_path: Path) -> None:
    """Metrics (on_frames, rewrite events) do not delay the peer: they run after the forward,
    while the frames the forwarded bytes complete are in the cassette file before it."""
    reqs, resps = kafka_exchange()
    order: list[tuple[Any, ...]] = []
    writer, rec = new_recorder(
        tmp_path,
        "c",
        on_frames=lambda proto, d, frames: order.append(("told", d.value, len(frames))),
        on_rewrite=lambda ev: order.append(("rewrite event", ev.api_key)),
    )
    lines = writer.path / "frames.jsonl"

    def forward(out: bytes) -> None:
        order.append(("forward", len(out), lines.read_bytes().count(b"\n")))

    rec.feed(C2S, b"".join(reqs), forward)
    rec.feed(S2C, b"".join(resps), forward)
    rec.feed(C2S, reqs[0][:5], forward)  # completes no frame: nothing to tell
    assert order[:2] == [("forward", len(b"".join(reqs)), 3), ("told", "c2s", 3)]
    assert [o[0] for o in order[2:]] == [
        "forward",
        "rewrite event",
        "rewrite event",
        "told",
        "forward",
    ]
    assert order[2][2] == 6  # the responses' three lines were on disk before they went out
    assert order[3:6] == [("rewrite event", 18), ("rewrite event", 3), ("told", "s2c", 3)]
    writer.finalize()


def test_a_failed_chunk_still_tells_the_watchers_after_its_forward(tmp_path: Path) -> None:
    """A chunk whose recording raises (a budget used up part way) forwards its bytes and then
    tells the watchers of the frames that reached the file."""
    reqs, _ = kafka_exchange()
    order: list[tuple[Any, ...]] = []
    writer, rec = new_recorder(
        tmp_path,
        "c",
        budgets=Budgets(max_frames=2),
        on_frames=lambda proto, d, frames: order.append(("told", len(frames))),
    )
    with pytest.raises(BudgetExceeded):
        rec.feed(C2S, b"".join(reqs), lambda out: order.append(("forward", len(out))))
    assert order == [("forward", len(b"".join(reqs))), ("told", 2)]
    rec.close("budget")
    writer.finalize()


def broken_metadata(resp: bytes) -> bytes:
    """The Metadata response cut short (size prefix fixed): it frames, but cannot be rewritten."""
    body = resp[4:-6]
    return struct.pack(">i", len(body)) + body


def test_failed_rewrite_forwards_and_writes_the_frames_before_it(tmp_path: Path) -> None:
    reqs, resps = kafka_exchange()
    writer, rec = new_recorder(tmp_path, "c")
    rec.feed(C2S, b"".join(reqs))
    sent: list[bytes] = []
    chunk = resps[0] + resps[2] + broken_metadata(resps[1]) + resps[2]
    with pytest.raises(RecordingBroken, match="cannot be rewritten"):
        rec.feed(S2C, chunk, sent.append)
    assert rec.broken and "rewrite failed" in rec.broken
    _w, fresh = new_recorder(tmp_path, "fresh")
    fresh.feed(C2S, reqs[0])
    rewritten_av = fresh.feed(S2C, resps[0])
    assert rewritten_av != resps[0]
    # the rewritten ApiVersions and the streamed Heartbeat went out; nothing of the bad frame
    out = b"".join(sent)
    assert out == rewritten_av + resps[2]
    rec.close("aborted")
    writer.finalize()
    verify(writer.path)
    s2c = [f for f in CassetteReader.open(writer.path).frames() if f.dir is S2C]
    assert [f.summary["api"] for f in s2c] == ["ApiVersions", "Heartbeat"]
    assert b"".join(f.raw for f in s2c) == out  # the cassette holds what the client saw
    assert "rewrite failed" in CassetteReader.open(writer.path).manifest.connections[0].close_reason


def test_failed_rewrite_as_the_first_frame_sends_and_writes_nothing(tmp_path: Path) -> None:
    reqs, resps = kafka_exchange()
    writer, rec = new_recorder(tmp_path, "c")
    rec.feed(C2S, b"".join(reqs))
    sent: list[bytes] = []
    with pytest.raises(RecordingBroken):
        rec.feed(S2C, broken_metadata(resps[1]) + resps[2], sent.append)
    assert sent == [] and rec.broken
    writer.finalize()
    assert writer.frame_count == 3  # the requests only


def test_broken_connection_drops_the_rewritten_direction(tmp_path: Path) -> None:
    reqs, resps = kafka_exchange()
    writer, rec = new_recorder(tmp_path, "c")
    rec.feed(C2S, reqs[0])
    with pytest.raises(RecordingBroken):
        rec.feed(C2S, b"\xff\xff\xff\xffzzzz")  # a framing error breaks the connection
    sent: list[bytes] = []
    rec.feed(C2S, reqs[1], sent.append)
    assert sent == [reqs[1]]  # client bytes still pass
    # a Metadata response naming the real broker must not reach the client unrewritten
    assert rec.feed(S2C, resps[1], sent.append) == b""
    assert sent == [reqs[1]]
    rec.close("aborted")
    assert rec.feed(S2C, resps[1], sent.append) == b""  # nor after close
    writer.finalize()
    assert writer.frame_count == 1
