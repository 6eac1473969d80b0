"""Protocol versions with real brokers and real clients: the committed advertised ranges are what
the brokers advertise; a client pinned to old versions records and replays (and a changed record
is a miss naming the field); a raw-socket client opening with an ApiVersions version newer than
kio records and replays, and gets a broker's answer from the fake broker when it never was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from proxy_harness import RRLAB, free_block
from replay import kafka_raw_api_versions_client as raw_client  # tests/ is on sys.path

from rrlab.brokers import kafka_versions
from rrlab.rr.cassette import CassetteReader

pytestmark = pytest.mark.live
ROOT = Path(__file__).resolve().parents[2]
BATCHING = ROOT / "tests" / "replay" / "kafka_batching_client.py"
RAW = ROOT / "tests" / "replay" / "kafka_raw_api_versions_client.py"


@pytest.mark.parametrize(
    "impl", [pytest.param("tansu"), pytest.param("apache", marks=pytest.mark.apache)]
)
def test_committed_ranges_are_what_the_broker_advertises(live_brokers, impl):
    live_brokers("kafka", kafka_impl=impl)
    assert kafka_versions.advertised() == kafka_versions.load()[impl], (
        f"the {impl} broker advertises other versions than {kafka_versions.FIXTURE}: "
        f"re-capture with `python -m rrlab.brokers.kafka_versions {impl}`"
    )


def _run(argv: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _record(run: Path, port: int, client: list[str], artifact: str) -> Path:
    cassette = run / "cassette"
    argv = [str(RRLAB), "record", "--kafka", f"{port}=127.0.0.1:9092", "--cassette", str(cassette)]
    argv += ["--write-root", str(run), "--artifact", artifact, "--", *client]
    done = _run(argv, run)
    assert done.returncode == 0, done.stdout + done.stderr
    return cassette


def _replay(run: Path, cassette: Path, client: list[str]) -> subprocess.CompletedProcess[str]:
    argv = [str(RRLAB), "replay", "--cassette", str(cassette), "--report", "out/rr-report.json"]
    return _run([*argv, "--", *client], run)


def _versions(cassette: Path) -> dict[str, set[int]]:
    """api -> versions of the client frames in the cassette (from their summaries)."""
    out: dict[str, set[int]] = {}
    for frame in CassetteReader.open(cassette).frames():
        if frame.dir.value == "c2s" and "version" in frame.summary:
            out.setdefault(frame.summary["api"], set()).add(frame.summary["version"])
    return out


@pytest.mark.apache
def test_kafka_python_pinned_to_0_11_records_replays_and_a_changed_record_misses(
    live_brokers, tmp_path
):
    live_brokers("kafka", kafka_impl="apache")
    port = free_block(2)
    topic = f"rrlab.pinned.{os.getpid()}.{tmp_path.name}"
    out = "out/records.txt"
    client = [sys.executable, str(BATCHING), "--bootstrap", f"127.0.0.1:{port}", "--topic", topic]
    client += ["--count", "30", "--api-version", "0.11", "--group", f"g-{tmp_path.name}"]
    cassette = _record(tmp_path, port, [*client, "--out", out], out)

    versions = _versions(cassette)
    assert versions["Produce"] == {3} and versions["Fetch"] == {5}, versions
    assert versions["Metadata"] == {4} and versions["JoinGroup"] == {2}, versions

    # replayed on the recorded port (rrlab replay runs it in its own network namespace)
    again = tmp_path / "again"
    again.mkdir()
    done = _replay(again, cassette, [*client, "--out", out])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rrlab replay: OK" in done.stdout, done.stdout

    changed = tmp_path / "changed"
    changed.mkdir()
    done = _replay(changed, cassette, [*client, "--out", out, "--change-record", "7"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "value.n: recorded 7 live 1007" in done.stderr, done.stderr
    report = json.loads((changed / "out" / "rr-report.json").read_text())
    assert report["verdict"] != "ok"


@pytest.mark.apache
def test_a_too_new_api_versions_records_on_apache_and_replays(live_brokers, tmp_path):
    live_brokers("kafka", kafka_impl="apache")
    port = free_block(2)
    out = "out/raw.txt"
    client = [sys.executable, str(RAW), "--port", str(port), "--out", out]
    cassette = _record(tmp_path, port, [*client, "--first-version", "5"], out)
    frames = list(CassetteReader.open(cassette).frames())
    first, answer = frames[0].summary, frames[1].summary
    assert (first["api"], first["version"]) == ("ApiVersions", 5) and "error" in first
    assert "redacted" not in first  # no credential in ApiVersions: its bytes are kept
    assert frames[0].raw == raw_client.api_versions(5, 1)
    assert answer["error_code"] == 35 and answer["answered_version"] == 0  # Apache's own answer
    recorded = (cassette / "artifacts" / "out" / "raw.txt").read_text()
    assert recorded.startswith("ApiVersions v4: error 0")

    again = tmp_path / "again"
    again.mkdir()
    done = _replay(again, cassette, [*client, "--first-version", "5"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ApiVersions v5: UNSUPPORTED_VERSION (v0 layout); offered ApiVersions v0-v4" in (
        done.stdout
    )

    # the same client, another software version in its ApiVersions v5: the bytes differ (before,
    # API key and version alone matched it and the replay said OK)
    changed = tmp_path / "changed"
    changed.mkdir()
    done = _replay(
        changed, cassette, [*client, "--first-version", "5", "--software-version", "1.1"]
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ApiVersions v5 request cannot be decoded" in done.stderr, done.stderr
    assert "first differs at byte 44 of the live frame" in done.stderr, done.stderr


@pytest.mark.apache
def test_a_too_new_api_versions_never_recorded_gets_what_a_broker_answers(live_brokers, tmp_path):
    live_brokers("kafka", kafka_impl="apache")
    port = free_block(2)
    out = "out/raw.txt"
    client = [sys.executable, str(RAW), "--port", str(port), "--out", out]
    cassette = _record(tmp_path, port, [*client, "--first-version", "4"], out)
    assert "ApiVersions" in _versions(cassette) and _versions(cassette)["ApiVersions"] == {4}

    again = tmp_path / "again"
    again.mkdir()
    done = _replay(again, cassette, [*client, "--first-version", "5"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ApiVersions v5: UNSUPPORTED_VERSION (v0 layout); offered ApiVersions v0-v4" in (
        done.stdout
    )
