"""The proxy's one-line progress display: drawn on a terminal, absent when stdout is a pipe."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest
from proxy_harness import ROOT, RRLAB, RunningProxy, free_block, run_worker

PROGRESS = re.compile(r"\r(\d+) frames +[\d.]+ MB +\d+ open / (\d+) connections")


def _read_until(fd: int, pattern: re.Pattern[str], seen: list[str], timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen.append(os.read(fd, 65536).decode(errors="replace"))
            except OSError:  # the terminal closed: the proxy is gone
                break
        for match in pattern.finditer("".join(seen)):
            if not pattern.groups or int(match.group(1)) > 0:  # progress: some frames counted
                return match
    raise AssertionError(f"no {pattern.pattern!r} within {timeout} s in {''.join(seen)!r}")


@pytest.mark.live
def test_progress_line_on_a_terminal(live_brokers, tmp_path):
    live_brokers("mqtt")
    port = free_block(1)
    master, slave = pty.openpty()
    argv = [str(RRLAB), "proxy", f"--mqtt={port}=127.0.0.1:1883", "--cassette",
            str(tmp_path / "cassette"), "--write-root", str(tmp_path),
            "--log-file", str(tmp_path / "proxy-log.jsonl")]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=slave, stderr=subprocess.DEVNULL, cwd=ROOT)
    os.close(slave)
    seen: list[str] = []
    try:
        _read_until(master, re.compile(r"listening mqtt"), seen, 30)
        run_worker(
            "mqtt", f"mqtt://127.0.0.1:{port}", tmp_path / "out", seed=4, count=20, topic="rr.prog"
        )
        match = _read_until(master, PROGRESS, seen, 10)
        assert int(match.group(2)) == 2  # the worker's publisher and subscriber connections
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "".join(seen)  # the proxy's terminal (pty) output
        os.close(master)


@pytest.mark.live
def test_no_progress_line_when_not_a_terminal(live_brokers, tmp_path):
    live_brokers("mqtt")
    port = free_block(1)
    with RunningProxy([f"--mqtt={port}=127.0.0.1:1883"], tmp_path / "cassette") as proxy:
        run_worker(
            "mqtt", f"mqtt://127.0.0.1:{port}", tmp_path / "out", seed=4, count=20, topic="rr.prog"
        )
        time.sleep(1.2)  # more than two ticks of the display, had there been one
        assert proxy.stop() == 0, proxy.stderr()
        output = "".join(proxy.drain())
    assert "listening mqtt" in output
    assert "\r" not in output and " frames " not in output
