"""Kafka replay: unmodified clients against `rrlab serve`, no broker anywhere.

The worker (kafka-python) on Tansu and with a consumer group on Apache Kafka, a kafka-python
client whose batching and pace differ from the recording, side-by-side replays on moved ports,
a changed worker that must fail with a diff naming the changed field, and refused cassettes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CASSETTES, ROOT, RRLAB, assert_replays, fake_broker, run_client
from .scenarios import SCENARIOS

KAFKA_SCENARIOS = [
    s for s in SCENARIOS if "kafka" in s.name and "lab" not in s.name
]  # lab: amqp tests
BATCHING = CASSETTES / "kafka-batching-tansu"
BATCHING_CLIENT = [sys.executable, str(ROOT / "tests/replay/kafka_batching_client.py")]
BATCHING_ARTIFACT = "out/kafka-batching/records.txt"


@pytest.mark.parametrize("scenario", KAFKA_SCENARIOS, ids=lambda s: s.name)
def test_worker_replays_byte_identical_three_times_and_in_lookup_mode(scenario, tmp_path):
    for _ in range(3):
        assert_replays(scenario.path, scenario.argv, scenario.artifacts, tmp_path)
    served = assert_replays(
        scenario.path, scenario.argv, scenario.artifacts, tmp_path, "--match", "lookup"
    )
    assert served.report["totals"]["matched"] > 0
    assert served.report["connections"]["bound"] >= 1


def _batching(*extra: str) -> list[str]:
    return [*BATCHING_CLIENT, "--count", "200", "--out", BATCHING_ARTIFACT, *extra]


def test_produce_batches_split_differently_still_replay(tmp_path):
    """Recorded as one Produce of 200 records; replayed as dozens of small batches."""
    served = assert_replays(
        BATCHING, _batching("--batch-size", "600"), [BATCHING_ARTIFACT], tmp_path
    )
    produce = served.report["by_api"]["kafka"]["Produce"]
    recorded = _count_api(BATCHING, "Produce")
    assert produce["matched"] > 5 * recorded, (produce, recorded)


def test_slow_consumer_polls_more_than_recorded_and_still_replays(tmp_path):
    """Processing delay: the client refreshes metadata the recording never saw (answered from
    the recorded cluster state) and polls past the recorded log (empty after max wait)."""
    served = assert_replays(BATCHING, _batching("--slow-ms", "5"), [BATCHING_ARTIFACT], tmp_path)
    assert served.report["totals"]["synthesized"] >= 1, served.report["by_api"]


def test_side_by_side_replays_on_moved_ports(tmp_path):
    """Two fake brokers of one cassette at once, each client on its own moved ports (Kafka
    advertised addresses follow the move)."""
    runs = []
    for offset in (1000, 2000):
        cwd = tmp_path / f"side-{offset}"
        cwd.mkdir()
        ctx = fake_broker(BATCHING, tmp_path, offset=offset)
        served = ctx.__enter__()
        argv = _batching("--bootstrap", f"127.0.0.1:{19092 + offset}")
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        runs.append((ctx, served, proc, cwd))
    for ctx, served, proc, cwd in runs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
        ctx.__exit__(None, None, None)
        assert served.exit_code == 0, served.stderr
        live = (cwd / BATCHING_ARTIFACT).read_bytes()
        assert live == (BATCHING / "artifacts" / BATCHING_ARTIFACT).read_bytes()
        assert f"listening kafka 127.0.0.1:{19093 + served.offset}" in served.stdout


def _changed_worker(tmp_path: Path) -> Path:
    """A copy of the worker whose payload field `amount` is computed differently."""
    changed = tmp_path / "changed"
    shutil.copytree(ROOT / "worker", changed / "worker")
    envelope = changed / "worker" / "envelope.py"
    source = envelope.read_text()
    assert "% 10000" in source
    envelope.write_text(source.replace("% 10000", "% 9999"))
    return changed


def test_changed_worker_fails_with_a_diff_naming_the_changed_field(tmp_path):
    """One payload field computed differently: exit 1, and the diff points at `amount`."""
    scenario = next(s for s in KAFKA_SCENARIOS if s.name == "worker-kafka-tansu")
    changed = _changed_worker(tmp_path)
    cwd = tmp_path / "run"
    cwd.mkdir()
    with fake_broker(scenario.path, tmp_path) as served:
        run_client(scenario.argv, cwd, env={"PYTHONPATH": str(changed)}, timeout=120)
    assert served.exit_code == 1
    assert served.report["verdict"] == "miss"
    miss = served.report["misses"][0]
    assert miss["api"] == "Produce"
    assert any(".amount: recorded" in line for line in miss["diff"]), miss["diff"]
    assert "MISS kafka Produce" in served.stderr


@pytest.mark.parametrize("damage", ["truncate", "tamper"])
def test_a_damaged_cassette_is_refused_with_its_error(damage, tmp_path):
    copy = tmp_path / "cassette"
    shutil.copytree(BATCHING, copy)
    frames = copy / "frames.jsonl"
    data = frames.read_bytes()
    if damage == "truncate":
        frames.write_bytes(data[: len(data) // 2])
        expected = "sha256 mismatch for frames.jsonl"
    else:
        frames.write_bytes(data.replace(b'"summary":', b'"summary": ', 1))
        expected = "sha256 mismatch for frames.jsonl"
    proc = subprocess.run(
        [*RRLAB, "serve", "--cassette", str(copy), "--report", str(tmp_path / "r.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert expected in proc.stderr and str(copy) in proc.stderr
    assert "Traceback" not in proc.stderr


def _count_api(cassette: Path, api: str) -> int:
    with open(cassette / "frames.jsonl", "rb") as fh:
        return sum(
            1
            for line in fh
            if (f := json.loads(line))["dir"] == "c2s" and f["summary"].get("api") == api
        )


GROUP = CASSETTES / "kafka-batching-apache-group"
GROUP_ARTIFACT = "out/kafka-batching-group/records.txt"


def _group(*extra: str) -> list[str]:
    return [
        *BATCHING_CLIENT,
        *("--count", "200", "--group", "rrlab-batching", "--topic", "rrlab.batching.group"),
        *("--out", GROUP_ARTIFACT, *extra),
    ]


def test_consumer_group_on_apache_kafka_replays(tmp_path):
    """JoinGroup (MEMBER_ID_REQUIRED, then the recorded member id), SyncGroup, OffsetFetch,
    commits and LeaveGroup, served from a recording of a real Apache Kafka coordinator."""
    for mode in ("transcript", "transcript", "lookup"):
        served = assert_replays(GROUP, _group(), [GROUP_ARTIFACT], tmp_path, "--match", mode)
        assert served.report["by_api"]["kafka"]["JoinGroup"]["matched"] >= 2


def test_slow_group_consumer_heartbeats_are_synthesized(tmp_path):
    """A consumer slow enough to heartbeat and auto-commit on its clock: those requests were
    never recorded, they are answered without consuming the cassette."""
    served = assert_replays(GROUP, _group("--slow-ms", "25"), [GROUP_ARTIFACT], tmp_path)
    kafka = served.report["by_api"]["kafka"]
    synthesized = {api: c["synthesized"] for api, c in kafka.items() if c["synthesized"]}
    assert synthesized.get("Heartbeat", 0) + synthesized.get("OffsetCommit", 0) >= 1, kafka


def test_per_cassette_ignore_rules_let_a_declared_field_vary(tmp_path):
    """The same changed worker replays clean once the cassette declares `amount`
    nondeterministic (replay-rules.json beside the recording)."""
    scenario = next(s for s in KAFKA_SCENARIOS if s.name == "worker-kafka-tansu")
    copy = tmp_path / "cassette"
    shutil.copytree(scenario.path, copy)
    (copy / "replay-rules.json").write_text(json.dumps({"ignore_fields": ["amount"]}))
    changed = _changed_worker(tmp_path)
    cwd = tmp_path / "run"
    cwd.mkdir()
    with fake_broker(copy, tmp_path) as served:
        client = run_client(scenario.argv, cwd, env={"PYTHONPATH": str(changed)}, timeout=120)
    assert client.returncode == 0, client.stderr
    assert served.exit_code == 0, served.stderr
    assert served.report["totals"]["missed"] == 0


def test_records_never_produced_again_are_unused_and_fail_strict(tmp_path):
    """199 of the 200 recorded records: no live miss (each live record matched), but the
    recorded Produce is not wholly produced again: behaviour that never came, a miss in every
    profile (strict or not), listed unused too."""
    cwd = tmp_path / "run"
    cwd.mkdir()
    argv = [*BATCHING_CLIENT, "--count", "199", "--out", BATCHING_ARTIFACT]
    with fake_broker(BATCHING, tmp_path) as served:  # not --strict
        run_client(argv, cwd)
    assert served.exit_code == 1
    assert served.report["verdict"] == "miss" and served.report["totals"]["missed"] == 0
    assert [u["api"] for u in served.report["unused"]] == ["Produce"]
    assert [m["api"] for m in served.report["misses"]] == ["Produce"]


RAW_CLIENT = [sys.executable, str(ROOT / "tests/replay/kafka_raw_api_versions_client.py")]
RAW_ARTIFACT = "out/kafka-raw-api-versions/raw.txt"


def _replay_raw_client(cassette: Path, cwd: Path, software: str) -> subprocess.CompletedProcess:
    argv = [*RRLAB, "replay", "--cassette", str(cassette), "--report", "out/rr-report.json"]
    argv += ["--", *RAW_CLIENT, "--out", RAW_ARTIFACT, "--software-version", software]
    cwd.mkdir()
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_too_new_api_versions_that_changed_misses_naming_the_byte(tmp_path):
    """The committed raw client's ApiVersions v5 (kept whole in the cassette): the same client
    saying it is software 1.1 differs at byte 44 and the replay fails (before, API key and
    version alone matched it: OK, exit 0)."""
    done = _replay_raw_client(CASSETTES / "kafka-raw-api-versions-apache", tmp_path / "r", "1.1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ApiVersions v5 request cannot be decoded" in done.stderr, done.stderr
    assert "first differs at byte 44 of the live frame (byte 44 of the recorded)" in done.stderr
    report = json.loads((tmp_path / "r" / "out" / "rr-report.json").read_text())
    assert report["verdict"] == "miss" and report["misses"][0]["api"] == "ApiVersions"


def test_a_cassette_keeping_only_the_header_matches_by_header_and_says_so(tmp_path):
    """The same client recorded on Apache Kafka before such requests were kept whole (the
    request's bytes are the placeholder): it matches by API key and version, and both the
    closing lines and the report say its bytes were not compared."""
    old = ROOT / "tests/replay/kafka_cassettes/kafka-raw-api-versions-header-only-apache"
    done = _replay_raw_client(old, tmp_path / "r", "1.1")
    assert done.returncode == 0, done.stdout + done.stderr
    note = "kafka ApiVersions v5 requests (not decodable) matched by API key and version only"
    assert f"rrlab replay: note: {note}" in done.stderr, done.stderr
    report = json.loads((tmp_path / "r" / "out" / "rr-report.json").read_text())
    assert report["verdict"] == "ok" and report["notes"][0].startswith(note)
