"""Unused recorded client frames are counted from the index at stop (issue J.4).

Today `collect_unused` decoded every frame of every connection at stop: 70 s from SIGTERM to
exit for a 1 GB cassette. The index built at open keeps each client frame's kind (label, and
whether it is exempt, e.g. liveness), so stop counts without decoding and reads only the frames
it lists. The counts and the list are those the frame-by-frame way gave.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import rrlab.rr.cassette.reader as reader_module
from rrlab.replayer.report import MAX_LISTED, ReplayReport
from rrlab.rr.cassette import CassetteReader, CassetteWriter
from rrlab.rr.codecs import Direction
from rrlab.rr.protocols import client_kind, protocol_for
from rrlab.rr.replay.recording import Recording

CASSETTES = sorted(
    p.name for p in (Path(__file__).resolve().parents[2] / "cassettes").iterdir() if p.is_dir()
)


def reference(recording: Recording) -> tuple[dict, list]:
    """What the report said before the index: every frame decoded, liveness and closing
    handshakes skipped."""
    tally: dict = {}
    listed = []
    reader = CassetteReader.open(recording.path)
    for rc in recording.conns:
        for index, frame in enumerate(reader.frames_for(rc.id)):
            if frame.dir is not Direction.C2S or index in rc.used:
                continue
            protocol = protocol_for(rc.proto)
            if protocol.is_liveness(frame.summary) or protocol.is_closing(frame.summary):
                continue
            api = protocol.label(frame.summary)
            tally[(str(rc.proto), api, "unused")] = tally.get((str(rc.proto), api, "unused"), 0) + 1
            if len(listed) < MAX_LISTED:
                listed.append((rc.id, frame.seq, api, frame.summary))
    reader.close()
    return tally, listed


@pytest.mark.parametrize("name", CASSETTES)
def test_counts_and_list_equal_the_frame_by_frame_way(name):
    root = Path(__file__).resolve().parents[2] / "cassettes" / name
    recording = Recording.open(root, classify=client_kind)
    rng = random.Random(name)
    for rc in recording.conns:  # a live run consumed some client frames of each connection
        clients = [i for i, f in enumerate(rc.stream()) if f.dir is Direction.C2S]
        rc.used.update(rng.sample(clients, len(clients) // 2))
    report = ReplayReport()
    report.collect_unused(recording)
    tally, listed = reference(recording)
    assert dict(report.tally) == tally
    assert report.unused_count == sum(tally.values())
    got = [(u["recorded_conn"], u["seq"], u["api"], u["summary"]) for u in report.unused]
    assert got == listed


def test_stop_decodes_only_the_frames_it_lists(tmp_path, monkeypatch):
    path = tmp_path / "c"
    w = CassetteWriter.create(path)
    w.add_route("amqp", "127.0.0.1:15673", "127.0.0.1:5672")
    conn = w.open_connection("amqp", "127.0.0.1:15673", "127.0.0.1:5672")
    heartbeat = {"channel": 0, "frame": "heartbeat"}
    publish = {"channel": 1, "frame": "method", "method": "Basic.Publish"}
    for i in range(3000):
        w.write_frame(conn, "c2s", "amqp", heartbeat if i % 3 == 0 else publish, b"\x08" * 8)
        w.write_frame(conn, "s2c", "amqp", {"channel": 1, "frame": "method"}, b"\x01" * 8)
    w.finalize()
    recording = Recording.open(path, classify=client_kind)
    # client frame i is frame 2i: the first 150 (50 heartbeats, 100 publishes) consumed live
    recording.conn(conn).used.update(2 * i for i in range(150))
    decoded = []
    real = reader_module.read_frame_line
    monkeypatch.setattr(
        reader_module, "read_frame_line", lambda *a, **kw: decoded.append(1) or real(*a, **kw)
    )
    report = ReplayReport()
    report.collect_unused(recording)
    assert report.unused_count == 2000 - 100  # publishes less those used; heartbeats exempt
    assert dict(report.tally) == {("amqp", "Basic.Publish", "unused"): report.unused_count}
    assert len(report.unused) == MAX_LISTED
    # the publishes never sent are behaviour: each a miss, counted whole, the first listed
    assert report.never_sent == report.unused_count and len(report.misses) == MAX_LISTED
    assert len(decoded) == 2 * MAX_LISTED  # those it lists as unused and as misses: not 6,000
