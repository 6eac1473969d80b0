"""Record once, replay with no command: `rrlab record` of the demo worker through the proxy
against a real broker (amqtt's) stores the command, its working directory relative to the
cassette and the artifact; `rrlab replay --cassette DIR` from another directory then runs that
command from the project directory against the fake broker, offline, and the artifact matches.
"""

from __future__ import annotations

import sys

import pytest
from proxy_harness import free_block, record_in_project, replay_elsewhere

from rrlab.rr.cassette.reader import load_manifest

pytestmark = pytest.mark.live


def test_a_recorded_run_replays_with_no_command_given(live_brokers, tmp_path):
    live_brokers("mqtt")
    port = free_block(1)
    argv = [sys.executable, "-m", "worker", "--driver", "mqtt", "--count", "20"]
    argv += ["--mqtt-url", f"mqtt://127.0.0.1:{port}", "--topic", f"rrlab.stored.{port}"]
    argv += ["--out", "out/w"]
    route = ["--mqtt", f"{port}=127.0.0.1:1883"]
    project, cassette = record_in_project(tmp_path, route, argv, timeout=300)
    command = load_manifest(cassette).command
    assert command is not None and command.cwd == "../../.."
    assert command.argv == tuple(argv)  # the venv's python is outside the project: as given
    aggregate = project / "out" / "w" / "aggregate.json"
    report = replay_elsewhere(cassette, aggregate, tmp_path, timeout=300)
    assert report["sandbox"]["used"] == "netns"
