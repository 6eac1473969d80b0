"""Bindings, live: request/reply clients that name things by fresh random ids (a pika reply
queue `reply-<uuid4>` and uuid4 correlation id; a kafka-python uuid4 correlation header; amqtt
clients `svc-<8 hex>` with a response topic that embeds the id) recorded through `rrlab record`
from the real brokers, then replayed offline (`rrlab replay`, network sandbox) with no rule:
the run is OK with the artifact as recorded and the replay names the bindings it made; the same
client with a changed request argument is a miss naming that field."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from proxy_harness import RRLAB

pytestmark = pytest.mark.live
CLIENTS = Path(__file__).resolve().parents[1] / "replay"
OUT = "out/answer.txt"
CASES = {
    # protocol: (route, client, bindings made in replay at least)
    "amqp": ("15673=127.0.0.1:5672", "amqp_rpc_client.py", 2),
    "kafka": ("19092=127.0.0.1:9092", "kafka_rpc_client.py", 1),
    "mqtt": ("11883=127.0.0.1:1883", "mqtt_rpc_client.py", 2),
}


def _client(proto: str, x: int, prefix: str) -> list[str]:
    argv = [sys.executable, str(CLIENTS / CASES[proto][1]), OUT, "--x", str(x)]
    return argv + (["--prefix", prefix] if proto == "kafka" else [])


@pytest.mark.parametrize("proto", sorted(CASES))
def test_request_reply_with_fresh_ids_records_live_and_replays_offline_with_no_rule(
    live_brokers, tmp_path, proto
):
    live_brokers(proto)
    route, _client_file, bindings = CASES[proto]
    prefix = f"rrlab.{uuid.uuid4().hex[:8]}."  # fresh Kafka topics on a shared broker
    cassette = tmp_path / "cassette"
    record = [str(RRLAB), "record", f"--{proto}", route, "--cassette", str(cassette)]
    record += ["--write-root", str(tmp_path), "--artifact", OUT, "--", *_client(proto, 7, prefix)]
    done = subprocess.run(record, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / OUT).read_text() == "7 squared = 49\n"

    report = tmp_path / "out" / "report.json"
    replay = [str(RRLAB), "replay", "--cassette", str(cassette), "--artifact", OUT]
    replay += ["--report", str(report), "--write-root", str(tmp_path), "--"]
    done = subprocess.run(
        [*replay, *_client(proto, 7, prefix)], cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    made = json.loads(report.read_text())["bindings"]
    assert len(made) >= bindings, made
    assert "bound " in done.stdout + done.stderr

    done = subprocess.run(
        [*replay, *_client(proto, 8, prefix)], cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    misses = json.loads(report.read_text())["misses"]
    assert any(line.endswith("recorded 7 live 8") for line in misses[0]["diff"]), misses
