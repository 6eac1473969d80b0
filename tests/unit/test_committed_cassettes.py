"""The committed reference cassettes (recorded from real brokers by tools/record-cassettes).

They are data that later tiers replay: each must verify, decode without unknowns, read as a
table, and hold no credential.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from rr.cassette import CassetteReader, verify
from rr.codecs import Direction, Proto, decoder_for
from rrlab import cli

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"
NAMES = ["worker-kafka-tansu", "worker-amqp-rabbitmq", "worker-mqtt-amqtt"]
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
