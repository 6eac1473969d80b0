"""Big cassettes: opening, serving, stopping, verifying and repairing at 10 MB, 100 MB and 1 GB.

Each cassette is generated (never committed) by copying the connections of a committed one
(default `cassettes/worker-amqp-rabbitmq`, about 200 bytes a frame line and 70 bytes of frame)
until frames.jsonl and frames.raw together reach the size (format 2: frames.jsonl alone, about
320 bytes a line; compare per frame), through the real CassetteWriter. Each copy's summaries
carry the copy's number, so summaries repeat within a connection as in a real recording (about
60% of the lines here), never across copies (no cache sees the same connection twice). For each
size, one row:

- open: `Recording.open` in a fresh process (digest, every line validated, the index built),
  wall time and peak RSS;
- serve: `rrlab serve` start to its last `listening` line, then SIGTERM to exit (nothing
  connected, so every recorded client frame is unused and counted at stop), and its peak RSS;
- verify / repair: `rrlab verify` of the finalized cassette, then `rrlab verify --repair` of a
  copy whose manifest says `finalized: false` (a crashed recording), time and peak RSS.

Before the index counted unused frames, stop decoded every one of them (70 s at 1 GB, 3.2M
frames), and repair held every line in memory (1.53 GB RSS at 1 GB; plain verify: 43 MB).
`rrlab serve` listens on the recorded ports: run this in a network namespace of its own,

    unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/bench_cassette_size.py'

    [--sizes 10,100,1000] (MB) [--template DIR] [--workdir DIR] (default a temp dir; 1 GB needs
    about 2.2 GB free there)
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rrlab.rr.cassette import CassetteReader, CassetteWriter  # noqa: E402
from rrlab.rr.policy import Budgets  # noqa: E402

RRLAB = ROOT / ".venv" / "bin" / "rrlab"
PYTHON = ROOT / ".venv" / "bin" / "python"
TIME = "/usr/bin/time"  # GNU time (Debian package `time`)
MB = 1_000_000


def generate(template: Path, dest: Path, size: int) -> tuple[int, int]:
    """Copy the template's connections (new ids, recorded order) until frames.jsonl and
    frames.raw hold `size` bytes; (frames, connections)."""
    reader = CassetteReader.open(template)
    by_conn: dict[int, list] = {}
    for frame in reader.frames():
        by_conn.setdefault(frame.conn, []).append(frame)
    infos = {c.id: c for c in reader.manifest.connections}
    huge = Budgets(max_cassette_bytes=1 << 40, max_frames=1 << 40, max_frame_bytes=64 << 20)
    writer = CassetteWriter.create(dest, budgets=huge, meta=reader.manifest.meta)
    for route in reader.manifest.routes:
        writer.add_route(route["proto"], route["listen"], route["upstream"])
    conns = 0

    def written() -> int:
        return writer._file_bytes + getattr(writer, "_raw_bytes", 0)

    while written() < size:
        for conn_id, frames in by_conn.items():
            info = infos[conn_id]
            new = writer.open_connection(info.proto, info.listen, info.upstream)
            conns += 1
            for f in frames:
                summary = {**f.summary, "bench_copy": conns}
                writer.write_frame(new, f.dir, f.proto, summary, f.raw, f.redacted)
            writer.close_connection(new, info.close_reason)
            if written() >= size:
                break
    manifest = writer.finalize()
    return manifest.frame_count, conns


def timed(argv: list[str], rss_file: Path) -> list[str]:
    """`argv` under GNU time, which writes the peak RSS (KB) to `rss_file`: measured from a
    small parent, so the child's figure holds none of this process's memory."""
    return [TIME, "-f", "%M", "-o", str(rss_file), *argv]


def peak_mb(rss_file: Path) -> float:
    return int(rss_file.read_text().split()[-1]) / 1024


def run_measured(argv: list[str], work: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """(seconds, peak RSS MB, result) of a child process."""
    rss_file = work / "rss.txt"
    t0 = time.perf_counter()
    done = subprocess.run(timed(argv, rss_file), cwd=ROOT, capture_output=True, check=False)
    return time.perf_counter() - t0, peak_mb(rss_file), done


OPEN = """
import sys, time
from rrlab.rr.protocols import client_kind
from rrlab.rr.replay.recording import Recording
t0 = time.perf_counter()
Recording.open(sys.argv[1], classify=client_kind)
print(time.perf_counter() - t0)
"""


def measure_open(cassette: Path, work: Path) -> tuple[float, float]:
    _t, rss, done = run_measured([str(PYTHON), "-c", OPEN, str(cassette)], work)
    if done.returncode != 0:
        raise SystemExit(f"open failed: {done.stderr.decode()}")
    return float(done.stdout.decode().split()[-1]), rss


def measure_serve(cassette: Path, work: Path) -> tuple[float, float, float, str]:
    """(start-to-listening s, SIGTERM-to-exit s, peak RSS MB, closing line)."""
    listeners = len(json.loads((cassette / "cassette.json").read_bytes())["routes"])
    argv = [str(RRLAB), "serve", "--cassette", str(cassette), "--report", str(work / "r.json")]
    rss_file = work / "rss.txt"
    t0 = time.perf_counter()
    proc = subprocess.Popen(timed(argv, rss_file), cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = 0
    for line in proc.stdout:
        if line.startswith("rrlab serve: listening"):
            seen += 1
            if seen >= listeners:
                break
    else:
        raise SystemExit(f"serve exited {proc.wait()} before listening")
    started = time.perf_counter() - t0
    (serve,) = psutil.Process(proc.pid).children()
    t1 = time.perf_counter()
    serve.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    proc.wait()
    stopped = time.perf_counter() - t1
    closing = rest.strip().splitlines()[-1] if rest.strip() else ""
    return started, stopped, peak_mb(rss_file), closing


def measure_verify(cassette: Path, work: Path, repair: bool) -> tuple[float, float]:
    argv = [str(RRLAB), "verify", str(cassette)] + (["--repair"] if repair else [])
    elapsed, rss, done = run_measured(argv, work)
    if done.returncode != 0:
        raise SystemExit(f"verify failed: {done.stderr.decode()}")
    return elapsed, rss


def crashed_copy(cassette: Path, dest: Path) -> Path:
    """The cassette as a crash would leave it: manifest not finalized (frames copied)."""
    shutil.copytree(cassette, dest)
    manifest = dest / "cassette.json"
    doc = json.loads(manifest.read_bytes())
    doc["finalized"] = False
    manifest.write_text(json.dumps(doc))
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10,100,1000", help="frames.jsonl + frames.raw sizes in MB"
    )
    parser.add_argument("--template", default=str(ROOT / "cassettes" / "worker-amqp-rabbitmq"))
    parser.add_argument("--workdir", help="where to generate (default: a temp dir)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        for mb in sizes:
            cassette = work / f"c{mb}"
            frames, conns = generate(Path(args.template), cassette, mb * MB)
            open_s, open_rss = measure_open(cassette, work)
            start_s, stop_s, serve_rss, closing = measure_serve(cassette, work)
            verify_s, verify_rss = measure_verify(cassette, work, repair=False)
            crashed = crashed_copy(cassette, work / f"crashed{mb}")
            repair_s, repair_rss = measure_verify(crashed, work, repair=True)
            shutil.rmtree(crashed)
            shutil.rmtree(cassette)
            rows.append(
                (
                    mb,
                    frames,
                    conns,
                    open_s,
                    open_rss,
                    start_s,
                    stop_s,
                    serve_rss,
                    verify_s,
                    verify_rss,
                    repair_s,
                    repair_rss,
                )  # fmt: skip
            )
            print(f"  {mb} MB: {closing}", file=sys.stderr, flush=True)
    head = ("MB", "frames", "conns", "open s", "open MB", "serve start s", "SIGTERM-exit s",
            "serve MB", "verify s", "verify MB", "repair s", "repair MB")  # fmt: skip
    print(" | ".join(head))
    for row in rows:
        print(
            " | ".join(
                f"{v:.2f}"
                if isinstance(v, float) and i in (3, 5, 6, 8, 10)
                else f"{v:.0f}"
                if isinstance(v, float)
                else f"{v:,}"
                for i, v in enumerate(row)
            )  # fmt: skip
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
