"""`rrlab serve` against hostile or unlucky clients: does the fake broker stay bounded?

Each probe starts its own `rrlab serve` on the committed Kafka cassette (moved by a port
offset) and prints one row: the fake broker's RSS before, at its peak and after the clients
left (psutil), and what a well-behaved neighbour saw meanwhile (an ApiVersions round trip on a
fresh connection). Then the stop time against cassette size: generated MQTT cassettes
(connections of 1,000 frames: CONNECT, CONNACK, PUBLISH frames no live client sends, so every
one is unused at stop) of 10 MB, 100 MB and 1 GB: start (until `listening`: wall, and serve's
CPU seconds and peak RSS then, what opening and preparing the cassette cost), RSS, SIGTERM to
exit. With --baseline TREE (another worktree with its own .venv, e.g. main) each generated
cassette is also served by that tree's `rrlab serve`, one after the other: before and after in
one run, with the ratios.

- never-reads: one client sends ApiVersions requests for 10 s and never reads an answer;
- partial: 10 and 30 clients each send 62 MiB of a declared 63 MiB frame, then close (a
  client whose reads are paused cannot be seen closing: its end-of-file waits behind the
  bytes not read; the last row adds --idle-timeout 3, which closes such connections);
- trickle: a client sends one byte a second (serve with --idle-timeout 3 where it has it);
- fds: serve at a soft open-file limit of 1,024 (hard 20,000), 2,000 idle connections, then
  the neighbour.

    .venv/bin/python bench/bench_serve_faults.py [--probes never-reads partial trickle fds stop]
        [--sizes 10 100 1000] [--baseline /path/to/other/worktree]

Run it in a network namespace (`unshare -n`): it listens on fixed ports.
"""

from __future__ import annotations

import argparse
import base64
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RRLAB = [sys.executable, "-m", "rrlab"]  # run in ROOT: this tree's code
CASSETTE = ROOT / "cassettes" / "worker-kafka-tansu"
OFFSET = 20_000
PORT = 19092 + OFFSET
MiB = 1 << 20
# kafka-python's ApiVersions v4 request (the cassette's first frame), correlation id 1
API_VERSIONS = base64.b64decode(
    "AAAAMwASAAQAAAABABNrYWZrYS1weXRob24tMy4wLjEyAA1rYWZrYS1weXRob24HMy4wLjEyAA=="
)


def rss_mb(ps: psutil.Process) -> float:
    return ps.memory_info().rss / 1e6


def peak_rss_mb(pid: int) -> float:
    """The process's peak RSS so far (VmHWM), MB."""
    with open(f"/proc/{pid}/status") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    return kib * 1024 / 1e6


class Serve:
    """One `rrlab serve` child, its output kept."""

    def __init__(
        self,
        cassette: Path,
        work: Path,
        *extra: str,
        nofile: int | None = None,
        tree: Path = ROOT,
    ):
        self.out = work / f"serve-{time.monotonic_ns()}.out"
        rrlab = RRLAB if tree == ROOT else [str(tree / ".venv" / "bin" / "python"), "-m", "rrlab"]
        argv = [*rrlab, "serve", "--cassette", str(cassette), "--port-offset", str(OFFSET),
                "--report", str(work / "report.json"), *extra]  # fmt: skip

        def limit() -> None:
            if nofile is not None:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

        self.started = time.perf_counter()
        with open(self.out, "w") as fh:
            self.proc = subprocess.Popen(
                argv, cwd=tree, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=limit
            )
        deadline = time.monotonic() + 600
        while "listening" not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve did not start:\n{self.output()}")
            time.sleep(0.05)
        self.start_s = time.perf_counter() - self.started
        self.ps = psutil.Process(self.proc.pid)
        cpu = self.ps.cpu_times()
        self.start_cpu_s = cpu.user + cpu.system  # what open and prepare cost (with imports)
        self.start_peak_mb = peak_rss_mb(self.proc.pid)

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def stop(self) -> tuple[float, int]:
        """SIGTERM; (seconds to exit, exit code)."""
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(600)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return time.perf_counter() - t0, code


def round_trip_ms(port: int = PORT, timeout: float = 10.0) -> float | None:
    """One ApiVersions round trip on a fresh connection (ms), None if it failed."""
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(API_VERSIONS)
            got = b""
            while len(got) < 4 or len(got) < 4 + int.from_bytes(got[:4], "big"):
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                got += chunk
    except OSError:
        return None
    return (time.perf_counter() - t0) * 1000


def neighbour_ms(n: int = 5) -> str:
    times = [round_trip_ms() for _ in range(n)]
    ok = [t for t in times if t is not None]
    if not ok:
        return "failed"
    return f"{statistics.median(ok):.1f} ms" + ("" if len(ok) == n else f" ({n - len(ok)} failed)")


def sample_peak(ps: psutil.Process, until: Callable[[], bool], limit_s: float) -> float:
    peak = rss_mb(ps)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and not until():
        peak = max(peak, rss_mb(ps))
        time.sleep(0.05)
    return max(peak, rss_mb(ps))


def probe_never_reads(work: Path, extra: list[str]) -> list[str]:
    serve = Serve(CASSETTE, work, *extra)
    before = rss_mb(serve.ps)
    baseline = neighbour_ms()
    sent = [0]
    stop = threading.Event()

    def flood() -> None:
        with socket.create_connection(("127.0.0.1", PORT)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            burst = API_VERSIONS * 64
            pending = memoryview(burst)
            while not stop.is_set():
                try:
                    n = sock.send(pending)  # a partial send goes on where it stopped
                except BlockingIOError:
                    time.sleep(0.01)  # serve stopped reading: that is the bound at work
                    continue
                except OSError:
                    return
                sent[0] += n
                pending = pending[n:] or memoryview(burst)

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    peak = sample_peak(serve.ps, lambda: False, 10.0)
    during = neighbour_ms()
    peak = max(peak, rss_mb(serve.ps))
    stop.set()
    thread.join(5)
    time.sleep(1.0)
    after = rss_mb(serve.ps)
    serve.stop()
    return [
        f"never-reads ({sent[0] // len(API_VERSIONS):,} requests in 10 s)",
        f"{before:.0f}",
        f"{peak:.0f}",
        f"{after:.0f}",
        f"{baseline} -> {during}",
    ]


def _partial(sock: socket.socket, stop: threading.Event) -> None:
    """62 MiB of a Kafka frame that declares 63 MiB, then wait (serve may stop reading)."""
    sock.settimeout(1.0)
    view = memoryview((63 * MiB).to_bytes(4, "big") + API_VERSIONS[4:] + b"x" * (62 * MiB))
    while view and not stop.is_set():
        try:
            view = view[sock.send(view[:MiB]) :]
        except TimeoutError:
            continue
        except OSError:
            return


def probe_partial(work: Path, extra: list[str], clients: int) -> list[str]:
    serve = Serve(CASSETTE, work, *extra)
    before = rss_mb(serve.ps)
    stop = threading.Event()
    socks = [socket.create_connection(("127.0.0.1", PORT)) for _ in range(clients)]
    threads = [threading.Thread(target=_partial, args=(s, stop), daemon=True) for s in socks]
    for t in threads:
        t.start()
    peak = sample_peak(serve.ps, lambda: not any(t.is_alive() for t in threads), 40.0)
    during = neighbour_ms()
    stop.set()
    for t in threads:
        t.join(5)
    for s in socks:
        s.close()
    time.sleep(1.5)
    after = rss_mb(serve.ps)
    serve.stop()
    idle = " --idle-timeout 3" if "--idle-timeout" in extra else ""
    return [
        f"partial ({clients} x 62 MiB of 63{idle})",
        f"{before:.0f}",
        f"{peak:.0f}",
        f"{after:.0f}",
        f"during: {during}",
    ]


def probe_trickle(work: Path, extra: list[str], limit_s: float = 15.0) -> list[str]:
    serve = Serve(CASSETTE, work, *extra)
    before = rss_mb(serve.ps)
    frame = (4096).to_bytes(4, "big") + API_VERSIONS[4:]
    t0 = time.perf_counter()
    stayed = None
    with socket.create_connection(("127.0.0.1", PORT)) as sock:
        sock.settimeout(1.0)
        for byte in frame:
            if time.perf_counter() - t0 > limit_s:
                break
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1) == b"":
                    stayed = time.perf_counter() - t0
                    break
            except TimeoutError:
                continue
            except OSError:
                stayed = time.perf_counter() - t0
                break
    after = rss_mb(serve.ps)
    serve.stop()
    text = f"closed after {stayed:.1f} s" if stayed else f"still open after {limit_s:.0f} s"
    return ["trickle (1 byte/s)", f"{before:.0f}", "", f"{after:.0f}", text]


def probe_fds(work: Path, extra: list[str], count: int = 2000) -> list[str]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    serve = Serve(CASSETTE, work, *extra, nofile=1024)
    before = rss_mb(serve.ps)
    socks = []
    for _ in range(count):
        try:
            socks.append(socket.create_connection(("127.0.0.1", PORT), timeout=2))
        except OSError:
            break
    time.sleep(1.0)
    held = serve.ps.num_fds()
    during = neighbour_ms(3)
    for s in socks:
        s.close()
    time.sleep(0.5)
    after = rss_mb(serve.ps)
    seconds, code = serve.stop()
    out = serve.output()
    said = [ln for ln in out.splitlines() if "open-file" in ln or "accept" in ln.lower()]
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    note = f"serve holds {held} fds; neighbour: {during}; exit {code}; {len(said)} lines"
    if said:
        note += f' e.g. "{said[0].strip()[:90]}"'
    return [f"fds (soft 1,024, {count:,} idle)", f"{before:.0f}", "", f"{after:.0f}", note]


# -- stop time against cassette size ------------------------------------------------------------


def generate_cassette(path: Path, megabytes: int, per_conn: int = 1000) -> int:
    """An MQTT cassette of about `megabytes` MB of frames (frames.jsonl and the frames.raw
    sidecar together, what the cassette budget counts): connections of `per_conn` frames each
    (CONNECT, CONNACK, then PUBLISH frames of ~160 bytes), one after the other. Returns the
    frame count."""
    from rrlab.rr.cassette import CassetteWriter
    from rrlab.rr.codecs import Direction
    from rrlab.rr.policy import Budgets
    from rrlab.rr.protocols import protocol_for

    connect = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04gen1"
    connack = b"\x20\x02\x00\x00"
    body = b"\x00\x07gen/top" + b"p" * 150
    publish = bytes([0x30, len(body) & 0x7F | 0x80, len(body) >> 7]) + body
    pipeline = protocol_for("mqtt").connection(max_frame_bytes=MiB, redact=True)
    decoded: dict[bytes, list] = {}
    for direction, raw in (
        (Direction.C2S, connect),
        (Direction.S2C, connack),
        (Direction.C2S, publish),
    ):
        batch: list = []
        pipeline.process(direction, [raw], batch)
        decoded[raw] = batch
    publishes = decoded[publish] * (per_conn - 2)
    budgets = Budgets(max_cassette_bytes=(megabytes + 10) * 1_000_000, max_frames=10**8)
    meta = {"recorder": "bench_serve_faults"}
    route = ("mqtt", "127.0.0.1:11883", "127.0.0.1:1883")
    with CassetteWriter.create(path, budgets=budgets, meta=meta) as writer:
        writer.add_route(*route)
        target = megabytes * 1_000_000
        size = 0
        while size < target:
            cid = writer.open_connection(*route)
            writer.write_frames(cid, Direction.C2S, "mqtt", decoded[connect])
            writer.write_frames(cid, Direction.S2C, "mqtt", decoded[connack])
            writer.write_frames(cid, Direction.C2S, "mqtt", publishes)
            writer.close_connection(cid, "client closed")
            size = sum((path / name).stat().st_size for name in ("frames.jsonl", "frames.raw"))
        return writer.frame_count


def probe_stop(
    work: Path, sizes: list[int], baseline: Path | None
) -> tuple[list[list[str]], list[str]]:
    """A row per size (and tree, with `baseline`): start, its CPU and peak RSS, RSS, stop; and
    with `baseline`, a line per size of this tree's start CPU and peak RSS over the baseline's."""
    rows, ratios = [], []
    trees = [("this", ROOT)] + ([("baseline", baseline)] if baseline is not None else [])
    for mb in sizes:
        path = work / f"gen-{mb}mb"
        t0 = time.perf_counter()
        frames = generate_cassette(path, mb)
        made = time.perf_counter() - t0
        starts: dict[str, tuple[float, float]] = {}
        for name, tree in trees:
            listen = f"11883={11883 + OFFSET}"
            serve = Serve(path, work, "--port-offset", "0", "--listen", listen, tree=tree)
            rss = rss_mb(serve.ps)
            seconds, code = serve.stop()
            starts[name] = (serve.start_cpu_s, serve.start_peak_mb)
            rows.append(
                [
                    f"{mb:,} MB" + (f" ({name})" if baseline is not None else ""),
                    f"{frames:,}",
                    f"{made:.1f}",
                    f"{serve.start_s:.1f}",
                    f"{serve.start_cpu_s:.1f}",
                    f"{serve.start_peak_mb:.0f}",
                    f"{rss:.0f}",
                    f"{seconds:.2f} (exit {code})",
                ]
            )
        if baseline is not None:
            (cpu, peak), (base_cpu, base_peak) = starts["this"], starts["baseline"]
            ratios.append(
                f"{mb:,} MB: this / baseline start CPU {cpu / base_cpu:.2f}, "
                f"start peak RSS {peak / base_peak:.2f}"
            )
        shutil.rmtree(path, ignore_errors=True)
    return rows, ratios


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def serve_flags() -> dict[str, list[str]]:
    """Limits to pass where this `rrlab serve` has them (the bench also runs on older trees)."""
    help_text = subprocess.run(
        [*RRLAB, "serve", "--help"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    small = ["--max-buffered-bytes", str(256 * MiB)] if "--max-buffered-bytes" in help_text else []
    idle = ["--idle-timeout", "3"] if "--idle-timeout" in help_text else []
    return {"default": small, "trickle": small + idle}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--probes",
        nargs="+",
        default=["never-reads", "partial", "trickle", "fds", "stop"],
        choices=["never-reads", "partial", "trickle", "fds", "stop"],
    )
    ap.add_argument("--sizes", nargs="+", type=int, default=[10, 100, 1000], metavar="MB")
    ap.add_argument(
        "--baseline", type=Path, help="stop probe: also serve each cassette with this worktree"
    )
    args = ap.parse_args()
    flags = serve_flags()
    work = Path(tempfile.mkdtemp(prefix="rrlab-serve-faults-"))
    rows: list[list[str]] = []
    try:
        if "never-reads" in args.probes:
            rows.append(probe_never_reads(work, flags["default"]))
        if "partial" in args.probes:
            for clients in (10, 30):
                rows.append(probe_partial(work, flags["default"], clients))
            if flags["trickle"] != flags["default"]:  # paused clients that left: idle timeout
                rows.append(probe_partial(work, flags["trickle"], 30))
        if "trickle" in args.probes:
            rows.append(probe_trickle(work, flags["trickle"]))
        if "fds" in args.probes:
            rows.append(probe_fds(work, flags["default"]))
        if rows:
            print_table(
                f"rrlab serve RSS (MB) under hostile clients ({CASSETTE.name})",
                ["probe", "before", "peak", "after", "neighbour / note"],
                rows,
            )
        if "stop" in args.probes:
            stops, ratios = probe_stop(work, args.sizes, args.baseline)
            print_table(
                "rrlab serve stop time against cassette size (every PUBLISH unused at stop)",
                ["frames MB", "frames", "generate s", "start s", "start CPU s", "start peak MB",
                 "RSS MB", "SIGTERM to exit s"],
                stops,
            )  # fmt: skip
            for line in ratios:
                print(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
