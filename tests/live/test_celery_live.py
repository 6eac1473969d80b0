"""A Celery worker and its client (tests/celery_app), started with the `celery` command and
Celery's defaults (prefork pool, mingle, gossip, heartbeats), recorded on RabbitMQ with
`rrlab record` and replayed offline with `rrlab replay`: the target of issue N.

Two variants: the `rpc://` result backend (the client writes the results) and no result backend
(the worker writes each task's output). Each is recorded once per module; the replays then run
what a user runs: the same command (identical artifact), the same command on a host with another
name (`unshare -u` and `hostname` inside the sandbox), one task argument changed (a miss naming
the field), no worker started (a miss, never OK).

Each replay needs all of N's mechanisms: bindings of client-chosen ids and the host name, clock
values, liveness of heartbeat events, causality across connections, acks in any order, channels
bound by what they do, a delivery held until its consumer exists live, and connections that set
up alike as a pool. Every case is a plain test, the replays that must pass as much as the ones
that must never pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from proxy_harness import RRLAB, free_block

pytestmark = pytest.mark.live
ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "celery_app" / "run.py"
OUT = "out/celery.json"
BACKENDS = {"rpc": "rpc://", "none": "none"}
OTHER_HOST = "rrlab-ci-elsewhere"


def _celery_installed() -> None:
    celery = Path(sys.executable).with_name("celery")
    assert celery.exists(), f"{celery} missing: Celery is in the test extra (make venv)"


def _command(backend: str, *extra: str) -> list[str]:
    return [sys.executable, str(RUNNER), OUT, "--backend", BACKENDS[backend], *extra]


def _env(port: int) -> dict[str, str]:
    return {
        **os.environ,
        "CELERY_BROKER_URL": f"amqp://rrlab:rrlab-secret-pw@127.0.0.1:{port}/rrlab",
    }


@pytest.fixture(scope="module")
def recorded(live_brokers, tmp_path_factory):
    """{backend: (cassette, recorded artifact bytes, worker-facing port)}, recorded once each."""
    _celery_installed()
    live_brokers("amqp")
    out = {}
    for backend in BACKENDS:
        run = tmp_path_factory.mktemp(f"celery-{backend}")
        port = free_block(1)
        cassette = run / "cassette"
        argv = [str(RRLAB), "record", "--amqp", f"{port}=127.0.0.1:5672", "--cassette"]
        argv += [str(cassette), "--write-root", str(run), "--artifact", OUT, "--"]
        done = subprocess.run(
            argv + _command(backend), cwd=run, env=_env(port), capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        out[backend] = (cassette, (run / OUT).read_bytes(), port)
    return out


def _replay(
    recorded, backend: str, tmp_path: Path, command: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    cassette, _artifact, port = recorded[backend]
    argv = [str(RRLAB), "replay", "--cassette", str(cassette), "--write-root", str(tmp_path)]
    argv += ["--timeout", "60", "--", *command]  # a replay that passes takes ~15 s
    done = subprocess.run(
        argv, cwd=tmp_path, env={**_env(port), **(env or {})}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    print(done.stdout + done.stderr)  # the miss lines, for whoever reads a failure
    return done


def _other_host(command: list[str]) -> list[str]:
    """The command in its own UTS namespace under another host name (inside the sandbox)."""
    script = f'hostname {OTHER_HOST} && test "$(hostname)" = {OTHER_HOST} && exec "$@"'
    return ["unshare", "-u", "sh", "-c", script, "sh", *command]


@pytest.mark.parametrize("backend", BACKENDS)
def test_replays_identically(recorded, tmp_path, backend):
    done = _replay(recorded, backend, tmp_path, _command(backend))
    assert done.returncode == 0
    assert (tmp_path / OUT).read_bytes() == recorded[backend][1]


def test_the_sandbox_can_take_another_host_name(recorded, tmp_path):
    """What the other-host replays stand on: inside the replay sandbox, `unshare -u` and
    `hostname` give the command another host name (the replay itself is no verdict here: the
    command talks to no broker)."""
    command = _other_host(["sh", "-c", "mkdir -p out && hostname > out/host.txt"])
    _replay(recorded, "rpc", tmp_path, command)
    assert (tmp_path / "out" / "host.txt").read_text().strip() == OTHER_HOST


@pytest.mark.parametrize("backend", BACKENDS)
def test_replays_identically_on_another_host(recorded, tmp_path, backend):
    done = _replay(recorded, backend, tmp_path, _other_host(_command(backend)))
    assert done.returncode == 0
    assert (tmp_path / OUT).read_bytes() == recorded[backend][1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_changed_task_argument_is_a_miss_naming_it(recorded, tmp_path, backend):
    """unit_cents 250 -> 260: the miss shows that argument (in the task's body or its argsrepr
    header), not an id, a host name or a clock reading."""
    done = _replay(recorded, backend, tmp_path, _command(backend, "--unit-cents", "260"))
    assert done.returncode == 1
    text = done.stdout + done.stderr
    firsts = [
        line
        for line in text.splitlines()
        if "recorded " in line and " live " in line and not line.startswith("MISS")
    ]  # the first field diff (a MISS head line names its connections: "recorded conn 4")
    assert firsts, text
    assert "250" in firsts[0] and "260" in firsts[0], firsts[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_worker_is_never_ok(recorded, tmp_path, backend):
    """The client alone: the recorded results must not be handed to it (exit 1, not OK)."""
    done = _replay(recorded, backend, tmp_path, _command(backend, "--no-worker"))
    assert done.returncode == 1
    assert "rrlab replay: OK" not in done.stdout + done.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_changed_task_body_is_never_ok(recorded, tmp_path, backend):
    """The worker's task computes otherwise (a surcharge): exit 1, not OK."""
    env = {"RRLAB_CELERY_SURCHARGE_CENTS": "1"}
    done = _replay(recorded, backend, tmp_path, _command(backend), env)
    assert done.returncode == 1
    assert "rrlab replay: OK" not in done.stdout + done.stderr
