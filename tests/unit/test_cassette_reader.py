"""CassetteReader and verify: roundtrip, and every broken cassette refused with its own error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rrlab.rr.canonical import dumps
from rrlab.rr.cassette import (
    ArtifactMissing,
    CassetteNotFound,
    CassetteReader,
    CassetteWriter,
    CountMismatch,
    DigestMismatch,
    MalformedFrame,
    NotFinalized,
    RecordingInProgress,
    RepairedRefused,
    TruncatedFrames,
    UnsupportedFormat,
    verify,
)
from rrlab.rr.codecs.base import Direction, Proto
from rrlab.rr.policy import BudgetExceeded, Budgets

FRAMES = [
    (1, "c2s", "kafka", {"api": "Metadata", "version": 12, "correlation_id": 2}, b"\x00" * 40),
    (1, "s2c", "kafka", {"correlation_id": 2}, bytes(range(256))),
    (2, "c2s", "amqp", {"method": "Connection.StartOk", "channel": 0}, b"AMQP\x00", True),
    (2, "s2c", "amqp", {"method": "Connection.Tune", "channel": 0}, b"\x01\x00"),
    (1, "c2s", "kafka", {"api": "Produce", "version": 9, "correlation_id": 3}, b"p" * 1000),
]


def record(path, frames=FRAMES, finalize=True, budgets=None):
    w = CassetteWriter.create(path, budgets=budgets)
    w.add_route("kafka", "127.0.0.1:19092", "127.0.0.1:9092")
    w.add_route("amqp", "127.0.0.1:15673", "127.0.0.1:5672")
    w.open_connection("kafka", "127.0.0.1:19092", "127.0.0.1:9092")
    w.open_connection("amqp", "127.0.0.1:15673", "127.0.0.1:5672")
    for frame in frames:
        w.write_frame(*frame)
    if finalize:
        w.finalize()
    return w


def test_roundtrip(tmp_path):
    record(tmp_path / "c")
    reader = CassetteReader.open(tmp_path / "c")
    assert reader.manifest.frame_count == 5 and reader.manifest.finalized
    got = list(reader.frames())
    assert [f.seq for f in got] == [0, 1, 2, 3, 4]
    for rec, (conn, d, proto, summary, raw, *red) in zip(got, FRAMES, strict=True):
        assert (rec.conn, rec.dir, rec.proto, rec.summary, rec.raw) == (
            conn,
            Direction(d),
            Proto(proto),
            summary,
            raw,
        )
        assert rec.redacted is bool(red and red[0])
    assert [f.seq for f in reader.frames_for(1)] == [0, 1, 4]
    assert [f.seq for f in reader.frames_for(2)] == [2, 3]
    assert reader.manifest.connection(2).listen == "127.0.0.1:15673"
    report = verify(tmp_path / "c")
    assert (report.frames, report.connections, report.repaired) == (5, 2, False)
    assert "ok, 5 frames on 2 connections" in report.summary()


def test_not_found(tmp_path):
    with pytest.raises(CassetteNotFound, match="no such cassette"):
        CassetteReader.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CassetteNotFound, match="not a cassette"):
        CassetteReader.open(tmp_path / "empty")


def test_tampered_frames_refused(tmp_path):
    record(tmp_path / "c")
    frames = tmp_path / "c" / "frames.jsonl"
    frames.write_bytes(frames.read_bytes().replace(b'"version":12', b'"version":11'))
    for fn in (CassetteReader.open, verify):
        with pytest.raises(DigestMismatch) as err:
            fn(tmp_path / "c")
        assert err.value.expected != err.value.actual
        assert err.value.expected in str(err.value) and err.value.actual in str(err.value)
    with pytest.raises(DigestMismatch, match="refusing to repair a finalized cassette"):
        verify(tmp_path / "c", repair=True)


def test_tampered_artifact_refused(tmp_path):
    w = record(tmp_path / "c", finalize=False)
    src = tmp_path / "agg.json"
    src.write_text("{}")
    w.add_artifact(src, "aggregate.json")
    w.finalize()
    art = tmp_path / "c" / "artifacts" / "aggregate.json"
    art.write_text("{ }")
    with pytest.raises(DigestMismatch, match="artifacts/aggregate.json"):
        verify(tmp_path / "c")
    art.unlink()
    with pytest.raises(ArtifactMissing, match="aggregate.json"):
        verify(tmp_path / "c")


def test_wrong_version_refused(tmp_path):
    record(tmp_path / "c")
    manifest = tmp_path / "c" / "cassette.json"
    doc = json.loads(manifest.read_bytes())
    doc["format"] = "rrlab.cassette/5"
    manifest.write_bytes(dumps(doc))
    with pytest.raises(UnsupportedFormat) as err:
        CassetteReader.open(tmp_path / "c")
    assert "'rrlab.cassette/5'" in str(err.value)
    assert (
        "reads 'rrlab.cassette/4', 'rrlab.cassette/3', 'rrlab.cassette/2', 'rrlab.cassette/1'"
        in str(err.value)
    )
    with pytest.raises(UnsupportedFormat):
        verify(tmp_path / "c", repair=True)


def test_unfinalized_refused(tmp_path):
    w = record(tmp_path / "c", finalize=False)  # crash: provisional manifest only
    with pytest.raises(NotFinalized) as err:
        CassetteReader.open(tmp_path / "c")
    assert f"rrlab verify --repair {tmp_path / 'c'}" in str(err.value)
    with pytest.raises(RecordingInProgress):  # the writer still holds it
        verify(tmp_path / "c", repair=True)
    w.finalize()
    (tmp_path / "c" / "cassette.json").unlink()  # crash before the first manifest
    with pytest.raises(NotFinalized, match="cassette.json is missing"):
        verify(tmp_path / "c")


def crash(path, frames=FRAMES):
    """Record without finalize and release the writer's lock like a dead process would."""
    import os

    w = record(path, frames=frames, finalize=False)
    os.close(w._fd)
    w._lock.release()


def test_torn_line_refused_then_repaired(tmp_path):
    path = tmp_path / "c"
    crash(path)
    frames = path / "frames.jsonl"
    whole = frames.read_bytes()
    frames.write_bytes(whole + b'{"conn":1,"dir":"c2s","pro')
    with pytest.raises(NotFinalized):
        verify(path)
    report = verify(path, repair=True)
    assert report.repaired and report.frames == 5 and report.dropped_bytes == 26
    assert frames.read_bytes() == whole  # every whole line kept, nothing invented
    reader = CassetteReader.open(path)
    assert reader.manifest.repaired and reader.manifest.finalized
    assert reader.manifest.frame_count == 5
    assert reader.manifest.connection(1).upstream == "127.0.0.1:9092"
    assert [f.raw for f in reader.frames()] == [f[4] for f in FRAMES]
    assert not verify(path).repaired  # now a plain finalized cassette
    assert not verify(path, repair=True).repaired  # repairing a good one is a no-op


def test_repair_without_any_manifest(tmp_path):
    path = tmp_path / "c"
    crash(path)
    (path / "cassette.json").unlink()
    (path / "connections.jsonl").unlink()
    report = verify(path, repair=True)
    assert report.frames == 5 and report.connections == 2
    m = CassetteReader.open(path).manifest
    assert m.connection(1).listen is None  # unknown stays unknown
    assert m.protocols == ("amqp", "kafka")


def test_repair_learns_connections_from_the_journal(tmp_path):
    """The provisional manifest is not rewritten per connection: the journal tells repair."""
    path = tmp_path / "c"
    crash(path)
    journal = path / "connections.jsonl"
    journal.write_bytes(journal.read_bytes() + b'{"event":"clo')  # torn last event
    verify(path, repair=True)
    m = CassetteReader.open(path).manifest
    assert m.connection(1).listen is not None and m.connection(1).upstream == "127.0.0.1:9092"
    assert not journal.exists()


def test_torn_line_in_finalized_reader(tmp_path):
    path = tmp_path / "c"
    record(path)
    edit_frames(path, lambda b: b + b'{"seq"')  # digest recomputed: the line reader says it
    with pytest.raises(TruncatedFrames) as err:
        CassetteReader.open(path)
    assert err.value.line == 6 and "line 6" in str(err.value)


def test_malformed_middle_line_not_repaired(tmp_path):
    path = tmp_path / "c"
    crash(path)
    frames = path / "frames.jsonl"
    lines = frames.read_bytes().splitlines(keepends=True)
    lines[2] = b"garbage\n"
    frames.write_bytes(b"".join(lines))
    with pytest.raises(MalformedFrame) as err:
        verify(path, repair=True)
    assert err.value.line == 3 and "line 3" in str(err.value)


def edit_frames(path, edit):
    """Rewrite frames.jsonl through `edit` and re-seal the digests, so deeper checks are reached
    (frames.raw cut to the bytes the lines left still give sizes for)."""
    import hashlib

    frames = path / "frames.jsonl"
    data = edit(frames.read_bytes())
    frames.write_bytes(data)
    raw = path / "frames.raw"
    try:
        sizes = [json.loads(line)["size"] for line in data.splitlines()]
    except (ValueError, KeyError):
        sizes = None
    if sizes is not None and all(isinstance(n, int) and n >= 0 for n in sizes):
        raw.write_bytes(raw.read_bytes()[: sum(sizes)])
    timing = path / "frames.timing"  # one time per line still: what the manifest must catch
    times = b"".join(timing.read_bytes().splitlines(keepends=True)[: data.count(b"\n")])
    timing.write_bytes(times)
    manifest = path / "cassette.json"
    doc = json.loads(manifest.read_bytes())
    doc["frames_file"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    doc["timing_file"].update(sha256=hashlib.sha256(times).hexdigest(), bytes=len(times))
    raw_bytes = raw.read_bytes()
    doc["raw_file"].update(sha256=hashlib.sha256(raw_bytes).hexdigest(), bytes=len(raw_bytes))
    manifest.write_bytes(dumps(doc))


@pytest.mark.parametrize(
    ("edit", "error", "text", "at_open"),
    [
        (
            lambda b: b.replace(b'"summary"', b'"seq":0,"summary"', 1),
            MalformedFrame,
            r"unknown keys \['seq'\]",  # a line's seq is its place (format 2)
            True,
        ),
        (
            lambda b: b.replace(b'"conn":2', b'"conn":9'),
            MalformedFrame,
            "conn 9 not in the manifest",
            True,
        ),
        (
            lambda b: b.replace(b'"size":40,', b'"size":-40,'),
            MalformedFrame,
            "size must be a non-negative integer",
            True,
        ),
        (
            lambda b: b.replace(b'{"conn":1', b'{ "conn":1', 1),
            MalformedFrame,
            "not canonical",
            False,
        ),
        (lambda b: b.rsplit(b"\n", 2)[0] + b"\n", CountMismatch, "frame_count", False),
    ],
)
def test_verify_deep_checks(tmp_path, edit, error, text, at_open):
    """The digest alone no longer catches these (it is recomputed); opening refuses what a replay
    could not read, verify also what a recorder would not have written."""
    record(tmp_path / "c")
    edit_frames(tmp_path / "c", edit)
    if at_open:
        with pytest.raises(error, match=text):
            CassetteReader.open(tmp_path / "c")
    else:
        CassetteReader.open(tmp_path / "c")
    with pytest.raises(error, match=text):
        verify(tmp_path / "c")


@pytest.mark.parametrize(
    "budgets",
    [Budgets(max_frames=3), Budgets(max_frame_bytes=500), Budgets(max_cassette_bytes=700)],
)
def test_budget_stopped_cassette_verifies(tmp_path, budgets):
    path = tmp_path / "c"
    w = record(path, frames=[], finalize=False, budgets=budgets)
    written = 0
    with pytest.raises(BudgetExceeded) as err:
        for frame in FRAMES:
            w.write_frame(*frame)
            written += 1
    assert written < len(FRAMES)
    w.finalize()
    report = verify(path)
    assert report.frames == written
    assert report.stopped["budget"] == err.value.budget
    assert f"stopped by budget {err.value.budget}" in report.summary()
    assert len(list(CassetteReader.open(path).frames())) == written


def test_frame_index_gives_each_connection_in_seq_order_without_rescanning(tmp_path):
    """One pass builds the index; each connection's frames equal the full scan's, in order."""
    for name in ("worker-kafka-tansu", "worker-amqp-rabbitmq", "worker-mqtt-amqtt"):
        root = Path(__file__).resolve().parents[2] / "cassettes" / name
        reader = CassetteReader.open(root)
        index = reader.index()
        everything = list(reader.frames())
        assert index.connections == sorted({f.conn for f in everything})
        for conn in index.connections:
            expected = [f for f in everything if f.conn == conn]
            assert list(index.frames_of(conn)) == expected
            assert index.count(conn) == len(expected)
        assert list(index.frames_of(10_000)) == []


def test_frame_index_reads_one_frame_by_position():
    root = Path(__file__).resolve().parents[2] / "cassettes" / "worker-mqtt-amqtt"
    index = CassetteReader.open(root).index()
    conn = index.connections[-1]
    frames = list(index.frames_of(conn))
    assert index.read(conn, len(frames) - 1) == frames[-1]
    assert index.read(conn, 0) == frames[0]
    with pytest.raises(IndexError):
        index.read(conn, len(frames))


def test_tampered_then_repaired_without_manifest_is_said_and_refused_by_strict(tmp_path, capsys):
    """Edit a frame's bytes, delete the manifest, repair: every later verify says so (issue
    G.5)."""
    import argparse

    from rrlab.cassette_cli import run_verify

    path = tmp_path / "c"
    record(path)
    raw = path / "frames.raw"
    raw.write_bytes(b"tampered" + raw.read_bytes()[8:])
    (path / "cassette.json").unlink()
    first = verify(path, repair=True)
    assert first.repaired and first.unverified and "frames unverified" in first.summary()
    assert CassetteReader.open(path).manifest.unverified
    later = verify(path)
    assert later.repaired_before and later.unverified
    assert "repaired earlier" in later.summary() and "frames unverified" in later.summary()
    with pytest.raises(RepairedRefused, match="without a manifest"):
        verify(path, strict=True)

    def cli(strict: bool) -> int:
        return run_verify(argparse.Namespace(cassette=str(path), repair=False, strict=strict))

    assert cli(False) == 0 and "repaired earlier" in capsys.readouterr().out
    assert cli(True) == 1 and "refusing a repaired cassette" in capsys.readouterr().err


def test_strict_refuses_a_crash_repair_and_accepts_a_finalized_cassette(tmp_path):
    path = tmp_path / "c"
    crash(path)
    report = verify(path, repair=True)
    assert report.repaired and not report.unverified  # the provisional manifest vouched
    assert "repaired earlier" in verify(path).summary()
    with pytest.raises(RepairedRefused, match="after a crash"):
        verify(path, strict=True)
    record(tmp_path / "good")
    assert not verify(tmp_path / "good", strict=True).repaired_before


def test_repair_streams_one_line_at_a_time(tmp_path):
    """Repair held every line in memory (1.53 GB RSS for a 1 GB cassette; plain verify 43 MB):
    it now streams, so its peak does not grow with the cassette (here 9.6 MB of lines and bytes)."""
    import tracemalloc

    path = tmp_path / "c"
    frames = [(1, "c2s", "kafka", {"api": "Produce", "correlation_id": i}, b"v" * 150)
              for i in range(40_000)]  # fmt: skip
    crash(path, frames=frames)
    size = (path / "frames.jsonl").stat().st_size + (path / "frames.raw").stat().st_size
    assert size > 9 << 20
    tracemalloc.start()
    try:
        report = verify(path, repair=True)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.repaired and report.frames == 40_000
    assert peak < 4 << 20, f"peak {peak} bytes for {size} bytes of frames.jsonl and frames.raw"
    assert verify(path).frames == 40_000


def test_repair_of_a_crash_inside_frames_raw_keeps_every_frame_whose_bytes_are_there(tmp_path):
    """The writer writes a batch's bytes, then its lines: a crash between (or inside the bytes)
    leaves lines without their bytes at the end, or bytes without their lines. Repair keeps
    every frame whose line and bytes are whole and drops only the rest."""
    path = tmp_path / "c"
    crash(path)
    raw = path / "frames.raw"
    whole = raw.read_bytes()
    raw.write_bytes(whole[:-10])  # the last frame's (1000 bytes) cut short
    lines = (path / "frames.jsonl").read_bytes().splitlines(keepends=True)
    report = verify(path, repair=True)
    assert report.repaired and report.frames == 4
    assert report.dropped_bytes == len(lines[-1])
    assert (path / "frames.jsonl").read_bytes() == b"".join(lines[:-1])
    assert raw.read_bytes() == whole[:-1000]
    reader = CassetteReader.open(path)
    assert [f.raw for f in reader.frames()] == [f[4] for f in FRAMES[:-1]]
    assert verify(path).frames == 4


def test_repair_drops_bytes_whose_lines_were_never_written(tmp_path):
    path = tmp_path / "c"
    crash(path)
    raw = path / "frames.raw"
    whole = raw.read_bytes()
    raw.write_bytes(whole + b"next frame's bytes, its line never came")
    report = verify(path, repair=True)
    assert report.repaired and report.frames == 5
    assert raw.read_bytes() == whole
    assert [f.raw for f in CassetteReader.open(path).frames()] == [f[4] for f in FRAMES]
