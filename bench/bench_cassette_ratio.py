"""Cassette bytes per wire byte: what a recording costs on disk, against the traffic it holds.

For each cassette: its files (cassette.json, frames.jsonl, frames.raw, frames.timing,
.gitattributes; artifacts excluded) over its wire bytes (the sum of its frames' lengths), in
format 3 (as it is) and in format 2 (the same frames written as format 2 wrote them: base64 in
every line, computed from the same cassette, so before and after are the same traffic), with the
share of the frame lines alone (the readable part) and, for information, the bytes git stores
(each file zlib-compressed, as git's objects are). Target (issue M): format 3 <= 1.4.

The cassettes: the sessions bench/bench_replay.py records (the worker on Kafka/Tansu, AMQP with
publisher confirms on RabbitMQ, MQTT on amqtt; recorded here with its own `record_driver`, each
broker started and stopped around it: run in a network namespace), and the committed ones.

    unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/bench_cassette_ratio.py'
        [--count N] [--amqp-count N] [--drivers kafka amqp mqtt] [--committed-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rrlab.rr.canonical import dumps_line  # noqa: E402
from rrlab.rr.cassette.format import (  # noqa: E402
    ARTIFACTS_DIR,
    FORMAT,
    FORMAT_V2,
    GITATTRIBUTES,
    MANIFEST_NAME,
    TIMING_NAME,
)
from rrlab.rr.cassette.reader import CassetteReader  # noqa: E402

TARGET = 1.4
#: format 2's .gitattributes
GITATTRIBUTES_V2 = b"frames.timing -diff\n"


@dataclasses.dataclass
class Row:
    name: str
    frames: int
    wire: int
    v3: int  # the cassette's files now
    v2: int  # the same frames as format 2 wrote them
    lines: int  # frames.jsonl alone (format 3)
    git: int  # the files zlib-compressed (what git stores)


def files(path: Path) -> list[Path]:
    return [
        p
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.relative_to(path).parts[0] != ARTIFACTS_DIR
    ]


def measure(name: str, path: Path) -> Row:
    with CassetteReader.open(path, check_artifacts=False) as reader:
        manifest = reader.manifest
        v2_lines = sum(len(dumps_line(f.to_dict())) for f in reader.frames())
        lines3 = sum(len(dumps_line(f.to_dict(sidecar=True))) for f in reader.frames())
    timing = (path / TIMING_NAME).stat().st_size
    old = dataclasses.replace(manifest, format=FORMAT_V2, raw_file_bytes=None, raw_sha256=None)
    v2 = v2_lines + timing + len(old.to_json()) + len(GITATTRIBUTES_V2)
    found = files(path)
    if manifest.format == FORMAT:
        v3 = sum(p.stat().st_size for p in found)
    else:  # not migrated: what format 3 would take
        new = dataclasses.replace(manifest, format=FORMAT, raw_file_bytes=manifest.raw_bytes)
        v3 = lines3 + manifest.raw_bytes + timing + len(new.to_json()) + len(GITATTRIBUTES)
    git = sum(len(zlib.compress(p.read_bytes())) for p in found)
    return Row(name, manifest.frame_count, manifest.raw_bytes, v3, v2, lines3, git)


def record_bench_sessions(drivers: list[str], counts: dict[str, int], work: Path) -> list[Row]:
    from bench_replay import record_driver  # the sessions bench_replay.py replays

    rows = []
    for driver in drivers:
        _run, cassette = record_driver(driver, counts[driver], work)
        rows.append(measure(f"bench {driver} ({counts[driver]} msgs)", cassette))
        shutil.rmtree(cassette, ignore_errors=True)
    return rows


def committed() -> list[Row]:
    return [
        measure(p.parent.name, p.parent)
        for p in sorted((ROOT / "cassettes").glob(f"*/{MANIFEST_NAME}"))
    ]


def print_rows(rows: list[Row]) -> None:
    head = (
        f"{'cassette':48} {'frames':>7} {'wire B':>9} {'fmt 2 /wire':>11} "
        f"{'fmt 3 /wire (target)':>21} {'lines /wire':>11} {'git /wire':>9}  verdict"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = r.v3 / r.wire
        verdict = "ok" if ratio <= TARGET else "over"
        print(
            f"{r.name:48} {r.frames:>7} {r.wire:>9} {r.v2 / r.wire:>11.2f} "
            f"{f'{ratio:.2f} (<= {TARGET})':>21} {r.lines / r.wire:>11.2f} "
            f"{r.git / r.wire:>9.2f}  {verdict}"
        )


def main() -> int:
    from bench_replay import DEFAULT_COUNT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, help=f"messages per driver (default {DEFAULT_COUNT})")
    parser.add_argument("--amqp-count", type=int, help="AMQP messages (12,500: ~100k frames)")
    parser.add_argument("--drivers", nargs="+", default=["kafka", "amqp", "mqtt"])
    parser.add_argument(
        "--committed-only", action="store_true", help="only the committed cassettes (no brokers)"
    )
    args = parser.parse_args()
    rows = []
    if not args.committed_only:
        counts = {d: args.count or DEFAULT_COUNT[d] for d in args.drivers}
        if args.amqp_count:
            counts["amqp"] = args.amqp_count
        work = ROOT / "out" / f"bench-ratio-{os.getpid()}"
        work.mkdir(parents=True)
        try:
            rows += record_bench_sessions(args.drivers, counts, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    rows += committed()
    print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
