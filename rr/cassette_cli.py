"""`rrlab inspect DIR` (connections and frames as a table or canonical JSON) and
`rrlab verify DIR [--repair]`. Errors are one line; exit 0 ok, 1 bad cassette, 2 usage."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from rr.canonical import dumps
from rr.cassette import CassetteError, CassetteNotFound, CassetteReader, FrameRecord, verify
from rr.cassette.format import Manifest
from rr.protocols import protocol_for
from rr.protocols.base import clip
from rr.usage import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, UsageError

ARROWS = {"c2s": "->", "s2c": "<-"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add `inspect` and `verify` (idempotent: SUBCOMMANDS maps both names to this module)."""
    if "inspect" not in sub.choices:
        p = sub.add_parser("inspect", help="show a cassette's connections and frames")
        p.add_argument("cassette", metavar="DIR", help="cassette directory")
        p.add_argument("--conn", type=int, metavar="N", help="only connection N")
        p.add_argument("--json", action="store_true", help="canonical JSON instead of tables")
        p.set_defaults(func=run_inspect)
    if "verify" not in sub.choices:
        p = sub.add_parser("verify", help="check a cassette's integrity (or finish a crashed one)")
        p.add_argument("cassette", metavar="DIR", help="cassette directory")
        p.add_argument(
            "--repair",
            action="store_true",
            help="finalize a crashed recording: keep every whole frame, drop a torn last line",
        )
        p.add_argument(
            "--strict",
            action="store_true",
            help="refuse a repaired cassette (exit 1): replay-only CI trusts finalized ones only",
        )
        p.set_defaults(func=run_verify)


def _fail(command: str, exc: CassetteError) -> int:
    print(f"rrlab {command}: {exc}", file=sys.stderr)
    return EXIT_USAGE if isinstance(exc, CassetteNotFound) else EXIT_MISMATCH


def run_verify(args: argparse.Namespace) -> int:
    try:
        report = verify(args.cassette, repair=args.repair, strict=args.strict)
    except CassetteError as exc:
        return _fail("verify", exc)
    print(report.summary())
    return EXIT_OK


def run_inspect(args: argparse.Namespace) -> int:
    try:
        reader = CassetteReader.open(args.cassette)
        m = reader.manifest
        if args.conn is not None and m.connection(args.conn) is None:
            known = ", ".join(str(c.id) for c in m.connections) or "none"
            raise UsageError(f"no connection {args.conn} in {args.cassette} (connections: {known})")
        frames = reader.frames_for(args.conn) if args.conn is not None else reader.frames()
        try:
            if args.json:
                sys.stdout.buffer.write(dumps(inspect_json(m, frames, args.conn)) + b"\n")
            else:
                print_tables(m, frames, args.conn, sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:  # `rrlab inspect DIR | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except CassetteError as exc:
        return _fail("inspect", exc)
    return EXIT_OK


# -- output ---------------------------------------------------------------------------------------


def inspect_json(m: Manifest, frames: Iterable[FrameRecord], conn: int | None) -> dict[str, Any]:
    manifest = m.to_dict()
    if conn is not None:
        manifest["connections"] = [c for c in manifest["connections"] if c["id"] == conn]
    rows = []
    for f in frames:
        row = f.to_dict()
        del row["raw"]
        row["size"] = len(f.raw)
        rows.append(row)
    return {"frames": rows, "manifest": manifest}


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return out


FRAME_COLUMNS = ("seq", "t(ms)", "conn", "dir", "proto", "api/method", "ids", "size", "red")
_FRAME_FMT = "{:>6}  {:>10}  {:>4}  {:<3}  {:<5}  {:<28}  {:<24}  {:>8}  {}"


def print_tables(m: Manifest, frames: Iterable[FrameRecord], conn: int | None, out: TextIO) -> None:
    flags = []
    if m.repaired:
        flags.append("repaired")
    if m.stopped:
        flags.append(f"stopped by budget {m.stopped.get('budget')}")
    print(
        f"cassette {m.format}  tool {m.tool_version}  protocols {','.join(m.protocols) or '-'}  "
        f"frames {m.frame_count}  raw bytes {m.raw_bytes}"
        + (f"  [{'; '.join(flags)}]" if flags else ""),
        file=out,
    )
    for route in m.routes:
        print(f"route {route['proto']}  {route['listen']} -> {route['upstream']}", file=out)
    for node, entry in sorted(m.kafka_nodes.items(), key=lambda kv: int(kv[0])):
        print(f"kafka node {node}  {entry['upstream']} served on :{entry['listen_port']}", file=out)
    rows = [["conn", "proto", "route", "frames c2s/s2c", "bytes c2s/s2c", "closed"]]
    for c in m.connections:
        if conn is not None and c.id != conn:
            continue
        rows.append(
            [
                str(c.id),
                c.proto.value,
                f"{c.listen or '?'} -> {c.upstream or '?'}",
                f"{c.frames['c2s']}/{c.frames['s2c']}",
                f"{c.bytes['c2s']}/{c.bytes['s2c']}",
                "-" if c.closed_at_seq is None else (c.close_reason or "yes"),
            ]
        )
    print("", file=out)
    for line in _table(rows, right={0, 3, 4}):
        print(line, file=out)
    print("", file=out)
    print(_FRAME_FMT.format(*FRAME_COLUMNS).rstrip(), file=out)
    for f in frames:
        what, ids = protocol_for(f.proto).describe(f.summary)
        line = _FRAME_FMT.format(
            f.seq,
            f"{f.t_us / 1000:.3f}",
            f.conn,
            ARROWS[f.dir.value],
            f.proto.value,
            clip(what, 28),
            clip(ids, 24),
            len(f.raw),
            "R" if f.redacted else "",
        )
        print(line.rstrip(), file=out)
