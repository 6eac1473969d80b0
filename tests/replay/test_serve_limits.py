"""`rrlab serve` against hostile or unlucky clients stays bounded (issue J.1, J.2): the fake
broker gets the proxy's limits. Each test runs the real `rrlab serve` on a committed Kafka
cassette with small budgets and measures it from outside (psutil), as a user would.
"""

from __future__ import annotations

import base64
import contextlib
import json
import resource
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from .conftest import CASSETTES, ROOT, RRLAB, free_offset, recorded_ports

CASSETTE = CASSETTES / "worker-kafka-tansu"
MiB = 1 << 20
# kafka-python's ApiVersions v4 request, as recorded (the cassette's first frame)
API_VERSIONS = base64.b64decode(
    "AAAAMwASAAQAAAABABNrYWZrYS1weXRob24tMy4wLjEyAA1rYWZrYS1weXRob24HMy4wLjEyAA=="
)


@dataclass
class Serve:
    proc: subprocess.Popen[str]
    port: int
    report_path: Path
    output: str = ""

    @property
    def rss_mb(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 1e6

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        self.output += out
        return self.proc.returncode

    @property
    def report(self) -> dict:
        return json.loads(self.report_path.read_bytes())


@contextlib.contextmanager
def serve(tmp_path: Path, *args: str, nofile: tuple[int, int] | None = None) -> Iterator[Serve]:
    """`rrlab serve` on the Kafka cassette (moved to free ports), its output on one stream;
    `nofile` = its (soft, hard) open-file limits."""
    offset = free_offset(recorded_ports(CASSETTE))
    report = tmp_path / f"report-{offset}.json"

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    proc = subprocess.Popen(
        [*RRLAB, "serve", "--cassette", str(CASSETTE), "--port-offset", str(offset),
         "--report", str(report), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=limit,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    while sum(" listening " in line for line in lines) < len(recorded_ports(CASSETTE)):
        line = proc.stdout.readline()
        assert line, f"rrlab serve exited {proc.wait()}: {''.join(lines)}"
        lines.append(line)
    served = Serve(proc, 19092 + offset, report, "".join(lines))
    threading.Thread(target=lambda: _keep(proc, served), daemon=True).start()
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _keep(proc: subprocess.Popen[str], served: Serve) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        served.output += line


def round_trip(port: int, timeout: float = 10.0) -> bytes:
    """A well-behaved neighbour: ApiVersions on a fresh connection, its whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(API_VERSIONS)
        got = b""
        while len(got) < 4 or len(got) < 4 + int.from_bytes(got[:4], "big"):
            chunk = sock.recv(65536)
            assert chunk, "the fake broker closed a well-behaved connection"
            got += chunk
    return got


def test_a_client_that_never_reads_stops_being_read(tmp_path: Path) -> None:
    """Before: serve read on and queued every answer (592k requests: 46 -> 229 MB RSS, still
    growing; a neighbour 20x slower). Now its reads pause while its answers wait unsent, so
    the client's own sends block, and serve's memory and neighbours are untouched."""
    with serve(tmp_path) as served:
        before = served.rss_mb
        flood = socket.create_connection(("127.0.0.1", served.port))
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        flood.setblocking(False)
        burst = API_VERSIONS * 256
        pending = memoryview(burst)
        sent = 0
        blocked_since = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                n = flood.send(pending)  # whole requests only: a partial send goes on from there
                pending = pending[n:] or memoryview(burst)
                sent += n
                blocked_since = None
            except BlockingIOError:
                blocked_since = blocked_since or time.monotonic()
                if time.monotonic() - blocked_since > 3:
                    break  # serve has stopped reading this client (it never catches up)
                time.sleep(0.01)
        stalled = blocked_since is not None and time.monotonic() - blocked_since > 3
        assert stalled, f"serve kept reading a client that never reads ({sent:,} bytes taken)"
        assert round_trip(served.port)[8:10] == b"\x00\x00"  # ApiVersions, error code 0
        grown = served.rss_mb - before
        flood.close()
        served.stop()
    assert grown < 40, f"RSS grew {grown:.0f} MB while one client never read"


def _send_partial(port: int, declared: int, size: int, stop: threading.Event) -> socket.socket:
    """`size` bytes of a Kafka frame declaring `declared`; stops where serve stops reading."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(0.5)
    data = memoryview(declared.to_bytes(4, "big") + API_VERSIONS[4:] + b"x" * size)

    def feed() -> None:
        view = data
        while view and not stop.is_set():
            try:
                view = view[sock.send(view[:MiB]) :]
            except TimeoutError:
                continue
            except OSError:
                return

    threading.Thread(target=feed, daemon=True).start()
    return sock


def test_unfinished_frames_are_held_to_the_budget_across_connections(tmp_path: Path) -> None:
    """Before: every byte of every partial frame was held (10 x 62 MB -> 653 MB RSS)."""
    with serve(tmp_path, "--max-buffered-bytes", str(8 * MiB)) as served:
        before = served.rss_mb
        stop = threading.Event()
        socks = [_send_partial(served.port, 40 * MiB, 24 * MiB, stop) for _ in range(6)]
        peak = before
        for _ in range(40):  # 6 x 24 MiB would be 150 MB
            time.sleep(0.1)
            peak = max(peak, served.rss_mb)
        assert round_trip(served.port)[8:10] == b"\x00\x00"  # a neighbour is answered
        stop.set()
        for sock in socks:
            sock.close()
        served.stop()
    assert peak - before < 50, f"RSS grew {peak - before:.0f} MB with an 8 MiB budget"
    assert "reads paused until frames complete" in served.output


def test_a_closed_connection_lets_go_of_its_unfinished_frame(tmp_path: Path) -> None:
    """Before: 30 x 62 MB partial frames took 1.86 GB, not released after the clients closed
    (the buffers waited for the garbage collector: session and link refer to each other)."""
    with serve(tmp_path) as served:
        before = served.rss_mb
        stop = threading.Event()
        socks = [_send_partial(served.port, 40 * MiB, 36 * MiB, stop) for _ in range(3)]
        deadline = time.monotonic() + 20
        while served.rss_mb - before < 90 and time.monotonic() < deadline:
            time.sleep(0.1)
        held = served.rss_mb - before
        assert held >= 90, f"the partial frames never arrived ({held:.0f} MB)"
        stop.set()
        for sock in socks:
            sock.close()
        time.sleep(1.0)
        kept = served.rss_mb - before
        served.stop()
    assert kept < 40, f"{kept:.0f} MB still held after the clients closed (held {held:.0f})"


def test_a_paused_client_that_resets_is_let_go(tmp_path: Path) -> None:
    """A transport whose reads are paused sees no end of its connection by itself: a client
    reset while paused by the budget held its bytes for good (a plain close waits behind the
    unread bytes: --idle-timeout is what ends those)."""
    import struct

    with serve(tmp_path, "--max-buffered-bytes", str(4 * MiB)) as served:
        fds = psutil.Process(served.proc.pid).num_fds
        idle = fds()
        stop = threading.Event()
        sock = _send_partial(served.port, 40 * MiB, 30 * MiB, stop)
        deadline = time.monotonic() + 10
        while "reads paused" not in served.output and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "reads paused" in served.output
        stop.set()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # an abortive close: RST
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and fds() > idle:
            time.sleep(0.2)
        assert fds() == idle, "serve still holds the reset connection"
        served.stop()


def test_a_frame_over_the_frame_budget_closes_its_connection(tmp_path: Path) -> None:
    with serve(tmp_path, "--max-frame-bytes", str(MiB)) as served:
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
            sock.sendall((2 * MiB).to_bytes(4, "big") + API_VERSIONS[4:])
            assert sock.recv(100) == b""  # closed at once, nothing buffered
        assert served.stop() == 1  # a miss: loud
    assert "exceeds the frame budget of 1048576 bytes" in served.output


def test_idle_timeout_closes_a_client_trickling_a_frame(tmp_path: Path) -> None:
    """Before: no idle timeout at all (a 1 byte/s client stayed 41 s and more)."""
    with serve(tmp_path, "--idle-timeout", "1") as served:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", served.port)) as sock:
            sock.settimeout(0.25)
            closed = None
            for byte in (4096).to_bytes(4, "big") + API_VERSIONS[4:]:
                try:
                    sock.sendall(bytes([byte]))
                    if sock.recv(1) == b"":
                        closed = time.monotonic() - started
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed = time.monotonic() - started
                    break
        round_trip(served.port)  # an active client is not idle
        served.stop()
    assert closed is not None and closed < 6, f"closed after {closed} s"


def test_open_file_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    """Before: serve kept the soft limit (1,024 here: 1,012 connections, then none)."""
    with serve(tmp_path, nofile=(64, 4096)) as served:
        idle = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(150)]
        assert round_trip(served.port)[8:10] == b"\x00\x00"
        for sock in idle:
            sock.close()
        served.stop()
    assert "open-file limit" not in served.output


def test_connections_it_cannot_accept_are_errors_and_fail_the_run(tmp_path: Path) -> None:
    """Before: at the limit serve printed nothing, closed every new client unserved and exited
    0 ("replay ok: 0 matched"). Now: a warning at start, one ERROR line (then a count), the
    count in the report, exit 1."""
    with serve(tmp_path, nofile=(64, 64)) as served:
        assert "open-file limit 64 (hard limit 64)" in served.output
        idle = []
        for _ in range(100):
            idle.append(socket.create_connection(("127.0.0.1", served.port)))
        time.sleep(0.5)
        for sock in idle:
            sock.close()
        code = served.stop()
    assert code == 1, served.output
    refused = served.report["connections"]["not_accepted"]
    assert refused > 0
    errors = [ln for ln in served.output.splitlines() if "ERROR accept_failed" in ln]
    assert 1 <= len(errors) <= 2, errors  # the first, then "... N more in S s"
    assert "too many open files (EMFILE)" in errors[0]
    assert f"{refused} connections could not be accepted" in served.output
    assert served.report["verdict"] == "not_accepted"
    assert "replay not_accepted:" in served.output  # the closing line never says ok
