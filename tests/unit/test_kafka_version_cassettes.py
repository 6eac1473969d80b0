"""The committed cassettes that hold old and too-new Kafka versions (recorded from Apache Kafka
4.1 by tools/clients/record-cassettes; `make ci` replays them): they hold what they claim."""

from __future__ import annotations

from replay.client_scenarios import BY_NAME  # tests/ is on sys.path

from rr.cassette import CassetteReader


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
    assert asked["redacted"]  # its bytes are not kept (fail closed)
    assert (answer["error_code"], answer["answered_version"]) == (35, 0)
    assert (retried["api"], retried["version"]) == ("ApiVersions", 4)
