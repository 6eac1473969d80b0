"""Cassette bytes per wire byte: what a recording costs on disk, against the traffic it holds.

For each cassette: its files (cassette.json, frames.jsonl, frames.raw, frames.timing,
.gitattributes; artifacts excluded) over its wire bytes (the sum of its frames' lengths), stored
plain (format 3: one readable line per frame, the bytes in frames.raw) and compacted (format 4:
the same files gzipped, as a recording whose frames.jsonl is over `--compact-over` (1 MiB by
default) is stored at finalize), beside the target; the format 2 ratio (base64 in every line,
computed from the same frames) and the bytes git stores (each plain file zlib-compressed) for
information. And what compaction costs: at finalize (`compact`, what the recorder runs after the
final manifest) and at open (`CassetteReader.open`, what `rrlab serve` does at start, plain
against compacted), best of `--repeat` in wall and CPU seconds. Target (issue M): the cassette as
stored <= 1.4 x the wire.

The cassettes: the sessions bench/bench_replay.py records (the worker on Kafka/Tansu, AMQP with
publisher confirms on RabbitMQ, MQTT on amqtt; recorded here with its own `record_driver`, each
broker started and stopped around it: run in a network namespace), and the committed ones (all
plain: under the threshold).

    unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/bench_cassette_ratio.py'
        [--count N] [--amqp-count N] [--drivers kafka amqp mqtt] [--committed-only] [--repeat N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rrlab.rr.canonical import dumps_line  # noqa: E402
from rrlab.rr.cassette.compact import compact  # noqa: E402
from rrlab.rr.cassette.format import (  # noqa: E402
    ARTIFACTS_DIR,
    FORMAT_V2,
    MANIFEST_NAME,
    TIMING_NAME,
)
from rrlab.rr.cassette.lock import WriterLock  # noqa: E402
from rrlab.rr.cassette.migrate import migrate  # noqa: E402
from rrlab.rr.cassette.paths import CassetteDir  # noqa: E402
from rrlab.rr.cassette.reader import CassetteReader, load_manifest  # noqa: E402
from rrlab.rr.policy import COMPACT_OVER_BYTES  # noqa: E402

TARGET = 1.4
#: format 2's .gitattributes
GITATTRIBUTES_V2 = b"frames.timing -diff\n"


@dataclasses.dataclass
class Row:
    name: str
    frames: int
    wire: int
    plain: int  # the cassette's files, stored plain (format 3)
    compacted: int  # the same cassette stored compacted (format 4)
    stored: str  # how a recording with the default threshold stores it: plain or compacted
    v2: int  # the same frames as format 2 wrote them
    lines: int  # frames.jsonl alone (format 3)
    git: int  # the plain files zlib-compressed (what git stores)
    finalize_s: tuple[float, float] = (0.0, 0.0)  # compacting at finalize: wall, CPU
    open_plain_s: tuple[float, float] = (0.0, 0.0)  # CassetteReader.open, plain: wall, CPU
    open_compacted_s: tuple[float, float] = (0.0, 0.0)  # the same, compacted
    bench: bool = False  # a bench session: the target applies (committed ones stay readable)


def files(path: Path) -> list[Path]:
    return [
        p
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.relative_to(path).parts[0] != ARTIFACTS_DIR
    ]


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in files(path))


def best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds of `fn`, the best of `repeat` runs each."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def opened(path: Path) -> None:
    with CassetteReader.open(path, check_artifacts=False):
        pass


def measure(name: str, path: Path, repeat: int = 3) -> Row:
    """Both storages of the cassette at `path` (left as it is), from copies."""
    with tempfile.TemporaryDirectory(prefix="rrlab-ratio-") as tmp:
        plain = Path(tmp) / "plain"
        shutil.copytree(path, plain, symlinks=True)
        migrate(plain, "plain")  # format 3, plain (a compacted one expanded)
        with CassetteReader.open(plain, check_artifacts=False) as reader:
            manifest = reader.manifest
            v2_lines = sum(len(dumps_line(f.to_dict())) for f in reader.frames())
        lines = manifest.frames_file_bytes
        timing = (plain / TIMING_NAME).stat().st_size
        old = dataclasses.replace(manifest, format=FORMAT_V2, raw_file_bytes=None, raw_sha256=None)
        v2 = v2_lines + timing + len(old.to_json()) + len(GITATTRIBUTES_V2)
        git = sum(len(zlib.compress(p.read_bytes())) for p in files(plain))
        plain_bytes = size(plain)
        open_plain = best(lambda: opened(plain), repeat)
        finalize: list[tuple[float, float]] = []
        for i in range(repeat):  # each from its own plain copy: compacting removes the plain files
            copy = Path(tmp) / f"compacted-{i}"
            shutil.copytree(plain, copy)
            with WriterLock.acquire(copy), CassetteDir(copy) as root:
                m = load_manifest(copy)
                finalize.append(best(lambda root=root, m=m: compact(root, m), 1))
        compacted = Path(tmp) / f"compacted-{repeat - 1}"
        open_compacted = best(lambda: opened(compacted), repeat)
        compacted_bytes = size(compacted)
    return Row(
        name,
        manifest.frame_count,
        manifest.raw_bytes,
        plain_bytes,
        compacted_bytes,
        "compacted" if lines > COMPACT_OVER_BYTES else "plain",
        v2,
        lines,
        git,
        (min(w for w, _ in finalize), min(c for _, c in finalize)),
        open_plain,
        open_compacted,
    )


def record_bench_sessions(
    drivers: list[str], counts: dict[str, int], work: Path, repeat: int
) -> list[Row]:
    from bench_replay import record_driver  # the sessions bench_replay.py replays

    rows = []
    for driver in drivers:
        _run, cassette = record_driver(driver, counts[driver], work)
        row = measure(f"bench {driver} ({counts[driver]} msgs)", cassette, repeat)
        rows.append(dataclasses.replace(row, bench=True))
        shutil.rmtree(cassette, ignore_errors=True)
    return rows


def committed(repeat: int) -> list[Row]:
    return [
        measure(p.parent.name, p.parent, repeat)
        for p in sorted((ROOT / "cassettes").glob(f"*/{MANIFEST_NAME}"))
    ]


def print_rows(rows: list[Row]) -> None:
    head = (
        f"{'cassette':44} {'frames':>7} {'wire B':>9} {'fmt 2':>6} {'lines':>6} {'git':>5} "
        f"{'plain':>6} {'compact':>7} {'stored (<= ' + str(TARGET) + ')':>21}  verdict"
    )
    print("bytes per wire byte; 'stored': as a recording with the default --compact-over stores it")
    print(head)
    print("-" * len(head))
    for r in rows:
        plain, packed = r.plain / r.wire, r.compacted / r.wire
        ratio = packed if r.stored == "compacted" else plain
        verdict = ("ok" if ratio <= TARGET else "over") if r.bench else "(committed)"
        print(
            f"{r.name:44} {r.frames:>7} {r.wire:>9} {r.v2 / r.wire:>6.2f} "
            f"{r.lines / r.wire:>6.2f} {r.git / r.wire:>5.2f} {plain:>6.2f} {packed:>7.2f} "
            f"{f'{ratio:.2f} {r.stored}':>21}  {verdict}"
        )
    print()
    print("compaction cost, best of the repeats, seconds wall / CPU:")
    head = (
        f"{'cassette':44} {'frames.jsonl':>12} {'finalize':>15} {'open plain':>15} "
        f"{'open compacted':>15} {'open added':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r.name:44} {r.lines:>12} {_pair(r.finalize_s):>15} {_pair(r.open_plain_s):>15} "
            f"{_pair(r.open_compacted_s):>15} {r.open_compacted_s[0] - r.open_plain_s[0]:>10.3f}"
        )


def _pair(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.3f} / {pair[1]:.3f}"


def main() -> int:
    from bench_replay import DEFAULT_COUNT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, help=f"messages per driver (default {DEFAULT_COUNT})")
    parser.add_argument("--amqp-count", type=int, help="AMQP messages (12,500: ~100k frames)")
    parser.add_argument("--drivers", nargs="+", default=["kafka", "amqp", "mqtt"])
    parser.add_argument(
        "--committed-only", action="store_true", help="only the committed cassettes (no brokers)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timings: best of N (default 3)")
    args = parser.parse_args()
    rows = []
    if not args.committed_only:
        counts = {d: args.count or DEFAULT_COUNT[d] for d in args.drivers}
        if args.amqp_count:
            counts["amqp"] = args.amqp_count
        work = ROOT / "out" / f"bench-ratio-{os.getpid()}"
        work.mkdir(parents=True)
        try:
            rows += record_bench_sessions(args.drivers, counts, work, args.repeat)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    rows += committed(args.repeat)
    print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
