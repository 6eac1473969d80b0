"""A replayed command that never connects is told where the fake broker listened (issue L.6):
a client pointed at the wrong port got "matched none of the recorded client frames" and no
address to compare its configuration with."""

from __future__ import annotations

import sys

from .test_replay_cli import KAFKA, replay

NOTHING = [sys.executable, "-c", "pass"]  # connects nowhere


def test_the_closing_line_names_the_fake_brokers_addresses(tmp_path):
    proc, report = replay(KAFKA, tmp_path, argv=NOTHING)
    assert proc.returncode == 1 and report["verdict"] == "nothing_matched", proc.stderr
    closing = proc.stdout.splitlines()[-1]
    assert "it never connected: the fake broker listened on kafka 127.0.0.1:19092" in closing
    assert "where the cassette expects the command to connect" in closing
    assert closing.count("127.0.0.1:") == len({p for _proto, p in _listeners()})
    assert "it never connected" in report["reason"]


def test_a_failing_command_that_never_connected_is_told_too(tmp_path):
    """The usual case: a client pointed at the wrong port fails (connection refused)."""
    fails = [sys.executable, "-c", "raise SystemExit(3)"]
    proc, report = replay(KAFKA, tmp_path, argv=fails)
    assert proc.returncode == 1 and report["verdict"] == "command_failed", proc.stderr
    closing = proc.stdout.splitlines()[-1]
    assert "the command exited 3" in closing
    assert "it never connected: the fake broker listened on kafka 127.0.0.1:19092" in closing


def test_moved_ports_name_the_recorded_ones_too(tmp_path):
    proc, _report = replay(KAFKA, tmp_path, "--port-offset", "100", argv=NOTHING)
    closing = proc.stdout.splitlines()[-1]
    assert "kafka 127.0.0.1:19192 (recorded 127.0.0.1:19092)" in closing, closing


def _listeners():
    from rrlab.rr.replay.recording import Recording

    return Recording.open(KAFKA.path, classify=None).listeners()
