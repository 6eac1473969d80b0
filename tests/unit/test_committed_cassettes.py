"""The committed reference cassettes (recorded from real brokers by tools/record-cassettes).

They are data that later tiers replay: each must verify, decode without unknowns, read as a
table, and hold no credential.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from replay.scenarios import SCENARIOS  # tests/ is on sys.path (rootdir conftest)

from rrlab import cli
from rrlab.rr.cassette import CassetteReader, verify
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import decoder_for

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"
NAMES = [
    "worker-kafka-tansu",
    "worker-kafka-apache-group",
    "worker-amqp-rabbitmq",
    "worker-mqtt-amqtt",
    "worker-mqtt-mosquitto",
    "worker-lab-kafka-amqp",
    "kafka-batching-tansu",
    "kafka-batching-apache-group",
]
#: the lab's fixture passwords (brokers/rabbitmq.py); none may ever reach a cassette
SECRETS = [b"rrlab-secret-pw", b"rrlab-mqtt-pw"]


@pytest.mark.parametrize("name", NAMES)
def test_verifies(name):
    report = verify(CASSETTES / name)  # raises a CassetteError on any defect
    assert report.frames > 0, report.summary()


@pytest.mark.parametrize("name", NAMES)
def test_every_frame_decodes_again_to_the_recorded_summary(name):
    reader = CassetteReader.open(CASSETTES / name)
    decoders = {}
    frames = list(reader.frames())
    assert frames, "an empty reference cassette proves nothing"
    for frame in frames:
        decoder = decoders.setdefault(frame.conn, decoder_for(Proto(frame.proto)))
        decoded = decoder.decode(Direction(frame.dir), frame.raw)
        assert "error" not in decoded.summary, (frame.seq, decoded.summary)
        recorded = dict(frame.summary)
        if frame.redacted:  # redaction notes what it replaced; the bytes decode the same
            assert recorded.pop("redacted")
        assert decoded.summary == recorded, frame.seq


@pytest.mark.parametrize("name", NAMES)
def test_no_credential_anywhere(name):
    for path in (CASSETTES / name).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in SECRETS:
                assert secret not in data, path
    for frame in CassetteReader.open(CASSETTES / name).frames():
        for secret in SECRETS:
            assert secret not in frame.raw, frame.seq
            assert base64.b64encode(secret) not in base64.b64encode(frame.raw)


def test_amqp_login_is_redacted():
    frames = CassetteReader.open(CASSETTES / "worker-amqp-rabbitmq").frames()
    start_ok = next(f for f in frames if f.summary.get("method") == "Connection.StartOk")
    assert start_ok.redacted


def test_inspect_reads_as_a_table(capsys):
    assert cli.main(["inspect", str(CASSETTES / "worker-kafka-tansu")]) == 0
    out = capsys.readouterr().out
    for expected in ("ApiVersions v", "Metadata v", "Produce v", "Fetch v", "corr=", "served on"):
        assert expected in out
    assert " ? " not in out  # every frame has a name


def test_every_committed_cassette_has_a_scenario():
    """Every cassette directory is recorded by `make record` from a scenario (and replayed by
    `make ci` from the same one); the worker ones are all listed here."""
    from replay.client_scenarios import SCENARIOS as CLIENT_SCENARIOS

    on_disk = sorted(p.name for p in CASSETTES.iterdir() if p.is_dir())
    assert sorted(s.cassette for s in [*SCENARIOS, *CLIENT_SCENARIOS]) == on_disk
    workers = sorted(p.name for p in CASSETTES.glob("worker-*"))
    assert sorted(s.cassette for s in SCENARIOS) == workers
    assert set(NAMES) <= set(on_disk)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_artifacts_are_stored_whole(scenario):
    """Each cassette carries exactly its scenario's artifacts: a complete run of N messages."""
    manifest = json.loads((scenario.path / "cassette.json").read_bytes())
    assert sorted(manifest["artifacts"]) == sorted(scenario.artifacts + scenario.timing_artifacts)
    for name in scenario.artifacts:
        data = (scenario.path / "artifacts" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == manifest["artifacts"][name]
        aggregate = json.loads(data)
        count = int(scenario.argv[scenario.argv.index("--count") + 1])
        assert aggregate["produced"] == aggregate["consumed"] == aggregate["count"] == count


def test_group_cassette_joined_a_group():
    apis = {
        f.summary.get("api")
        for f in CassetteReader.open(CASSETTES / "worker-kafka-apache-group").frames()
    }
    assert {"JoinGroup", "SyncGroup", "OffsetCommit", "OffsetFetch"} <= apis
