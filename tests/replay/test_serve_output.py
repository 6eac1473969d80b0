"""What `rrlab serve` prints: human lines by default, JSON lines only with --log-format json
(listening, each miss, the closing totals), so `rrlab serve ... 2>&1` parses line by line."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

from .conftest import CASSETTES, ROOT, RRLAB, free_offset, recorded_ports

CASSETTE = CASSETTES / "worker-amqp-rabbitmq"


def _serve(tmp_path, *extra: str) -> tuple[int, list[str], int]:
    offset = free_offset(recorded_ports(CASSETTE))
    port = 15673 + offset
    proc = subprocess.Popen(
        [*RRLAB, "serve", "--cassette", str(CASSETTE), "--port-offset", str(offset),
         "--report", str(tmp_path / "report.json"), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "serve did not listen"
        try:
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except OSError:
            time.sleep(0.1)
    with client:  # a frame before the protocol header: a miss
        client.sendall(b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x0b\xce")
        client.settimeout(5)
        try:
            client.recv(100)
        except OSError:
            pass
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out.splitlines(), port


def test_json_lines_only(tmp_path):
    rc, lines, port = _serve(tmp_path, "--log-format", "json")
    assert rc == 1, lines
    records = [json.loads(line) for line in lines]  # every line of stdout and stderr
    events = [r.get("event") for r in records]
    listening = [r for r in records if r.get("event") == "serve"]
    assert listening and f"listening amqp 127.0.0.1:{port}" in listening[0]["text"]
    # the live miss, then what its connection never sent (behaviour that never came)
    miss = [r for r in records if r.get("event") == "miss"][0]
    assert miss["level"] == "warn" and miss["text"].startswith("MISS amqp")
    assert events[-1] == "closed" and records[-1]["missed"] == 1


def test_human_lines_by_default(tmp_path):
    rc, lines, port = _serve(tmp_path)
    assert rc == 1, lines
    assert lines[0] == f"rrlab serve: listening amqp 127.0.0.1:{port} (recorded 15673)"
    assert any(line.startswith("MISS amqp") for line in lines)
    assert lines[-1].startswith("replay miss: 0 matched, 0 synthesized, 1 missed")
    assert not any(line.startswith("{") for line in lines)
