"""Compressed Kafka record batches from real clients that compress: recorded with `rrlab record` on
a real broker, replayed offline, then replayed by a changed client whose 50th record differs.

For each codec (gzip, snappy, lz4, zstd) and two client families: kafka-python with
`compression_type=` (its codec libraries are in the lock) on Tansu, and Apache Kafka's Java
client with `compression.type` (snappy-java, lz4-java, zstd-jni) on Apache Kafka. The cassette's
Produce batch holding the 50th record must use the codec and its summary must list decoded
records; the unchanged client replays OK (exit 0: a gzip cassette used to crash the fake broker
in `prepare`); the changed client must miss (exit 1) with a diff naming the changed field
(snappy, lz4 and zstd batches used to go unread, so the change replayed OK).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from proxy_harness import ROOT, RRLAB, free_block

from rrlab.rr.cassette import CassetteReader
from rrlab.rr.protocols.kafka.codec import decode_request
from rrlab.rr.protocols.kafka.records import read_records, scan_record_set

pytestmark = pytest.mark.live
CODECS = ("gzip", "snappy", "lz4", "zstd")
COUNT = 100
CHANGED = 49  # the 50th record
BATCHING_CLIENT = ROOT / "tests" / "replay" / "kafka_batching_client.py"
JAVA_SCRIPT = ROOT / "tools" / "clients" / "kafka-java.sh"
JAVA_SOURCE = ROOT / "tools" / "clients" / "java" / "KafkaRoundTrip.java"


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _record(port: int, cassette: Path, artifact: str, cmd: list[str], env: dict) -> None:
    run = cassette.parent
    argv = [str(RRLAB), "record", "--kafka", f"{port}=127.0.0.1:9092", "--cassette", str(cassette)]
    argv += ["--write-root", str(run), "--artifact", artifact]
    argv += ["--log-file", str(run / "proxy-log.jsonl"), "--", *cmd]
    done = _run(argv, run, env)
    assert done.returncode == 0, done.stdout + done.stderr


def _replay(cassette: Path, cwd: Path, cmd: list[str], env: dict) -> tuple[int, dict, str]:
    argv = [str(RRLAB), "replay", "--cassette", str(cassette), "--", *cmd]
    done = _run(argv, cwd, env)
    report_path = cwd / "out" / "rr-report.json"
    report = json.loads(report_path.read_bytes()) if report_path.exists() else {}
    return done.returncode, report, done.stdout + done.stderr


def _codec_of_record(cassette: Path, field: bytes) -> set[str]:
    """Codecs of the recorded Produce batches holding a record whose value contains `field`;
    also checks every Produce summary lists its records (decoded, not a note or an error)."""
    codecs = set()
    for frame in CassetteReader.open(cassette).frames():
        if frame.dir != "c2s" or frame.summary.get("api") != "Produce":
            continue
        for part in frame.summary["records"]:
            assert "error" not in part and "notes" not in part, part
            assert part["count"] == 0 or part["records"], part
        for topic in decode_request(frame.raw).body.topic_data:
            for part in topic.partition_data:
                for batch in scan_record_set(part.records).batches:
                    if any(field in (r.value or b"") for r in read_records(batch)):
                        codecs.add(batch.compression)
    return codecs


def _assert_miss_names(code: int, report: dict, output: str, field: str) -> None:
    assert code == 1, output
    assert report["verdict"] == "miss", report
    produce = [m for m in report["misses"] if m["api"] == "Produce"]
    assert produce, report["misses"]
    assert any(field in line for m in produce for line in m["diff"]), produce


# --- kafka-python on Tansu ---------------------------------------------------------------


def _python_client(script: Path, port: int, topic: str, codec: str) -> list[str]:
    return [sys.executable, str(script), "--bootstrap", f"127.0.0.1:{port}", "--topic", topic,
            "--count", str(COUNT), "--linger-ms", "200", "--compression", codec,
            "--out", "out/records.txt"]  # fmt: skip


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_compressed_batches_replay_and_a_changed_record_misses(
    codec, live_brokers, tmp_path
):
    live_brokers("kafka", kafka_impl="tansu")
    port = free_block(2)
    topic = f"rrlab.compression.python.{codec}.{tmp_path.name}"
    env = {**os.environ}
    cassette = tmp_path / "rec" / "cassette"
    client = _python_client(BATCHING_CLIENT, port, topic, codec)
    _record(port, cassette, "out/records.txt", client, env)
    assert _codec_of_record(cassette, b'"n": %d,' % CHANGED) == {codec}

    code, report, output = _replay(cassette, tmp_path / "same", client, env)
    assert code == 0, output
    assert report["verdict"] == "ok"

    changed = tmp_path / "changed_client.py"
    source = BATCHING_CLIENT.read_text()
    original = '"text": "x" * (i % 50)'
    assert original in source
    changed.write_text(
        source.replace(original, f'"text": "x" * (i % 50) if i != {CHANGED} else "changed"')
    )
    changed_client = _python_client(changed, port, topic, codec)
    code, report, output = _replay(cassette, tmp_path / "changed", changed_client, env)
    _assert_miss_names(code, report, output, "text")


# --- Apache Kafka's Java client on Apache Kafka ------------------------------------------


def _changed_java_client(tmp_path: Path) -> Path:
    """A copy of tools/clients/kafka-java.sh whose Java program computes record 50's `sq`
    differently (compiled at first use, like the original)."""
    root = tmp_path / "changed-java"
    (root / "tools" / "clients" / "java").mkdir(parents=True)
    script = root / "tools" / "clients" / "kafka-java.sh"
    shutil.copy2(JAVA_SCRIPT, script)
    source = JAVA_SOURCE.read_text()
    original = '",\\"sq\\":" + i * i + "}"'
    assert original in source
    changed = f'",\\"sq\\":" + (i == {CHANGED} ? -1 : i * i) + "}}"'
    (root / "tools" / "clients" / "java" / "KafkaRoundTrip.java").write_text(
        source.replace(original, changed)
    )
    return script


@pytest.mark.apache
@pytest.mark.parametrize("codec", CODECS)
def test_java_client_compressed_batches_replay_and_a_changed_record_misses(
    codec, live_brokers, tmp_path
):
    from rrlab.brokers.kafka import ensure_libs

    libs = ensure_libs()
    live_brokers("kafka", kafka_impl="apache")
    port = free_block(2)
    env = {
        **os.environ,
        "CLIENT_PORT": str(port),
        "CLIENT_COUNT": str(COUNT),
        "CLIENT_TOPIC": f"rrlab.compression.java.{codec}.{tmp_path.name}",
        "CLIENT_COMPRESSION": codec,
        "RRLAB_KAFKA_LIBS": str(libs),
    }
    artifact = "out/output.txt"
    cassette = tmp_path / "rec" / "cassette"
    _record(port, cassette, artifact, [str(JAVA_SCRIPT), artifact], env)
    assert _codec_of_record(cassette, b'{"n":%d,' % CHANGED) == {codec}

    code, report, output = _replay(cassette, tmp_path / "same", [str(JAVA_SCRIPT), artifact], env)
    assert code == 0, output
    assert report["verdict"] == "ok"

    changed = _changed_java_client(tmp_path)
    code, report, output = _replay(cassette, tmp_path / "changed", [str(changed), artifact], env)
    _assert_miss_names(code, report, output, "sq")
