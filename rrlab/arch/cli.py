"""`rrlab arch check [--write-lock] [--json] [--root DIR]`: exit 0 every contract holds, 1 a
contract is broken (each finding: code, file, why), 2 usage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rrlab.rr.canonical import dumps
from rrlab.rr.usage import EXIT_MISMATCH, EXIT_OK, UsageError

#: the name rrlab is installed under (what an extra is asked for with)
DISTRIBUTION = "messaging-rr-lab"

if TYPE_CHECKING:
    from .check import CheckResult


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("arch", help="architecture contracts: check them, write their locks")
    arch_sub = p.add_subparsers(dest="arch_command", metavar="ACTION", required=True)
    c = arch_sub.add_parser(
        "check",
        help="validate arch/ (schemas, cross-references, import contracts, canonical JSON, locks)",
        description="Exit 0 every contract holds, 1 a contract is broken, 2 usage.",
    )
    c.add_argument(
        "--write-lock",
        action="store_true",
        help="rewrite arch/manifest.lock.json and arch/contracts.lock.json (only when nothing "
        "else is broken) and print the lock diff",
    )
    c.add_argument("--json", action="store_true", help="a canonical JSON report on stdout")
    c.add_argument(
        "--root", type=Path, default=Path("."), metavar="DIR", help="project root (default: cwd)"
    )
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.root.is_dir():
        raise UsageError(f"--root {args.root}: not a directory")
    try:
        from .check import run_check
    except ImportError as exc:  # jsonschema / import-linter: the `arch` extra (also in `test`)
        raise UsageError(
            f"needs {exc.name}, which comes with the arch extra: "
            f"pip install '{DISTRIBUTION}[arch]' (or uv tool install '{DISTRIBUTION}[arch]')"
        ) from exc
    result = run_check(args.root, write_lock=args.write_lock)
    if args.json:
        sys.stdout.buffer.write(dumps(result.to_dict()) + b"\n")
        sys.stdout.flush()
    else:
        print_summary(result, args.write_lock)
    return EXIT_OK if result.ok else EXIT_MISMATCH


def print_summary(result: CheckResult, write_lock: bool) -> None:
    from .check import codes

    enabled = [name for name, on in result.enabled.items() if on]
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
    print(f"rrlab arch check: contracts {', '.join(enabled) or '(none)'}; {counts}")
    for finding in result.findings:
        print(f"  {finding.line()}")
    if result.locks_written:
        if result.lock_changes:
            print("locks written; lock diff:")
            for change in result.lock_changes:
                print(f"  {change.line()}")
        else:
            print("locks written; unchanged")
    elif write_lock and not result.ok:
        print("locks NOT written: fix the findings above first")
    if result.ok:
        print("ok: every contract holds")
    else:
        print(f"FAILED: {len(result.findings)} finding(s): {', '.join(codes(result.findings))}")
