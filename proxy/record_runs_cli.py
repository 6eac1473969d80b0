"""`rrlab record --runs 2`: record the command twice against the real broker and learn what
varies (rr.record_runs), so its replay needs no rule written by hand.

Why two whole `rrlab record` runs: each is exactly what a single `record` does (proxy, command,
artifacts, publish only on success), so the second run sees the broker state a user's next run
would. The first recording is the cassette; the second goes to a hidden sibling directory,
is compared with it and removed. What varied at the same place is added to the cassette's
`replay-rules.json`, each rule with a comment saying where; runs that differ in structure are
named and the command is called not repeatable against this broker state (exit 1: the runs
mismatch; the first recording is kept, for inspection, but will likely miss in replay).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from rrlab.replayer.rules import RULES_NAME
from rrlab.rr.atomic_file import write_atomic
from rrlab.rr.cassette import CassetteError
from rrlab.rr.cassette.reader import load_manifest
from rrlab.rr.record_runs import Comparison, compare, rules
from rrlab.rr.usage import EXIT_MISMATCH, UsageError

#: Runs `--runs` accepts: one recording, or a recording checked against a second one.
RUN_COUNTS = (1, 2)

Run = Callable[[argparse.Namespace], int]


def add_runs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs",
        type=int,
        choices=RUN_COUNTS,
        default=1,
        help="2: run CMD twice against the broker, keep the first recording and write what "
        "varied between the runs to the cassette's replay-rules.json (exit 1 if the runs "
        "differ in structure: the command is not repeatable against this broker state)",
    )


def with_runs(run_once: Run) -> Run:
    """`run_once` itself, or, with --runs 2, two of it and a comparison."""

    def run(args: argparse.Namespace) -> int:
        if getattr(args, "runs", 1) == 1:
            return run_once(args)
        return run_twice(args, run_once)

    return run


def run_twice(args: argparse.Namespace, run_once: Run) -> int:
    cassette = Path(args.cassette)
    second = copy.copy(args)
    second.cassette = str(cassette.with_name(f".{cassette.name}.run2-{os.getpid()}"))
    second.mode = "once"
    if args.log_file:
        second.log_file = f"{args.log_file}.run2"
    _say("run 1 of 2")
    code = run_once(args)
    if code != 0:
        return code
    _say("run 2 of 2 (compared with run 1, then discarded)")
    shutil.rmtree(second.cassette, ignore_errors=True)
    try:
        code = run_once(second)
        if code != 0:
            _say(f"run 2 failed (exit {code}): {args.cassette} holds run 1, nothing learned")
            return code
        comparison = compare(cassette, second.cassette)
        _say_artifacts(cassette, Path(second.cassette))
    except CassetteError as exc:
        raise UsageError(str(exc)) from None
    finally:
        shutil.rmtree(second.cassette, ignore_errors=True)
    return _conclude(args.cassette, cassette, comparison)


def _conclude(name: str, cassette: Path, comparison: Comparison) -> int:
    if not comparison.repeatable:
        _say(
            f"the two runs differ in structure: the command is not repeatable against this "
            f"broker state ({name} holds run 1, no rule learned; make the command deterministic "
            f"or reset the broker state between runs):"
        )
        for line in comparison.structure:
            print(f"  {line}", file=sys.stderr)
        return EXIT_MISMATCH
    for seen in comparison.clock.values():
        _say(f"on a clock: {seen}")
    for path, varied in comparison.left.items():
        _say(f"not written: {path} ({varied.why}); {varied.places[0]}")
    if not comparison.learned:
        _say(f"the two runs agree ({comparison.compared} connections compared): no rule to learn")
        return 0
    target = cassette / RULES_NAME
    existing = json.loads(target.read_text()) if target.is_file() else None
    write_atomic(target, (json.dumps(rules(comparison, existing), indent=1) + "\n").encode())
    _say(f"learned {len(comparison.learned)} ignore rule(s), written to {name}/{RULES_NAME}:")
    for path, varied in comparison.learned.items():
        print(f"  {path}: {varied.places[0]}", file=sys.stderr)
    return 0


def _say_artifacts(first: Path, second: Path) -> None:
    """The command's own output differing between runs is worth knowing (replay compares with
    run 1's)."""
    try:
        a, b = load_manifest(first).artifacts, load_manifest(second).artifacts
    except CassetteError:
        return
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            _say(f"artifact {name} differs between the runs (replay compares with run 1's)")


def _say(text: str) -> None:
    print(f"rrlab record: {text}", file=sys.stderr, flush=True)
