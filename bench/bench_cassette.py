"""Framing + cassette writing throughput: Kafka frames of 200 B and 64 KiB.

Targets (issue B): >= 30,000 small frames/s and >= 100 MB/s of large frames, framing included.
Each row feeds a synthetic Kafka stream to the real framer in 64 KiB reads (as a socket would
deliver it) and writes every frame to a real cassette in a temp dir, then finalizes (fsync).
Run: .venv/bin/python bench/bench_cassette.py [--seconds-budget N]
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import time
from pathlib import Path

from rrlab.rr.cassette import CassetteWriter, verify
from rrlab.rr.codecs.base import Direction, Proto
from rrlab.rr.policy import Budgets
from rrlab.rr.protocols import framer_for

READ = 64 * 1024
TARGETS = {200: ("frames/s", 30_000), 64 * 1024: ("MB/s", 100)}


def kafka_stream(frame_bytes: int, count: int) -> bytes:
    body = bytes(range(256)) * (frame_bytes // 256 + 1)
    frame = struct.pack(">i", frame_bytes - 4) + body[: frame_bytes - 4]
    return frame * count


def run(frame_bytes: int, count: int, workdir: Path, *, frame: bool = True) -> tuple[float, int]:
    stream = kafka_stream(frame_bytes, count)
    summary = {"api": "Produce", "api_key": 0, "version": 9, "correlation_id": 1}
    budgets = Budgets(max_cassette_bytes=1 << 40, max_frames=10**9)
    path = workdir / f"c{frame_bytes}-{int(frame)}"
    w = CassetteWriter.create(path, budgets=budgets)
    conn = w.open_connection(Proto.KAFKA, "127.0.0.1:19092", "127.0.0.1:9092")
    framer = framer_for(Proto.KAFKA, Direction.C2S)
    write = w.write_frame
    t0 = time.perf_counter()
    n = 0
    if frame:
        view = memoryview(stream)
        for pos in range(0, len(stream), READ):
            for f in framer.feed(view[pos : pos + READ]):
                write(conn, Direction.C2S, Proto.KAFKA, summary, f.raw)
                n += 1
    else:
        for pos in range(0, len(stream), frame_bytes):
            write(conn, Direction.C2S, Proto.KAFKA, summary, stream[pos : pos + frame_bytes])
            n += 1
    w.finalize()
    elapsed = time.perf_counter() - t0
    assert n == count, (n, count)
    assert verify(path).frames == count
    return elapsed, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=200_000, help="number of 200 B frames")
    parser.add_argument("--large", type=int, default=4_000, help="number of 64 KiB frames")
    args = parser.parse_args(argv)
    rows = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for size, count in ((200, args.small), (64 * 1024, args.large)):
            for framed in (True, False):
                elapsed, n = run(size, count, Path(tmp), frame=framed)
                fps = n / elapsed
                mbps = n * size / elapsed / 1e6
                unit, target = TARGETS[size]
                got = fps if unit == "frames/s" else mbps
                met = got >= target
                if framed:
                    ok &= met
                rows.append(
                    (
                        f"{size} B",
                        "framer+writer" if framed else "writer only",
                        f"{n}",
                        f"{fps:,.0f}",
                        f"{mbps:,.1f}",
                        f">= {target:,} {unit}: {'met' if met else 'MISSED'}",
                    )
                )
    header = ("frame", "path", "frames", "frames/s", "MB/s", "target")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
