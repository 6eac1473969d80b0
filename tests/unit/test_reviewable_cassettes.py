"""Reviewable cassettes (issue L): frame lines hold no clock and no counter (format 2, times in
frames.timing; format 3, the bytes in frames.raw too), formats 1 and 2 are still read and `rrlab
migrate` rewrites them, `rrlab diff A B` compares
two cassettes frame by frame, and `inspect --payload text` shows Kafka records of any codec."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import canonicaljson
import pytest
from test_kafka_compression import client_batch, produce, values

from rrlab import cli
from rrlab.rr.canonical import dumps, dumps_line
from rrlab.rr.cassette import (
    CassetteReader,
    CassetteWriter,
    DigestMismatch,
    MalformedFrame,
    verify,
)
from rrlab.rr.cassette.format import FORMAT_V1, FORMAT_V2
from rrlab.rr.cassette.writer import TIMING_HOLD
from rrlab.rr.codecs.base import Direction, Proto
from rrlab.rr.protocols import decoder_for
from rrlab.rr.protocols.kafka.codec import decode_response_body, encode_response

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def only_cassette_commands(monkeypatch):
    modules = {"inspect": "rrlab.cassette_cli", "migrate": "rrlab.cassette_cli"}
    monkeypatch.setattr(cli, "SUBCOMMANDS", {**modules, "diff": "rrlab.diff_cli"})


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def clock(step_ns: int):
    t = [0]

    def now() -> int:
        t[0] += step_ns
        return t[0]

    return now


def mqtt_publish(topic: str, payload: bytes, packet_id: int = 1) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode() + packet_id.to_bytes(2, "big") + payload
    return bytes([0x32, len(body)]) + body


MQTT_CONNECT = bytes.fromhex("101000044d5154540402003c0004636c6931")


def record_session(path, *, step_ns=1_000_000, value=b'{"n":1}', extra=False, codec="none"):
    """A Kafka Produce (a real kafka-python batch) and an MQTT session, through the writer."""
    w = CassetteWriter.create(path, clock_ns=clock(step_ns))
    w.add_route("kafka", "127.0.0.1:19092", "127.0.0.1:9092")
    w.add_route("mqtt", "127.0.0.1:11883", "127.0.0.1:1883")
    kafka = w.open_connection("kafka", "127.0.0.1:19092", "127.0.0.1:9092")
    mqtt = w.open_connection("mqtt", "127.0.0.1:11883", "127.0.0.1:1883")
    frames = [(kafka, Direction.C2S, produce(client_batch(codec)))]
    frames.append((mqtt, Direction.C2S, MQTT_CONNECT))
    frames.append((mqtt, Direction.C2S, mqtt_publish("t", value)))
    if extra:
        frames.append((mqtt, Direction.C2S, mqtt_publish("t", b"again", 2)))
    decoders = {kafka: decoder_for("kafka"), mqtt: decoder_for("mqtt")}
    for conn, direction, raw in frames:
        proto = Proto.KAFKA if conn == kafka else Proto.MQTT
        w.write_frame(conn, direction, proto, decoders[conn].decode(direction, raw).summary, raw)
    w.finalize()
    return path


# -- format 2 --------------------------------------------------------------------------------


def test_rerecording_at_another_pace_changes_no_frame_line(tmp_path):
    a = record_session(tmp_path / "a", step_ns=1_000_000)
    b = record_session(tmp_path / "b", step_ns=7_777_777)
    assert (a / "frames.jsonl").read_bytes() == (b / "frames.jsonl").read_bytes()
    assert (a / "frames.timing").read_bytes() != (b / "frames.timing").read_bytes()
    assert (a / "frames.raw").read_bytes() == (b / "frames.raw").read_bytes()
    assert b"t_us" not in (a / "frames.jsonl").read_bytes()
    times = [f.t_us for f in CassetteReader.open(b).frames()]  # what --pace replays
    assert times == [7777, 15555, 23333]


def test_a_frame_that_changed_size_changes_its_own_line_only(tmp_path):
    """Format 3 lines give each frame's size, not where its bytes start: a re-recording whose
    one frame grew shows that frame's line changed, and no other."""
    a = record_session(tmp_path / "a")
    b = record_session(tmp_path / "b", value=b'{"n":1000}')
    lines_a = (a / "frames.jsonl").read_bytes().splitlines()
    lines_b = (b / "frames.jsonl").read_bytes().splitlines()
    assert [i for i, (x, y) in enumerate(zip(lines_a, lines_b, strict=True)) if x != y] == [2]
    assert b'"size":' in lines_b[2] and b'"raw"' not in lines_b[2]
    assert [f.seq for f in CassetteReader.open(b).frames()] == [0, 1, 2]


def test_timing_file_is_covered_by_the_digest(tmp_path):
    path = record_session(tmp_path / "c")
    timing = path / "frames.timing"
    timing.write_bytes(timing.read_bytes().replace(b"1000\n", b"9000\n", 1))
    with pytest.raises(DigestMismatch, match="frames.timing"):
        CassetteReader.open(path)
    with pytest.raises(DigestMismatch, match="frames.timing"):
        verify(path)


def test_one_time_per_frame_line(tmp_path):
    path = record_session(tmp_path / "c")
    times = b"".join((path / "frames.timing").read_bytes().splitlines(keepends=True)[:2])
    (path / "frames.timing").write_bytes(times)
    doc = json.loads((path / "cassette.json").read_bytes())
    doc["timing_file"].update(bytes=len(times), sha256=hashlib.sha256(times).hexdigest())
    (path / "cassette.json").write_bytes(dumps(doc))
    with pytest.raises(MalformedFrame, match="2 times for 3 frames"):
        CassetteReader.open(path)
    with pytest.raises(MalformedFrame, match="2 times for 3 frames"):
        verify(path)


def test_crashed_recording_repairs_with_one_time_per_frame(tmp_path):
    path = tmp_path / "c"
    w = CassetteWriter.create(path, clock_ns=clock(2000))
    conn = w.open_connection("mqtt", "127.0.0.1:11883", "127.0.0.1:1883")
    for _ in range(3):
        w.write_frame(conn, "c2s", "mqtt", {"packet": "PINGREQ"}, b"\xc0\x00")
    w._write_timing()  # the held times reach the file (as when TIMING_HOLD bytes are held)
    os.close(w._fd)  # the process dies: its files close, its lock goes
    w._lock.release()
    with open(path / "frames.timing", "ab") as fh:  # a time written, its frame line not (crash)
        fh.write(b"8\n")
    report = verify(path, repair=True)
    assert report.repaired and report.frames == 3
    assert (path / "frames.timing").read_bytes() == b"2\n4\n6\n"
    assert CassetteReader.open(path).manifest.format == "rrlab.cassette/3"
    assert verify(path).frames == 3


def test_crash_with_times_held_keeps_every_frame_and_the_last_time_written(tmp_path):
    """Times are written a few KiB at a time: a crash loses the pacing of the frames after the
    last write, never a frame (each gets the time before it)."""
    path = tmp_path / "c"
    w = CassetteWriter.create(path, clock_ns=clock(2000))
    conn = w.open_connection("mqtt", "127.0.0.1:11883", "127.0.0.1:1883")
    w.write_frame(conn, "c2s", "mqtt", {"packet": "PINGREQ"}, b"\xc0\x00")
    w._write_timing()
    for _ in range(2):
        w.write_frame(conn, "c2s", "mqtt", {"packet": "PINGREQ"}, b"\xc0\x00")
    assert (path / "frames.timing").read_bytes() == b"2\n"  # two times held
    os.close(w._fd)  # the process dies with them
    w._lock.release()
    report = verify(path, repair=True)
    assert report.repaired and report.frames == 3
    assert (path / "frames.timing").read_bytes() == b"2\n2\n2\n"
    assert verify(path).frames == 3


def test_times_are_written_a_few_kib_at_a_time_and_all_by_finalize(tmp_path):
    path = tmp_path / "c"
    w = CassetteWriter.create(path, clock_ns=clock(2000))
    conn = w.open_connection("mqtt", "127.0.0.1:11883", "127.0.0.1:1883")
    frames = [({"packet": "PINGREQ"}, b"\xc0\x00", False)] * 10
    written = []
    for _ in range(TIMING_HOLD):
        w.write_frames(conn, "c2s", "mqtt", frames)
        written.append((path / "frames.timing").stat().st_size)
    assert written[0] == 0 and 0 < written[-1] <= len(written) * 10 * 8
    assert len(set(written)) < len(written) // 10  # far fewer writes than batches
    manifest = w.finalize()
    times = (path / "frames.timing").read_bytes()
    assert times.count(b"\n") == manifest.frame_count == 10 * TIMING_HOLD
    assert verify(path).frames == manifest.frame_count


def write_v1(src, dest):
    """`src` (format 3) as format 1 wrote it: seq and t_us in every line, no timing file."""
    dest.mkdir()
    (dest / "artifacts").mkdir()
    with CassetteReader.open(src) as reader:
        lines = b"".join(dumps_line(f.to_dict(timed=True)) for f in reader.frames())
        doc = reader.manifest.to_dict()
    del doc["timing_file"], doc["raw_file"]
    doc["format"] = FORMAT_V1
    doc["frames_file"].update(bytes=len(lines), sha256=hashlib.sha256(lines).hexdigest())
    (dest / "frames.jsonl").write_bytes(lines)
    (dest / "cassette.json").write_bytes(dumps(doc))
    return dest


def write_v2(src, dest):
    """`src` (format 3) as format 2 wrote it: the base64 of each frame in its line, no
    frames.raw."""
    dest.mkdir()
    (dest / "artifacts").mkdir()
    with CassetteReader.open(src) as reader:
        lines = b"".join(dumps_line(f.to_dict()) for f in reader.frames())
        doc = reader.manifest.to_dict()
    del doc["raw_file"]
    doc["format"] = FORMAT_V2
    doc["frames_file"].update(bytes=len(lines), sha256=hashlib.sha256(lines).hexdigest())
    (dest / "frames.jsonl").write_bytes(lines)
    (dest / "frames.timing").write_bytes((src / "frames.timing").read_bytes())
    (dest / ".gitattributes").write_bytes(b"frames.timing -diff\n")
    (dest / "cassette.json").write_bytes(dumps(doc))
    return dest


@pytest.mark.parametrize(("old", "write_old"), [("1", write_v1), ("2", write_v2)])
def test_old_formats_are_read_and_migrated(tmp_path, capsys, old, write_old):
    v3 = record_session(tmp_path / "v3")
    older = write_old(v3, tmp_path / "old")
    text = (older / "frames.jsonl").read_bytes()
    assert b'"raw":"' in text and (b'"t_us":1000' in text) == (old == "1")
    assert not (older / "frames.raw").exists()
    before = [(f.seq, f.t_us, f.raw, f.summary) for f in CassetteReader.open(older).frames()]
    assert before == [(f.seq, f.t_us, f.raw, f.summary) for f in CassetteReader.open(v3).frames()]
    assert verify(older).frames == 3
    code, out, _ = run(capsys, "migrate", older)
    assert code == 0 and f"rrlab.cassette/{old} -> rrlab.cassette/3" in out
    after = [(f.seq, f.t_us, f.raw, f.summary) for f in CassetteReader.open(older).frames()]
    assert after == before
    names = ("frames.jsonl", "frames.raw", "frames.timing", ".gitattributes", "cassette.json")
    for name in names:  # byte for byte what recording it today writes
        assert (older / name).read_bytes() == (v3 / name).read_bytes(), name
    assert verify(older).frames == 3
    code, out, _ = run(capsys, "migrate", older)
    assert code == 0 and "already rrlab.cassette/3" in out
    code, _, err = run(capsys, "migrate", tmp_path / "nope")
    assert code == 2 and "rrlab migrate" in err


# -- rrlab diff --------------------------------------------------------------------------------


def test_diff_of_the_same_behaviour_is_equal(tmp_path, capsys):
    a = record_session(tmp_path / "a", step_ns=1_000_000)
    b = record_session(tmp_path / "b", step_ns=3_000_000)
    code, out, err = run(capsys, "diff", a, b)
    assert (code, err) == (0, "")
    assert "same: 3 frames compare equal" in out


def test_diff_names_the_decoded_field_that_changed(tmp_path, capsys):
    a = record_session(tmp_path / "a")
    b = record_session(tmp_path / "b", value=b'{"n":2}', extra=True, codec="zstd")
    code, out, _ = run(capsys, "diff", a, b)
    assert code == 1
    assert "conn 2 -> PUBLISH: changed (seq 2 / 2)" in out
    assert "payload.n: 1 -> 2" in out  # the MQTT payload as JSON, not bytes
    assert "conn 2 -> PUBLISH: added (seq - / 3)" in out
    # the Kafka batch's bytes differ (zstd), its records do not: no Produce line
    assert "Produce" not in out
    assert "1 frames changed, 0 only in A, 1 only in B" in out

    code, out, _ = run(capsys, "diff", a, b, "--json")
    body = out.encode().rstrip(b"\n")
    doc = json.loads(body)
    assert body == canonicaljson.encode_canonical_json(doc)
    assert doc["equal"] is False
    changed = [f for f in doc["frames"] if f["change"] == "changed"]
    assert changed[0]["fields"] == [{"a": 1, "b": 2, "path": "payload.n"}]

    code, out, _ = run(capsys, "diff", a, b, "--ignore-field", "payload.n")
    assert code == 1 and "payload.n" not in out and "added" in out


def test_diff_compares_kafka_records_by_value(tmp_path, capsys):
    a = record_session(tmp_path / "a")
    b = tmp_path / "b"
    w = CassetteWriter.create(b, clock_ns=clock(1000))
    w.add_route("kafka", "127.0.0.1:19092", "127.0.0.1:9092")
    w.add_route("mqtt", "127.0.0.1:11883", "127.0.0.1:1883")
    kafka = w.open_connection("kafka", "127.0.0.1:19092", "127.0.0.1:9092")
    mqtt = w.open_connection("mqtt", "127.0.0.1:11883", "127.0.0.1:1883")
    plain = bytearray(client_batch("none"))
    at = plain.index(b'{"n":5,')
    plain[at + 5] = ord("7")  # record 5's value: {"n":7,...}
    batch = bytes(plain)
    for conn, proto, raw in (
        (kafka, Proto.KAFKA, produce(batch)),
        (mqtt, Proto.MQTT, MQTT_CONNECT),
        (mqtt, Proto.MQTT, mqtt_publish("t", b'{"n":1}')),
    ):
        summary = decoder_for(proto).decode(Direction.C2S, raw).summary
        w.write_frame(conn, "c2s", proto, summary, raw)
    w.finalize()
    code, out, _ = run(capsys, "diff", a, b)
    assert code == 1
    assert "conn 1 -> Produce v9: changed" in out
    assert "records[5].value.n: 5 -> 7" in out


def test_diff_bad_input_exits_2(tmp_path, capsys):
    a = record_session(tmp_path / "a")
    code, _, err = run(capsys, "diff", a, tmp_path / "missing")
    assert code == 2 and "rrlab diff" in err
    code, _, err = run(capsys, "diff", a, a, "--ignore-field", "items[0].id")
    assert code == 2 and "no index" in err


# -- inspect --payload text --------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_inspect_text_shows_kafka_records(tmp_path, capsys, codec):
    path = record_session(tmp_path / "c", codec=codec)
    code, out, _ = run(capsys, "inspect", path, "--api", "Produce", "--payload", "text")
    assert code == 0
    assert "record orders[0] offset 3 timestamp 1700000000003" in out
    assert "key: k3" in out and "header seq: 3" in out
    assert f"value: {values()[3].decode()}" in out
    assert out.count("  value: ") == len(values())
    assert "0x0000:" not in out  # no hex dump of the batch


def test_diff_takes_the_kafka_api_list_as_a_set(tmp_path, capsys):
    """Tansu lists ApiVersions in a new order every run: not a difference; a changed range is."""
    with CassetteReader.open(ROOT / "cassettes" / "worker-kafka-tansu") as reader:
        request, answer = list(reader.frames_for(1))[:2]
    body = decode_response_body(18, 4, answer.raw)
    shuffled = dataclasses.replace(body, api_keys=tuple(reversed(body.api_keys)))
    first = body.api_keys[0]
    narrower = dataclasses.replace(
        body,
        api_keys=(dataclasses.replace(first, max_version=first.min_version), *body.api_keys[1:]),
    )
    paths = []
    for name, entity in (("a", body), ("b", shuffled), ("c", narrower)):
        w = CassetteWriter.create(tmp_path / name)
        w.add_route("kafka", "127.0.0.1:19092", "127.0.0.1:9092")
        conn = w.open_connection("kafka", "127.0.0.1:19092", "127.0.0.1:9092")
        w.write_frame(conn, "c2s", "kafka", request.summary, request.raw)
        raw = encode_response(18, 4, 1, entity)
        w.write_frame(conn, "s2c", "kafka", answer.summary, raw)
        w.finalize()
        paths.append(tmp_path / name)
    assert run(capsys, "diff", paths[0], paths[1])[0] == 0
    code, out, _ = run(capsys, "diff", paths[0], paths[2])
    assert code == 1 and f"max_version: {first.max_version} -> {first.min_version}" in out
