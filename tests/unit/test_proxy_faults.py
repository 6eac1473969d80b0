"""`rrlab proxy` when the world is unkind, with no broker (issue J.2, J.6): a dead upstream
that a client keeps reconnecting to, and a low open-file limit."""

from __future__ import annotations

import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proxy(
    tmp_path: Path, *extra: str, nofile: tuple[int, int] | None = None, proto: str = "kafka"
):
    dead = _free_port()  # nothing listens there
    listen = _free_port()

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    proc = subprocess.Popen(
        [sys.executable, "-m", "rrlab", "proxy", f"--{proto}={listen}=127.0.0.1:{dead}",
         "--allow-upstream", f"127.0.0.1:{dead}", "--kafka-node-base-port", str(_free_port()),
         "--cassette", str(tmp_path / "c"), "--write-root", str(tmp_path), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if " listening " in line:
            break
    else:
        raise AssertionError(f"proxy exited {proc.wait()}: {proc.stderr.read()}")  # type: ignore[union-attr]
    return proc, listen


def test_a_client_reconnecting_to_a_dead_upstream_is_one_error_line_then_a_count(
    tmp_path: Path,
) -> None:
    """Before: one ERROR line per attempt (2,802 in 10 s from a Kafka client)."""
    proc, port = _proxy(tmp_path, "--log-file", str(tmp_path / "log.jsonl"))
    attempts = 300
    for _ in range(attempts):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(5)
            assert sock.recv(10) == b""  # closed: the upstream refused
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    lines = [ln for ln in err.splitlines() if "upstream_failed" in ln]
    assert len(lines) == 2, err[-2000:]
    assert "ERROR" in lines[0] and "refused the kafka connection" in lines[0]
    counted = re.search(r"\.\.\. ([\d,]+) more in \d+ s; last: upstream 127\.0\.0\.1:\d+", lines[1])
    assert counted and int(counted.group(1).replace(",", "")) == attempts - 1, lines[1]


def test_the_refusal_reads_for_every_protocol(tmp_path: Path) -> None:
    """Before: "upstream 127.0.0.1:N refused a amqp connection" (issue L.6)."""
    proc, port = _proxy(tmp_path, proto="amqp")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        assert sock.recv(10) == b""
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert "refused the amqp connection" in err and "a amqp" not in err, err[-2000:]


def test_open_file_limit_is_raised_or_said(tmp_path: Path) -> None:
    """Before: the proxy kept the soft limit and said nothing about it."""
    proc, _port = _proxy(tmp_path, nofile=(64, 8192))
    limits = Path(f"/proc/{proc.pid}/limits").read_text()
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert re.search(r"Max open files\s+8192\s+8192", limits), limits
    assert "open-file limit" not in err

    proc, _port = _proxy(tmp_path / "low", nofile=(64, 64))
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert "warning: open-file limit 64 (hard limit 64): about 40 connections at most" in err
