"""The committed cassettes that hold old and too-new Kafka versions (recorded from Apache Kafka
4.1 by tools/clients/record-cassettes; `make ci` replays them): they hold what they claim."""

from __future__ import annotations

import pytest
from replay import kafka_raw_api_versions_client as raw_client
from replay.client_scenarios import BY_NAME  # tests/ is on sys.path
from replay_playbook import run_at_once

from rrlab.rr.cassette import CassetteReader


def _client_versions(name: str) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for frame in CassetteReader.open(BY_NAME[name].path).frames():
        if frame.dir.value == "c2s" and "version" in frame.summary:
            out.setdefault(frame.summary["api"], set()).add(frame.summary["version"])
    return out


def test_kafka_python_pinned_to_0_11_sent_old_versions():
    versions = _client_versions("kafka-batching-pinned-0.11-apache")
    assert versions["Produce"] == {3} and versions["Fetch"] == {5}
    assert versions["Metadata"] == {4} and versions["JoinGroup"] == {2}
    assert versions["OffsetCommit"] == {3} and versions["ListOffsets"] == {2}


def test_the_raw_client_opened_with_an_api_versions_kio_cannot_read():
    frames = list(CassetteReader.open(BY_NAME["kafka-raw-api-versions-apache"].path).frames())
    asked, answer, retried = frames[0].summary, frames[1].summary, frames[2].summary
    assert (asked["api"], asked["version"]) == ("ApiVersions", 5) and "error" in asked
    # its bytes are kept (ApiVersions carries no credential): what the client sent
    assert "redacted" not in asked
    assert frames[0].raw == raw_client.api_versions(5, 1)
    assert (answer["error_code"], answer["answered_version"]) == (35, 0)
    assert (retried["api"], retried["version"]) == ("ApiVersions", 4)


def serve_committed(name: str):
    from rrlab.replayer.report import ReplayReport
    from rrlab.rr.codecs import Proto
    from rrlab.rr.protocols import client_kind
    from rrlab.rr.protocols.kafka import session as kafka_replay
    from rrlab.rr.replay.recording import Recording
    from rrlab.rr.replay.session import Listener, PortMap, ReplayContext, ReplayOptions

    recording = Recording.open(BY_NAME[name].path, classify=client_kind)
    ctx = ReplayContext(recording, ReplayOptions(), ReplayReport(), PortMap({19092: 19092}))
    kafka_replay.prepare(ctx)
    sent: list[bytes] = []

    class Link:
        live_id = ctx.next_live_id()
        closed = False

        act = run_at_once  # the session's actions (rr.replay.session)

        def send(self, data: bytes) -> None:
            sent.append(data)

        def close(self) -> None:
            self.closed = True

        def call_later(self, _delay, fn):
            fn()

    session = kafka_replay.Session(ctx, Listener(Proto.KAFKA, 19092, 19092), Link())
    return session, sent, ctx


@pytest.mark.parametrize(("software", "misses"), [("1.0", 0), ("1.1", 1)])
def test_the_committed_too_new_api_versions_is_matched_by_its_bytes(software, misses):
    """The raw client's ApiVersions v5 as recorded matches; the same client saying it is
    software version 1.1 does not (API key and version alone matched it before)."""
    session, sent, ctx = serve_committed("kafka-raw-api-versions-apache")
    session.on_frame(raw_client.api_versions(5, 41, software))
    assert len(sent) == 1 and sent[0][4:8] == (41).to_bytes(4, "big")
    assert ctx.report.miss_count == misses
    if misses:
        reason = ctx.report.misses[0].reason
        # size 4, header 8, client id 2 + 16, tagged fields 1, "rrlab-raw" 1 + 9, then "1.1"'s
        # length and "1.": its last character is byte 44
        assert "first differs at byte 44 of the live frame (byte 44 of the recorded)" in reason
