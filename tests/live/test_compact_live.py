"""A long AMQP session is stored compacted and replays: `rrlab record` of the demo worker through
the proxy against RabbitMQ writes more than the default threshold of frame lines, so the
finalized cassette is format 4 (gzipped files); `rrlab replay --cassette DIR` then serves it
offline and the worker's aggregate matches; `rrlab migrate --expand` gives back plain files that
verify, and the stored files are about a tenth of the plain ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from proxy_harness import RRLAB, free_block, record_in_project, replay_elsewhere

from rrlab.rr.cassette import verify
from rrlab.rr.policy import COMPACT_OVER_BYTES

pytestmark = pytest.mark.live
COUNT = 1500  # about 12,000 frames, 2.4 MB of frame lines: over the 1 MiB default


def _stored(cassette: Path) -> int:
    return sum(p.stat().st_size for p in cassette.iterdir() if p.is_file())


def test_a_long_amqp_session_is_stored_compacted_and_replays(live_brokers, tmp_path):
    live_brokers("amqp")
    port = free_block(1)
    argv = [sys.executable, "-m", "worker", "--driver", "amqp", "--count", str(COUNT)]
    argv += ["--amqp-url", f"amqp://rrlab:rrlab-secret-pw@127.0.0.1:{port}/rrlab"]
    argv += ["--seed", "3", "--out", "out/w"]
    route = ["--amqp", f"{port}=127.0.0.1:5672"]
    project, cassette = record_in_project(tmp_path, route, argv, timeout=600)

    manifest = json.loads((cassette / "cassette.json").read_bytes())
    assert manifest["format"] == "rrlab.cassette/4"
    assert manifest["frames_file"]["plain"]["bytes"] > COMPACT_OVER_BYTES
    assert not (cassette / "frames.jsonl").exists() and (cassette / "frames.jsonl.gz").exists()
    compacted = _stored(cassette)
    assert compacted < 1.4 * manifest["raw_bytes"]  # issue M's target, met with room
    replay_elsewhere(cassette, project / "out" / "w" / "aggregate.json", tmp_path, timeout=600)

    done = subprocess.run(
        [str(RRLAB), "migrate", "--expand", str(cassette)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert verify(cassette).frames == manifest["frame_count"]
    assert (cassette / "frames.jsonl").stat().st_size == manifest["frames_file"]["plain"]["bytes"]
    assert _stored(cassette) > 5 * compacted
