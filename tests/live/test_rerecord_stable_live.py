"""Re-recording the same behaviour from a real broker changes no frame line (issue L: reviewable
cassettes): the worker's MQTT run through `rrlab record` twice against amqtt gives two cassettes
whose frames.jsonl hold the same lines (only how the client's and the broker's frames interleave
may differ: that, and every time, is in frames.timing), and `rrlab diff` calls them equal."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from proxy_harness import RRLAB, free_block

pytestmark = pytest.mark.live
COUNT = 100


def _record(run: Path) -> Path:
    run.mkdir()
    port = free_block(1)
    cassette = run / "cassette"
    argv = [str(RRLAB), "record", "--mqtt", f"{port}=127.0.0.1:1883", "--cassette", str(cassette)]
    argv += ["--write-root", str(run), "--artifact", "out/aggregate.json", "--"]
    argv += [sys.executable, "-m", "worker", "--driver", "mqtt", "--mqtt-url"]
    argv += [f"mqtt://127.0.0.1:{port}", "--count", str(COUNT), "--seed", "3"]
    argv += ["--topic", "rrlab.rerecord", "--out", "out"]
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "MQTT_URL"}
    env["PYTHONPATH"] = str(root)  # the demo worker is no installed package
    done = subprocess.run(argv, cwd=run, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return cassette


def test_rerecording_changes_no_frame_line(live_brokers, tmp_path):
    live_brokers("mqtt", mqtt_impl="amqtt")
    first, again = _record(tmp_path / "a"), _record(tmp_path / "b")
    lines = [(c / "frames.jsonl").read_bytes().splitlines() for c in (first, again)]
    assert len(lines[0]) >= 4 * COUNT
    assert Counter(lines[0]) == Counter(lines[1])  # no clock, no counter in a line
    assert (first / "frames.timing").read_bytes() != (again / "frames.timing").read_bytes()
    diff = subprocess.run(
        [str(RRLAB), "diff", str(first), str(again)], capture_output=True, text=True, timeout=120
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert f"same: {len(lines[0])} frames compare equal" in diff.stdout
