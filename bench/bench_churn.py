"""Connection churn through `rrlab proxy`: is the cost of a connection flat in their number?

One MQTT connection at a time (connect, CONNECT, CONNACK, DISCONNECT, close) against a real
broker (mosquitto when installed, else amqtt), N connections in all. For windows of 100 at the
start, around 1,000 and at the end, it prints connections/s and the proxy's CPU per connection;
then the SIGTERM-to-exit time (the cassette finalized with every connection in its manifest),
and the proxy's RSS. Before connection events were journalled, each open and close rewrote the
whole manifest: 10 ms per connection at first, 68 ms by the 3,000th, 8 s to exit on SIGTERM.

A memory probe (--probe-buffer) then has 8 connections each send 50 MiB of a declared 60 MiB
frame with --max-buffered-bytes 64 MiB: reads pause, so the proxy's RSS stays near the limit
(it reached 462 MB without one).

    .venv/bin/python bench/bench_churn.py [--count 10000] [--probe-buffer]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RRLAB = ROOT / ".venv" / "bin" / "rrlab"


def connect_packet(client_id: bytes) -> bytes:
    """MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s."""
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    return bytes([0x10, len(body)]) + body


CONNECT = connect_packet(b"bnch")
DISCONNECT = b"\xe0\x00"
MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_proxy(listen: int, upstream: str, work: Path, *extra: str) -> subprocess.Popen:
    argv = [str(RRLAB), "proxy", "--mqtt", f"{listen}={upstream}",
            "--cassette", str(work / f"cassette-{listen}"), "--write-root", str(work),
            "--allow-upstream", upstream, "--log-file", str(work / f"proxy-{listen}.log"),
            *extra]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if " listening " in line:
            break
    else:
        raise RuntimeError(f"proxy exited: rc={proc.wait()}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc


def one_connection(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(CONNECT)
        got = b""
        while len(got) < 4:
            chunk = sock.recv(16)
            if not chunk:
                raise RuntimeError("closed before CONNACK")
            got += chunk
        if got[:2] != b"\x20\x02":
            raise RuntimeError(f"not a CONNACK: {got!r}")
        sock.sendall(DISCONNECT)


def churn(port: int, count: int, proc: psutil.Process) -> list[tuple[int, float, float]]:
    """(connections so far, connections/s, proxy CPU ms per connection) per window of 100."""
    marks = sorted({0, min(900, count - 100), count - 100})
    rows = []
    n = 0
    for start in marks:
        while n < start:
            one_connection(port)
            n += 1
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.perf_counter()
        for _ in range(100):
            one_connection(port)
        n += 100
        took = time.perf_counter() - t0
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        rows.append((n, 100 / took, cpu * 1000 / 100))
    return rows


def probe_buffer(upstream: str, work: Path) -> tuple[float, float]:
    """Peak RSS (MB) of a proxy limited to 64 MiB of unfinished frames, and of one without."""
    peaks = []
    for extra in (("--max-buffered-bytes", str(64 * MiB)), ()):
        port = free_port()
        proxy = start_proxy(port, upstream, work, *extra)
        ps = psutil.Process(proxy.pid)
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
        peak = 0.0
        threads = [
            threading.Thread(target=_feed_partial, args=(s, i), daemon=True)
            for i, s in enumerate(socks)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(t.is_alive() for t in threads):
            peak = max(peak, ps.memory_info().rss / 1e6)
            time.sleep(0.05)
        peak = max(peak, ps.memory_info().rss / 1e6)
        for s in socks:
            s.close()
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(30)
        peaks.append(peak)
    return peaks[0], peaks[1]


def _feed_partial(sock: socket.socket, n: int) -> None:
    """CONNECT, then 50 MiB of a PUBLISH that declares 60 MiB, and nothing more (own client
    ids: the broker would close a connection whose id another one takes over)."""
    header = bytes([0x30, *_varint(60 * MiB)]) + b"\x00\x01t"
    chunk = b"x" * MiB
    sock.settimeout(5)
    try:
        sock.sendall(connect_packet(b"probe%d" % n) + header)
        for _ in range(50):
            sock.sendall(chunk)
    except OSError:
        pass  # the proxy stopped reading: that is the limit at work


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--probe-buffer", action="store_true", help="also the memory-limit probe")
    args = ap.parse_args()
    if args.count < 200:
        ap.error("--count must be at least 200")
    from rrlab.brokers import control

    impl = "mosquitto" if shutil.which("mosquitto") else "amqtt"
    started = control.up(["mqtt"], mqtt_impl=impl, out=None)["mqtt"]["started"]
    upstream = "127.0.0.1:1883"
    work = Path(tempfile.mkdtemp(prefix="rrlab-churn-"))
    try:
        port = free_port()
        proxy = start_proxy(port, upstream, work)
        ps = psutil.Process(proxy.pid)
        rows = churn(port, args.count, ps)
        rss = ps.memory_info().rss / 1e6
        t0 = time.perf_counter()
        proxy.send_signal(signal.SIGTERM)
        rc = proxy.wait(60)
        exit_s = time.perf_counter() - t0
        from rrlab.rr.cassette import CassetteReader

        manifest = CassetteReader.open(work / f"cassette-{port}").manifest
        print(f"\n{args.count} MQTT connections through rrlab proxy to {impl}, one at a time")
        print(f"{'after':>7} {'conn/s':>8} {'proxy CPU ms/conn':>18}")
        for n, rate, cpu in rows:
            print(f"{n:>7} {rate:>8.0f} {cpu:>18.2f}")
        first, last = rows[0][2], rows[-1][2]
        print(f"CPU per connection, last window / first: {last / first:.2f}")
        print(
            f"SIGTERM to exit: {exit_s:.2f} s (rc {rc}), manifest holds "
            f"{len(manifest.connections)} connections; proxy RSS before it {rss:.0f} MB"
        )
        if args.probe_buffer:
            limited, unlimited = probe_buffer(upstream, work)
            print(
                "8 connections x 50 MiB of a declared 60 MiB frame: proxy peak RSS "
                f"{limited:.0f} MB with --max-buffered-bytes 64 MiB, {unlimited:.0f} MB with "
                "the default (256 MiB)"
            )
    finally:
        if started:  # ours: a broker left up would make the next bench's `up` refuse its impl
            control.down(["mqtt"], out=None)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
