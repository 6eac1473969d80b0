"""A consumer never gets a message its producer has not sent, a run whose producer never
produced is never OK, and the order a pool acks in is not behaviour (issue N): pika against
`rrlab serve`, no broker anywhere.

The cassette (amqp_cassettes/pika-two-connections) holds a consumer connection that declares a
queue and consumes, and a publisher connection that publishes ten messages with confirms. Live,
the publisher publishes late (after the consumer has waited for deliveries) or never.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT, RRLAB, assert_replays, fake_broker, run_client

CASSETTE = ROOT / "tests" / "replay" / "amqp_cassettes" / "pika-two-connections"
BODIES = "out/bodies.txt"
CLIENT = [sys.executable, str(ROOT / "tests" / "replay" / "amqp_two_connections.py"), BODIES]


@pytest.mark.parametrize("mode", ["transcript", "lookup"])
def test_deliveries_wait_for_a_late_publisher(mode, tmp_path):
    """The consumer waits 1 s before anything is published: a delivery then would be one no
    live publish produced (the client exits 4). Once the publisher publishes, all ten come."""
    argv = [*CLIENT, "--publish", "late", "--early", "1"]
    served = assert_replays(CASSETTE, argv, [BODIES], tmp_path, "--match", mode)
    assert served.report["by_api"]["amqp"]["Basic.Publish"]["matched"] == 10
    assert served.report["totals"]["unused"] == 0


def test_a_publisher_that_never_publishes_delivers_nothing_and_misses(tmp_path):
    """The publisher connects and selects confirms, then never publishes: the consumer gets
    no delivery in its 3 s, and the fake broker names the ten recorded publishes never sent."""
    cwd = tmp_path / "run"
    cwd.mkdir()
    with fake_broker(CASSETTE, tmp_path) as served:
        client = run_client([*CLIENT, "--publish", "never", "--wait", "3"], cwd)
    assert client.returncode == 3, client.stdout + client.stderr
    assert (cwd / BODIES).read_text() == ""  # not one delivery
    assert served.exit_code == 1
    report = served.report
    assert report["verdict"] == "miss" and report["never_sent"] >= 10
    publishes = [m for m in report["misses"] if m["api"] == "Basic.Publish"]
    assert len(publishes) == 10 and {m["recorded_conn"] for m in publishes} == {2}
    assert "never sent by the live command: recorded conn 2 frame" in publishes[0]["reason"]
    assert "MISS amqp Basic.Publish on live conn" in served.stderr


def test_rrlab_replay_default_profile_fails_a_run_whose_publisher_never_published(tmp_path):
    """The default profile (rr_replay, not strict): a run that never did what was recorded is
    never OK, and the reason says what it never sent."""
    cmd = [*RRLAB, "replay", "--cassette", str(CASSETTE), "--"]
    cmd += [*CLIENT, "--publish", "never", "--wait", "2"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "rrlab replay: OK" not in proc.stdout, proc.stdout  # COMMAND_FAILED: it exits 3
    # the ten publishes, and the consumer's acks of the deliveries it never got
    assert "never sent 20 recorded behaviour frames" in proc.stdout, proc.stdout


# -- scheduling is not behaviour -----------------------------------------------------------------

PIKA = [sys.executable, str(ROOT / "tests" / "replay" / "amqp_pika_client.py"), BODIES]
ACKS = ROOT / "tests" / "replay" / "amqp_cassettes" / "pika-acks"


def test_acks_in_another_order_replay_in_transcript_mode(tmp_path):
    """Recorded: twenty deliveries acked one by one, in order. Live: each group of five acked
    in reverse (a pool finishing tasks in another order), with the default match mode."""
    argv = [*PIKA, "--count", "20", "--delay", "0", "--prefetch", "100", "--ack-reversed", "5"]
    served = assert_replays(ACKS, argv, [BODIES], tmp_path)
    assert served.report["by_api"]["amqp"]["Basic.Ack"]["matched"] == 20
    assert served.report["totals"]["unused"] == 0


POOL = ROOT / "tests" / "replay" / "amqp_cassettes" / "pika-pool"
POOL_CLIENT = [sys.executable, str(ROOT / "tests" / "replay" / "amqp_pool.py"), "out/pool.txt"]


@pytest.mark.parametrize("first", ["a", "b"])
def test_a_pool_binds_by_what_each_member_does_not_by_which_connected_first(first, tmp_path):
    """Two connections open alike and publish the same 80 messages each (more steps than the
    64-step rebind window) before their queue declarations tell them apart. Recorded with "a"
    connecting first; replayed either way, each ends on the recording of what it did."""
    served = assert_replays(POOL, [*POOL_CLIENT, "--first", first], ["out/pool.txt"], tmp_path)
    assert served.report["connections"]["bound"] == 2
    assert served.report["totals"]["unused"] == 0
