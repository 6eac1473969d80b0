"""`rrlab record --runs 2` against RabbitMQ: a pika client that stamps a random integer into a
header of every message is recorded twice; the value that varied becomes a rule in the
cassette's replay-rules.json, with which the replay passes (and without which it misses on that
header). A client that sends more messages each run is told it is not repeatable (exit 1). A
Celery worker and client (tests/celery_app) record as repeatable and teach only clock values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from proxy_harness import RRLAB, free_block

pytestmark = pytest.mark.live
CLIENT = Path(__file__).resolve().with_name("amqp_stamp_client.py")
OUT = "out/bodies.txt"
CELERY_RUNNER = Path(__file__).resolve().parents[1] / "celery_app" / "run.py"
CELERY_OUT = "out/celery.json"


def _celery_installed() -> None:
    celery = Path(sys.executable).with_name("celery")
    assert celery.exists(), f"{celery} missing: Celery is in the test extra (make venv)"


def _url(port: int) -> str:
    return f"amqp://rrlab:rrlab-secret-pw@127.0.0.1:{port}/rrlab"


def _record_twice(run: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path, int]:
    run.mkdir(exist_ok=True)
    port = free_block(1)
    cassette = run / "cassette"
    argv = [str(RRLAB), "record", "--runs", "2", "--amqp", f"{port}=127.0.0.1:5672"]
    argv += ["--cassette", str(cassette), "--write-root", str(run), "--artifact", OUT, "--"]
    argv += [sys.executable, str(CLIENT), OUT, "--url", _url(port), *extra]
    done = subprocess.run(argv, cwd=run, capture_output=True, text=True, timeout=300)
    return done, cassette, port


def _replay(cassette: Path, port: int, run: Path) -> subprocess.CompletedProcess:
    argv = [str(RRLAB), "replay", "--cassette", str(cassette), "--write-root", str(run)]
    argv += ["--timeout", "120", "--", sys.executable, str(CLIENT), OUT, "--url", _url(port)]
    return subprocess.run(argv, cwd=run, capture_output=True, text=True, timeout=300)


def test_runs_2_learns_the_random_header_and_the_replay_passes(live_brokers, tmp_path):
    live_brokers("amqp")
    done, cassette, port = _record_twice(tmp_path / "rec")
    assert done.returncode == 0, done.stderr
    assert "learned 1 ignore rule(s)" in done.stderr, done.stderr
    rules = json.loads((cassette / "replay-rules.json").read_text())
    assert rules["ignore_fields"] == ["properties.headers.stamp"]
    assert "conn 1 message" in rules["comments"]["properties.headers.stamp"]
    assert not list(tmp_path.joinpath("rec").glob(".cassette.run2-*"))  # run 2 is discarded

    replayed = _replay(cassette, port, tmp_path / "rec")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "rrlab replay: OK" in replayed.stdout

    os.remove(cassette / "replay-rules.json")  # without the learned rule: a miss on the header
    missed = _replay(cassette, port, tmp_path / "rec")
    assert missed.returncode == 1
    assert "properties.headers.stamp: recorded" in missed.stdout + missed.stderr


def test_runs_2_says_a_command_is_not_repeatable(live_brokers, tmp_path):
    live_brokers("amqp")
    state = tmp_path / "published-before.txt"
    done, cassette, _port = _record_twice(tmp_path / "rec", "--more-each-run", str(state))
    assert done.returncode == 1, done.stderr
    assert "not repeatable against this broker state" in done.stderr, done.stderr
    assert "client message" in done.stderr and "run 1 sent" in done.stderr, done.stderr
    assert not (cassette / "replay-rules.json").exists()


def test_runs_2_on_celery_learns_clock_values_and_nothing_of_scheduling(live_brokers, tmp_path):
    """A Celery worker and client (rpc:// results) recorded twice: repeatable; what it learns are
    clock readings (the pidbox broadcast's `expires`, heartbeat-event timestamps), never a method
    argument (a worker's consumers set up their channels in either order) nor a task result
    (which prefork child published which result), and identifiers are left to binding."""
    _celery_installed()
    live_brokers("amqp")
    run = tmp_path / "rec"
    run.mkdir()
    port = free_block(1)
    cassette = run / "cassette"
    argv = [str(RRLAB), "record", "--runs", "2", "--amqp", f"{port}=127.0.0.1:5672"]
    argv += ["--cassette", str(cassette), "--write-root", str(run), "--artifact", CELERY_OUT]
    argv += ["--", sys.executable, str(CELERY_RUNNER), CELERY_OUT]
    env = {**os.environ, "CELERY_BROKER_URL": _url(port)}
    done = subprocess.run(argv, cwd=run, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    fields = json.loads((cassette / "replay-rules.json").read_text())["ignore_fields"]
    assert "properties.headers.expires" in fields, fields
    assert not [f for f in fields if f.startswith("args.") or "result" in f], fields
    assert "not written: properties.correlation_id (identifier-shaped" in done.stderr
