"""The worker against real brokers: one seed, one byte-identical aggregate, broker reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COUNT = 300
FLAGS = {"kafka": "--kafka-bootstrap", "amqp": "--amqp-url", "mqtt": "--mqtt-url"}
ENV_NAMES = ("KAFKA_BOOTSTRAP", "KAFKA_GROUP", "AMQP_URL", "MQTT_URL")

pytestmark = pytest.mark.live


def _address(driver: str, addrs: dict) -> str:
    """The fixture gives host:port for MQTT; the worker takes an mqtt:// URL."""
    address = addrs[driver]
    return f"mqtt://{address}" if driver == "mqtt" and "://" not in address else address


def _run(
    driver: str, address: str, out: Path, seed: int, count: int = COUNT, extra: tuple = ()
) -> bytes:
    """One worker process, configured by flags only; returns out/aggregate.json."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "--driver", driver, FLAGS[driver], address,
         "--count", str(count), "--seed", str(seed), "--topic", "rrlab.livetest",
         "--timeout", "20", "--out", str(out), *extra],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    metrics = (out / "metrics.txt").read_text()
    assert metrics.endswith("# EOF\n") and "_bucket{" in metrics
    report = json.loads((out / "report.json").read_text())
    assert report["latency_seconds"]["count"] == count
    return (out / "aggregate.json").read_bytes()


def _check_determinism(driver: str, address: str, tmp_path: Path, extra: tuple = ()) -> dict:
    first = _run(driver, address, tmp_path / "a", seed=11, extra=extra)
    again = _run(driver, address, tmp_path / "b", seed=11, extra=extra)  # same destination
    other = _run(driver, address, tmp_path / "c", seed=12, extra=extra)
    assert first == again
    assert first != other
    data = json.loads(first)
    assert data["driver"] == driver
    assert data["produced"] == data["consumed"] == data["count"] == COUNT
    assert sum(row["count"] for row in data["per_key"].values()) == COUNT
    assert json.loads(other)["digest"] != data["digest"]
    return data


@pytest.mark.parametrize("driver", ["kafka", "amqp", "mqtt"])
def test_same_seed_same_aggregate(live_brokers, tmp_path, driver):
    addrs = live_brokers(driver)
    _check_determinism(driver, _address(driver, addrs), tmp_path)


def test_digest_is_broker_neutral(live_brokers, tmp_path):
    """The same seed consumed through any broker hashes the same envelopes."""
    addrs = live_brokers("kafka", "amqp", "mqtt")
    digests = {
        driver: json.loads(_run(driver, _address(driver, addrs), tmp_path / driver, seed=5))[
            "digest"
        ]
        for driver in FLAGS
    }
    assert len({d["value"] for d in digests.values()}) == 1, digests


def test_zero_messages(live_brokers, tmp_path):
    addrs = live_brokers("kafka")
    data = json.loads(_run("kafka", addrs["kafka"], tmp_path, seed=3, count=0))
    assert data["produced"] == data["consumed"] == 0 and data["per_key"] == {}


@pytest.mark.apache
def test_apache_kafka_same_seed_same_aggregate(tmp_path):
    """A private Apache Kafka (KRaft) on free ports, so the shared Tansu on :9092 stays up.

    Assigned and in a consumer group (which Apache Kafka joins at once): the group's second
    run starts from its committed offset, the first from the earliest; both see only their own
    records, and every aggregate of one seed is the same bytes."""
    from proxy_harness import private_kafka

    with private_kafka(tmp_path / "apache") as broker:
        address = f"127.0.0.1:{broker['port']}"
        plain = _check_determinism("kafka", address, tmp_path / "plain")
        group = ("--kafka-group", "rrlab-livetest")
        assert _check_determinism("kafka", address, tmp_path / "group", group) == plain


def test_record_keeps_the_worker_aggregate(live_brokers, tmp_path):
    """`rrlab record` around the worker on amqtt: frames recorded, aggregate stored verified."""
    import hashlib
    import socket

    from rrlab.rr.cassette import verify

    addrs = live_brokers("mqtt")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cassette = tmp_path / "cassettes" / "mqtt"
    proc = subprocess.run(
        [sys.executable, "-m", "rrlab", "record", "--mqtt", f"{port}={addrs['mqtt']}",
         "--cassette", "cassettes/mqtt", "--artifact", "out/mqtt/aggregate.json",
         "--", sys.executable, "-m", "worker", "--driver", "mqtt", "--count", "50",
         "--mqtt-url", f"mqtt://127.0.0.1:{port}", "--out", "out/mqtt"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    produced = (tmp_path / "out" / "mqtt" / "aggregate.json").read_bytes()
    assert json.loads(produced)["consumed"] == 50
    report = verify(cassette)
    assert report.frames > 100 and report.artifacts == 1
    manifest = json.loads((cassette / "cassette.json").read_bytes())
    assert manifest["artifacts"] == {
        "out/mqtt/aggregate.json": hashlib.sha256(produced).hexdigest()
    }
