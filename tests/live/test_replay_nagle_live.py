"""A client with Nagle's algorithm on replays no slower than it recorded: an amqtt connection
that publishes QoS 1 messages to its own subscription, one at a time (its PUBACK of each copy
and its next PUBLISH are two small writes: the second waits for the first to be acknowledged),
recorded through `rrlab record` from Mosquitto, then replayed by `rrlab replay`.

Judged by counts, not timings: the Linux counter of delayed ACKs in the replay's network
namespace (the fake broker used to owe an ACK for every PUBACK it read, and the client waited
40 ms for each: 100 of 100), and round trips of 30 ms or more; the wall-time bound beside them
is generous (the stall cost 4 s for 100 messages)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from proxy_harness import RRLAB

pytestmark = pytest.mark.live
CLIENT = Path(__file__).resolve().parents[1] / "replay" / "mqtt_nagle_client.py"
COUNT = 100
OUT = "out/received.txt"


def _run(argv: list[str], cwd: Path) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_nagle_client_replays_no_slower_than_recorded(live_brokers, tmp_path):
    live_brokers("mqtt", mqtt_impl="mosquitto")
    cassette = tmp_path / "cassette"
    client = [sys.executable, str(CLIENT), OUT, "--count", str(COUNT), "--stats"]
    record = [str(RRLAB), "record", "--mqtt", "11883=127.0.0.1:1883", "--cassette", str(cassette)]
    record += ["--write-root", str(tmp_path), "--artifact", OUT, "--"]
    _run([*record, *client, "out/record.json"], tmp_path)
    replay = [str(RRLAB), "replay", "--cassette", str(cassette), "--write-root", str(tmp_path)]
    _run([*replay, "--", *client, "out/replay.json"], tmp_path)  # the artifact as recorded

    recorded = json.loads((tmp_path / "out" / "record.json").read_text())
    replayed = json.loads((tmp_path / "out" / "replay.json").read_text())
    assert replayed["count"] == COUNT
    if replayed["delayed_acks"] is not None:  # Linux: a count in the replay's own namespace
        assert replayed["delayed_acks"] <= COUNT // 10, (recorded, replayed)
    assert replayed["stalls"] <= max(COUNT // 10, recorded["stalls"]), (recorded, replayed)
    assert replayed["wall_s"] <= recorded["wall_s"] * 1.5 + 1.0, (recorded, replayed)
