"""`rrlab inspect` detail, filters, payload dumps and crashed cassettes; `rrlab verify` warnings
for connections whose recording broke. On committed cassettes recorded from real brokers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_cassette_reader import crash, record

from rrlab import cli

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"


@pytest.fixture(autouse=True)
def only_cassette_commands(monkeypatch):
    monkeypatch.setattr(
        cli, "SUBCOMMANDS", {"inspect": "rrlab.cassette_cli", "verify": "rrlab.cassette_cli"}
    )


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _rows(out: str, api: str) -> list[str]:
    return [line for line in out.splitlines() if f" {api} " in line]


def test_kafka_rows_show_topic_partition_count_and_first_key(capsys):
    code, out, err = run(capsys, "inspect", CASSETTES / "worker-kafka-tansu", "--api", "produce")
    assert code == 0 and err == ""
    rows = _rows(out, "Produce v9")
    assert rows and all(" Produce " in r for r in rows)  # the filter
    assert any(r.endswith("rrlab.worker.1[0] 113 records, first key 'charlie'") for r in rows)
    assert not _rows(out, "Fetch v12")


def test_amqp_rows_show_exchange_routing_key_and_queue(capsys):
    cassette = CASSETTES / "worker-amqp-rabbitmq"
    code, out, _ = run(
        capsys, "inspect", cassette, "--api", "Basic.Publish", "--api", "QUEUE.DECLARE"
    )
    assert code == 0
    assert any(
        r.endswith("exchange='' routing_key='rrlab.worker.1'") for r in _rows(out, "Basic.Publish")
    )
    assert any(r.endswith("queue='rrlab.worker.1'") for r in _rows(out, "Queue.Declare"))


def test_mqtt_topic_in_full_and_payload_hex(capsys):
    cassette = CASSETTES / "client-mqtt-mosquitto-clients-mosquitto"
    code, out, _ = run(capsys, "inspect", cassette, "--api", "PUBLISH", "--payload", "hex")
    assert code == 0
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if " PUBLISH " in line)
    assert "topic=rrlab/client/mosquitto qos=1 payload" in lines[first]
    assert lines[first + 1].strip().startswith("0x0000:  6d73 672d")  # "msg-" as tcpdump -X
    assert lines[first + 1].rstrip().endswith("msg-0000 n=0 sq=")


def test_payload_text_is_the_message_body(capsys):
    cassette = CASSETTES / "worker-amqp-rabbitmq"
    code, out, _ = run(
        capsys, "inspect", cassette, "--api", "body", "--conn", "1", "--payload", "text"
    )
    assert code == 0
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if " body " in line)
    assert (
        lines[first + 1].strip().startswith('{"amount":') and '"key":"charlie"' in lines[first + 1]
    )


def _digests(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_a_crashed_cassette_is_inspected_without_changing_it(tmp_path, capsys):
    path = tmp_path / "c"
    crash(path)
    with open(path / "frames.jsonl", "ab") as f:
        f.write(b'{"conn":1,"torn')  # the line the crash cut
    before = _digests(path)
    code, out, err = run(capsys, "inspect", path)
    assert code == 0
    assert "crashed recording (not finalized)" in err and "unchanged" in err
    assert "Metadata v12" in out and "Produce v9" in out
    assert _digests(path) == before
    assert not list(tmp_path.glob("rrlab-inspect-*"))


def test_verify_warns_about_a_broken_recording_and_strict_fails(tmp_path, capsys):
    path = tmp_path / "c"
    w = record(path, finalize=False)
    w.close_connection(1, "recording stopped: rewrite failed: 3 items in a 2-item array")
    w.close_connection(2, "client closed")
    w.finalize()
    code, out, err = run(capsys, "verify", path)
    assert code == 0 and "ok, 5 frames" in out
    assert err == (
        "rrlab verify: warning: connection 1 (kafka): recording broke: recording stopped: "
        "rewrite failed: 3 items in a 2-item array\n"
    )
    code, _, err = run(capsys, "verify", path, "--strict")
    assert code == 1 and "1 connections broken (--strict)" in err


def test_verify_is_quiet_about_clean_closes(tmp_path, capsys):
    path = tmp_path / "c"
    record(path)
    code, _, err = run(capsys, "verify", path, "--strict")
    assert code == 0 and err == ""
