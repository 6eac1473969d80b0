"""replayer.early_listen: `rrlab replay` binds the recorded addresses itself and `rrlab serve`
takes the listening sockets over, so the command can start before the fake broker listens."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rrlab.replayer import early_listen
from rrlab.rr.usage import UsageError

ROOT = Path(__file__).resolve().parents[2]
CASSETTE = ROOT / "cassettes" / "worker-mqtt-mosquitto"  # one MQTT listener, 11883
RECORDED_PORT = 11883


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_client_connects_before_anyone_accepts():
    port = _free_port()
    bound = early_listen.bind([port])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # queued in the backlog: no accept needed for connect to succeed
        assert early_listen.flags(bound) == ["--listen-fd", f"{port}={bound[port].fileno()}"]
    finally:
        early_listen.close(bound)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_a_taken_port_is_a_usage_error_and_nothing_stays_bound():
    free, taken = _free_port(), socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(
            UsageError, match=rf"cannot listen on 127.0.0.1:{taken.getsockname()[1]}"
        ):
            early_listen.bind([free, taken.getsockname()[1]])
    finally:
        taken.close()
    early_listen.close(early_listen.bind([free]))  # the first one was released


def test_serve_rejects_a_malformed_value():
    with pytest.raises(UsageError, match="LIVE_PORT=FD"):
        early_listen.parse(["11883"])
    assert early_listen.parse(["11883=7"]) == {11883: 7}


def test_serve_takes_over_the_bound_socket(tmp_path):
    port = _free_port()
    bound = early_listen.bind([port])
    argv = [sys.executable, "-m", "rrlab", "serve", "--cassette", str(CASSETTE)]
    argv += ["--port-offset", str(port - RECORDED_PORT), "--report", str(tmp_path / "r.json")]
    serve = subprocess.Popen(
        [*argv, *early_listen.flags(bound)],
        pass_fds=[s.fileno() for s in bound.values()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    early_listen.close(bound)  # only serve's copy is left: a live port means serve holds it
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        assert line.startswith(f"rrlab serve: listening mqtt 127.0.0.1:{port}"), (
            line + serve.stderr.read()
        )
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"\x10")  # half a CONNECT: serve accepted and reads it
    finally:
        serve.terminate()
        out, err = serve.communicate(timeout=30)
    assert serve.returncode in (0, 1), err  # a connection it could not match is a miss, not 2
    assert "cannot listen" not in err
