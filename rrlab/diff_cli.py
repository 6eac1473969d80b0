"""`rrlab diff A B`: what differs between two cassettes, frame by frame, as decoded fields.

For reviewing a re-recording (`rr.cassette_diff`): per connection, frames aligned by their
names, each aligned pair compared as values (summary, Kafka body and records, message bodies),
never as bytes or times. Human lines by default, `--json` for canonical JSON. Exit 0 equal,
1 different, 2 bad input (no such cassette, a damaged one, a bad ignore path).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from rrlab.rr.canonical import dumps
from rrlab.rr.cassette import CassetteError, CassetteReader
from rrlab.rr.cassette.errors import printable
from rrlab.rr.cassette_diff import CassetteDiff, compare
from rrlab.rr.diff import parse_path
from rrlab.rr.usage import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff",
        help="compare two cassettes frame by frame (decoded fields, not bytes or times)",
        description="Per connection, frames aligned by name (API, method, packet) and each "
        "aligned pair compared as decoded values: the summary, a Kafka body and its records "
        "(key, value, headers), message bodies as JSON or text. Exit 0 equal, 1 different, "
        "2 bad input.",
    )
    p.add_argument("a", metavar="A", help="cassette directory (the old one)")
    p.add_argument("b", metavar="B", help="cassette directory (the new one)")
    p.add_argument(
        "--ignore-field",
        action="append",
        default=[],
        metavar="PATH",
        help="leave out this dotted path of every frame's view on both sides (e.g. "
        "body.member_id, summary.correlation_id, records.value.ts, payload.id; a list is "
        "crossed by name); repeatable",
    )
    p.add_argument("--json", action="store_true", help="canonical JSON instead of lines")
    p.set_defaults(func=run_diff)


def run_diff(args: argparse.Namespace) -> int:
    for path in args.ignore_field:
        try:
            parse_path(path)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    with contextlib.ExitStack() as stack:
        readers = []
        for path in (args.a, args.b):
            try:
                readers.append(
                    stack.enter_context(CassetteReader.open(path, check_artifacts=False))
                )
            except CassetteError as exc:
                print(printable(f"rrlab diff: {exc}"), file=sys.stderr)
                return EXIT_USAGE
        result = compare(readers[0], readers[1], args.ignore_field)
    try:
        if args.json:
            sys.stdout.buffer.write(dumps(result.to_dict()) + b"\n")
        else:
            for line in report_lines(args.a, args.b, result):
                print(printable(line))
        sys.stdout.flush()
    except BrokenPipeError:  # `rrlab diff A B | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK if result.equal else EXIT_MISMATCH


def report_lines(a: str, b: str, result: CassetteDiff) -> list[str]:
    counted = result.counted
    head = f"A {a} ({counted['a']} frames)  B {b} ({counted['b']} frames)"
    if result.equal:
        return [head, f"same: {counted['same']} frames compare equal"]
    changed = sum(1 for f in result.frames if f.change == "changed")
    added = sum(1 for f in result.frames if f.change == "added")
    removed = sum(1 for f in result.frames if f.change == "removed")
    tail = (
        f"different: {changed} frames changed, {removed} only in A, {added} only in B, "
        f"{len(result.connections)} connections and {len(result.artifacts)} artifacts differ; "
        f"{counted['same']} frames equal"
    )
    return [head, *result.lines(), tail]
