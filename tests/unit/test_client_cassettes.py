"""The committed client cassettes (cassettes/client-*, recorded by tools/clients/record-cassettes):
clients we did not write, kept as data the replay tier serves. Each must verify, decode again to
its recorded summaries (Kafka 4 Java clients send Produce v13, topics by id), hold no credential,
and carry its client's whole output as the artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from replay.client_scenarios import CASSETTES, FOREIGN  # tests/ is on sys.path

from rrlab.rr.cassette import CassetteReader, verify
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import decoder_for

SECRETS = [b"rrlab-secret-pw", b"rrlab-mqtt-pw"]
IDS = [s.name for s in FOREIGN]


def test_every_client_cassette_has_a_scenario():
    on_disk = sorted(p.name for p in CASSETTES.glob("client-*") if p.is_dir())
    assert sorted(s.cassette for s in FOREIGN) == on_disk
    assert {s.broker[0] for s in FOREIGN} == {"kafka", "amqp", "mqtt"}


@pytest.mark.parametrize("scenario", FOREIGN, ids=IDS)
def test_verifies_and_decodes_again(scenario):
    assert verify(scenario.path).frames > 0
    decoders = {}
    for frame in CassetteReader.open(scenario.path).frames():
        decoder = decoders.setdefault(frame.conn, decoder_for(Proto(frame.proto)))
        decoded = decoder.decode(Direction(frame.dir), frame.raw)
        assert "error" not in decoded.summary, (frame.seq, decoded.summary)
        recorded = dict(frame.summary)
        if frame.redacted:
            assert recorded.pop("redacted")
        assert decoded.summary == recorded, frame.seq
        for secret in SECRETS:
            assert secret not in frame.raw, frame.seq


@pytest.mark.parametrize("scenario", FOREIGN, ids=IDS)
def test_artifact_is_the_clients_whole_output(scenario):
    """argv writes exactly the stored artifact: 100 messages, in order, first to last."""
    assert Path(scenario.argv[0]).is_file() and os.access(scenario.argv[0], os.X_OK)
    assert scenario.argv[-1:] == scenario.artifacts
    manifest = json.loads((scenario.path / "cassette.json").read_bytes())
    assert sorted(manifest["artifacts"]) == sorted(scenario.artifacts)
    data = (scenario.path / "artifacts" / scenario.artifacts[0]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == manifest["artifacts"][scenario.artifacts[0]]
    lines = data.decode().splitlines()
    if scenario.broker[0] == "kafka":  # offset, key, value, headers; then the count
        assert lines[0] == '0\tkey-0\t{"n":0,"sq":0}\tn=0,parity=even'
        assert lines[99] == '99\tkey-1\t{"n":99,"sq":9801}\tn=99,parity=odd'
        assert lines[100:] == ["count 100"]
    else:  # MQTT lines start with "topic qos "
        assert lines[0].endswith("msg-0000 n=0 sq=0") and lines[99].endswith(
            "msg-0099 n=99 sq=9801"
        )
        assert len(lines) == 100


@pytest.mark.parametrize("name", [s.name for s in FOREIGN if s.broker[0] == "kafka"])
def test_java_client_used_a_consumer_group(name):
    apis = {f.summary.get("api") for f in CassetteReader.open(CASSETTES / name).frames()}
    assert {"CreateTopics", "InitProducerId", "JoinGroup", "SyncGroup", "OffsetCommit"} <= apis
