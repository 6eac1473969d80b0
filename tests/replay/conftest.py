"""Replay-only tier: the fake broker (`rrlab serve`) serves committed cassettes; no broker runs.

`fake_broker(cassette, ...)` starts `rrlab serve` (on the recorded ports, so the client command
runs unchanged; `offset=N` moves them) and stops it with SIGTERM, giving back its exit code,
closing line and canonical JSON report. Every test of this tier first
checks that no real broker answers on its ports (`no_broker`), so a pass never leans on one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "cassettes"
RRLAB = [sys.executable, "-m", "rrlab"]
BROKER_PORTS = (9092, 5672, 1883)


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@pytest.fixture(autouse=True)
def no_broker() -> None:
    """The replay-only tier must pass with no broker: fail loudly if one answers."""
    answering = [p for p in BROKER_PORTS if port_answers(p)]
    assert not answering, f"a broker answers on {answering}: the replay-only tier needs none"


@dataclass
class Served:
    """A running (then stopped) `rrlab serve`."""

    proc: subprocess.Popen[str]
    report_path: Path
    offset: int
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def port(self, recorded: int) -> int:
        return recorded + self.offset

    def stop(self, timeout: float = 20) -> int:
        if self.exit_code is None:
            self.proc.send_signal(signal.SIGTERM)
            out, err = self.proc.communicate(timeout=timeout)
            self.stdout += out
            self.stderr += err
            self.exit_code = self.proc.returncode
            if self.report_path.exists():
                self.report = json.loads(self.report_path.read_bytes())
        return self.exit_code


_next_offset = [10_000 + (os.getpid() % 50) * 200]


def port_bindable(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a listener could bind `port` now as serve's does (SO_REUSEADDR): also false
    where nothing listens but a connection holds the port as its own end (the offsets reach
    into the ephemeral range, where a client's outgoing connections take their ports)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_offset(recorded_ports: list[int]) -> int:
    """A port offset at which every recorded listener is free (side-by-side replays)."""
    for _ in range(200):
        _next_offset[0] += 100
        offset = _next_offset[0] % 30_000 + 10_000
        if all(port_bindable(p + offset) for p in recorded_ports):
            return offset
    raise RuntimeError("no free port range found")


def recorded_ports(cassette: Path) -> list[int]:
    manifest = json.loads((cassette / "cassette.json").read_bytes())
    ports = {int(r["listen"].rsplit(":", 1)[1]) for r in manifest["routes"]}
    ports |= {int(n["listen_port"]) for n in manifest["kafka_nodes"].values()}
    return sorted(ports)


@contextlib.contextmanager
def fake_broker(cassette: Path, tmp_path: Path, *args: str, offset: int = 0) -> Iterator[Served]:
    """`rrlab serve --cassette CASSETTE ARGS` until the block ends (SIGTERM)."""
    report = tmp_path / f"replay-report-{offset}.json"
    cmd = [
        *RRLAB,
        "serve",
        "--cassette",
        str(cassette),
        "--port-offset",
        str(offset),
        "--report",
        str(report),
        *args,
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    served = Served(proc, report, offset)
    want = len(recorded_ports(cassette))
    lines: list[str] = []
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while sum("listening" in line for line in lines) < want:
        line = proc.stdout.readline()
        if not line:
            out, err = proc.communicate(timeout=10)
            raise AssertionError(f"rrlab serve exited {proc.returncode}: {''.join(lines)}{err}")
        lines.append(line)
        assert time.monotonic() < deadline, f"rrlab serve not listening: {lines}"
    served.stdout = "".join(lines)
    try:
        yield served
    finally:
        served.stop()


def run_client(
    argv: list[str], cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def recorded_artifact(cassette: Path, name: str) -> bytes:
    return (cassette / "artifacts" / name).read_bytes()


def assert_replays(
    cassette: Path,
    argv: list[str],
    artifacts: list[str],
    tmp_path: Path,
    *serve_args: str,
    env: dict[str, str] | None = None,
    offset: int = 0,
) -> Served:
    """Run `argv` (in a fresh cwd under tmp_path) against `rrlab serve`: the client exits 0,
    serve exits 0 with no miss, and every artifact is byte-identical to the recorded copy."""
    manifest = json.loads((cassette / "cassette.json").read_bytes())
    for name in artifacts:
        assert name in manifest["artifacts"], f"{cassette.name} carries no artifact {name}"
    cwd = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    cwd.mkdir()
    with fake_broker(cassette, tmp_path, *serve_args, offset=offset) as served:
        client = run_client(argv, cwd, env=env)
    assert client.returncode == 0, f"client failed:\n{client.stdout}\n{client.stderr}"
    assert served.exit_code == 0, f"serve exit {served.exit_code}:\n{served.stdout}{served.stderr}"
    assert served.report["verdict"] == "ok", served.report["misses"]
    assert served.report["totals"]["missed"] == 0
    for name in artifacts:
        live = (cwd / name).read_bytes()
        assert live == recorded_artifact(cassette, name), f"{name} differs from the recording"
    return served
