"""What `rrlab proxy` prints: human lines (or JSON lines), warnings for failures behind it, a
closing line, and a startup check of the Kafka broker listener. No broker needed: the upstream
is a port nobody listens on, so every connection is refused upstream."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RRLAB = [sys.executable, "-m", "rrlab"]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _argv(tmp_path: Path, listen: int, dead: int, *extra: str) -> list[str]:
    return [*RRLAB, "proxy", f"--mqtt={listen}=127.0.0.1:{dead}", "--cassette",
            str(tmp_path / "c"), "--write-root", str(tmp_path),
            "--allow-upstream", f"127.0.0.1:{dead}", *extra]  # fmt: skip


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "proxy exited early"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listening on {port}")


def _refused_client(port: int) -> None:
    """One client whose upstream is refused: the proxy closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(5)
        assert s.recv(10) == b""


def _run_piped(tmp_path: Path, *extra: str) -> tuple[int, list[str]]:
    """`rrlab proxy ... 2>&1 | cat`: one refused client, SIGTERM; rc and the merged lines."""
    listen, dead = _free_ports(2)
    proc = subprocess.Popen(
        _argv(tmp_path, listen, dead, *extra),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    _wait_port(listen, proc)
    _refused_client(listen)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out.splitlines()


def test_human_lines_a_warning_for_the_refused_upstream_and_a_closing_line(tmp_path) -> None:
    rc, lines = _run_piped(tmp_path)
    assert rc == 0, lines
    assert lines[0].startswith("rrlab proxy: listening mqtt 127.0.0.1:"), lines
    refused = [ln for ln in lines if "upstream_failed" in ln]
    assert len(refused) == 2, lines  # the port probe and the client: both refused upstream
    assert re.match(
        r"\d\d:\d\d:\d\d ERROR upstream_failed: upstream 127\.0\.0\.1:\d+ refused", refused[0]
    )
    assert lines[-1] == (
        f"rrlab proxy: finalized {tmp_path / 'c'}: 0 frames, 0 connections, 0 bytes "
        "(2 warnings, see above)"
    ), lines
    assert not any(ln.lstrip().startswith("{") for ln in lines), lines  # no raw JSON
    assert not any("\r" in ln for ln in lines)  # no progress line in a pipe


def test_json_format_every_line_parses(tmp_path) -> None:
    log = tmp_path / "log.jsonl"
    rc, lines = _run_piped(tmp_path, "--log-format", "json", "--log-file", str(log))
    assert rc == 0, lines
    records = [json.loads(ln) for ln in lines]  # every line, stdout included
    events = [r.get("event") for r in records]
    assert "listening" in events and "upstream_failed" in events and events[-1] == "closed"
    assert records[-1]["connections"] == 0 and records[-1]["warnings"] == 2
    assert {r["level"] for r in records if r.get("event") == "upstream_failed"} == {"error"}
    assert all("log_format" not in r and "__class_uuid__" not in r for r in records)
    assert "upstream_failed" in [json.loads(ln).get("event") for ln in log.read_text().splitlines()]


def test_on_a_terminal_the_warning_never_lands_on_the_progress_line(tmp_path) -> None:
    listen, dead = _free_ports(2)
    master, slave = pty.openpty()
    proc = subprocess.Popen(_argv(tmp_path, listen, dead), cwd=ROOT, stdout=slave, stderr=slave)
    os.close(slave)
    seen = ""
    try:
        deadline = time.monotonic() + 30
        while " connections\x1b[K" not in seen:  # the progress line is drawn
            assert time.monotonic() < deadline, seen
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 65536).decode()
        _refused_client(listen)
        while "upstream_failed" not in seen or not seen.endswith("\x1b[K"):
            assert time.monotonic() < deadline, seen
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 65536).decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        while select.select([master], [], [], 0.5)[0]:
            try:
                seen += os.read(master, 65536).decode()
            except OSError:
                break
        os.close(master)
    before, _, after = seen.partition("upstream_failed")
    row_start = before.rfind("\r\x1b[K")
    assert row_start >= 0 and "connections" not in before[row_start:], seen  # a row of its own
    assert "\r\n\r0 frames  0.0 MB  0 open / 0 connections\x1b[K" in after  # redrawn below it
    assert "rrlab proxy: finalized" in after.rsplit("\r\x1b[K", 1)[-1]  # replaces the progress


def test_a_kafka_broker_listener_on_another_route_port_is_refused_at_startup(tmp_path) -> None:
    kafka, amqp = 19192, 19193  # the first Kafka broker listener would be 19193
    done = subprocess.run(
        [*RRLAB, "proxy", f"--kafka={kafka}=127.0.0.1:9092", f"--amqp={amqp}=127.0.0.1:5672",
         "--cassette", str(tmp_path / "c"), "--write-root", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done
    assert "--kafka 127.0.0.1:19192=127.0.0.1:9092" in done.stderr
    assert "--amqp 127.0.0.1:19193=127.0.0.1:5672" in done.stderr
    assert "--kafka-node-base-port" in done.stderr
    assert not (tmp_path / "c").exists()  # nothing recorded


def test_a_taken_kafka_broker_listener_port_is_refused_at_startup(tmp_path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        done = subprocess.run(
            [*RRLAB, "proxy", f"--kafka={_free_ports(1)[0]}=127.0.0.1:9092",
             "--kafka-node-base-port", str(taken), "--cassette", str(tmp_path / "c"),
             "--write-root", str(tmp_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2, done
    assert f"--kafka-node-base-port {taken}: cannot listen on 127.0.0.1:{taken}" in done.stderr
    assert not (tmp_path / "c").exists()


def test_metrics_on_the_kafka_broker_listener_port_is_refused(tmp_path) -> None:
    kafka = _free_ports(1)[0]
    done = subprocess.run(
        [*RRLAB, "proxy", f"--kafka={kafka}=127.0.0.1:9092", "--metrics-port", str(kafka + 1),
         "--cassette", str(tmp_path / "c"), "--write-root", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and f"--metrics-port {kafka + 1} is where" in done.stderr
