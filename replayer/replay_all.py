"""`rrlab replay --all DIR...` (and `rrlab ci`): replay every cassette under the directories with
the command each one stored, and say in one table, one canonical JSON report and one JUnit XML
file which behaved as recorded.

Each cassette is replayed by its own `rrlab replay --cassette C` (no command: the stored one, from
its stored working directory; forked from this process, which imports what the replays need
once), so a cassette's sandbox, fake broker and verdict are exactly those of a single replay;
its report and OpenMetrics snapshot are kept under --reports-dir/NAME/. First, here and with
the network, each distinct prepare step the cassettes stored runs once, outside any
sandbox (fetching jars, compiling a client). Under ci_replay a cassette must also pass
`rrlab verify --strict` (a repaired cassette fails). Exit 0 when every cassette replays; 1 when
any missed or mismatched; 2 when none did but one could not be replayed at all (no stored
command, a bad cassette, a failed prepare step) or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrlab.rr.canonical import dumps
from rrlab.rr.cassette import CassetteError
from rrlab.rr.cassette.errors import printable
from rrlab.rr.cassette.format import MANIFEST_NAME
from rrlab.rr.cassette.reader import load_manifest
from rrlab.rr.policy import PolicyError, check_writable, get_profile
from rrlab.rr.replay.session import Miss
from rrlab.rr.usage import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, UsageError

from .forked import ForkedChild, run_subcommand

REPORT_FORMAT = "rrlab.replay-all/1"
DEFAULT_REPORTS_DIR = "out/replay"
DEFAULT_REPORT = "out/replay/report.json"
KEEP_LINES = 400  # lines of each replay's output kept for the JUnit file's system-out


@dataclass
class Outcome:
    """One cassette's row: how its replay ended and what its report said."""

    cassette: Path
    name: str  # unique among this run's cassettes: its directory under --reports-dir
    exit: int = EXIT_USAGE
    verdict: str = "not_run"
    reason: str = ""
    message: str = ""  # the miss line (or the closing line): the JUnit failure message
    details: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    output: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.exit == EXIT_OK

    def to_dict(self, reports: Path) -> dict[str, Any]:
        frames = self.report.get("frames", {})
        return {
            "cassette": str(self.cassette),
            "exit": self.exit,
            "frames": {k: int(frames.get(k, 0)) for k in sorted(frames)},
            "message": self.message,
            "name": self.name,
            "reason": self.reason,
            "report": str(reports / self.name / "rr-report.json") if self.report else None,
            "verdict": self.verdict,
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """What `--all` (and `rrlab ci`) adds to replay's options."""
    parser.add_argument(
        "--junit",
        metavar="FILE",
        help="with --all: JUnit XML, one testcase per cassette (failure message: the miss line)",
    )
    parser.add_argument(
        "--reports-dir",
        default=DEFAULT_REPORTS_DIR,
        metavar="DIR",
        help="with --all: each cassette's rr-report.json and rr-metrics.txt go to DIR/NAME/",
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="with --all: run the cassettes' stored prepare steps (with the network), replay "
        "nothing",
    )


def find_cassettes(dirs: list[str]) -> list[Path]:
    """Every cassette (a directory holding cassette.json) at or under each of `dirs`, in path
    order; hidden directories (a recording in progress, an old copy being swapped) are not."""
    found: list[Path] = []
    for given in dirs:
        root = Path(given)
        if not root.is_dir():
            raise UsageError(f"--all {given}: no such directory")
        here = [root] if (root / MANIFEST_NAME).is_file() else list(_walk(root))
        if not here:
            raise UsageError(
                f"--all {given}: no cassette under it (a directory holding {MANIFEST_NAME})"
            )
        found += [p for p in here if p not in found]
    return found


def _walk(root: Path) -> Iterator[Path]:
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir() or entry.is_symlink():
            continue
        if (entry / MANIFEST_NAME).is_file():
            yield entry
        else:
            yield from _walk(entry)


def run(args: argparse.Namespace) -> int:
    cassettes = find_cassettes(args.all)
    if args.cmd:
        raise UsageError("--all replays each cassette's stored command: give no command after --")
    if args.cassette:
        raise UsageError("give either --cassette DIR or --all DIR..., not both")
    if getattr(args, "artifact", None) or getattr(args, "timing_artifact", None):
        raise UsageError("--artifact and --timing-artifact choose within one cassette: not --all")
    try:
        policy = get_profile(args.profile).with_write_roots(args.write_root)
        report_path = policy.check_write_path(args.report or DEFAULT_REPORT)
        junit_path = policy.check_write_path(args.junit) if args.junit else None
        reports = policy.check_write_path(args.reports_dir)
        check_writable(args.report or DEFAULT_REPORT, "--report")
        if args.junit:
            check_writable(args.junit, "--junit")
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    outcomes = _named(cassettes)
    failed_prepare = _prepare(outcomes)
    if args.prepare_only:
        return EXIT_MISMATCH if failed_prepare else EXIT_OK
    if threading.active_count() == 1 and len(outcomes) > len(failed_prepare):
        _preload()
    for outcome in outcomes:
        if outcome.cassette not in failed_prepare:
            _replay(outcome, args, reports / outcome.name)
    _print_table(outcomes)
    _write(report_path, dumps(_report(outcomes, args, reports)) + b"\n")
    if junit_path is not None:
        _write(junit_path, _junit(outcomes))
    if any(not o.passed and o.exit != EXIT_USAGE for o in outcomes):
        return EXIT_MISMATCH
    return EXIT_USAGE if any(not o.passed for o in outcomes) else EXIT_OK


def _named(cassettes: list[Path]) -> list[Outcome]:
    """One Outcome per cassette, named by its directory (a repeated name gets -2, -3, ...)."""
    seen: collections.Counter[str] = collections.Counter()
    out = []
    for path in cassettes:
        seen[path.name] += 1
        n = seen[path.name]
        out.append(Outcome(path, path.name if n == 1 else f"{path.name}-{n}"))
    return out


# --- prepare -----------------------------------------------------------------------------------


def _prepare(outcomes: list[Outcome]) -> set[Path]:
    """Run each distinct stored prepare step once, from its working directory; the cassettes
    whose step failed (their row says so). A cassette that cannot be read is left to replay,
    whose error names what is wrong."""
    done: dict[tuple[str, tuple[str, ...]], int] = {}
    failed: set[Path] = set()
    for outcome in outcomes:
        try:
            command = load_manifest(outcome.cassette, require_finalized=True).command
        except CassetteError:
            continue
        if command is None or not command.prepare:
            continue
        workdir = command.workdir(outcome.cassette)
        step = (str(workdir), command.prepare)
        if step not in done:
            print(f"== prepare: {shlex.join(command.prepare)} (in {workdir})", flush=True)
            start = time.monotonic()
            try:
                done[step] = subprocess.run(
                    command.prepare, cwd=workdir, stdin=subprocess.DEVNULL
                ).returncode
            except OSError as exc:
                print(f"   cannot run {command.prepare[0]!r}: {exc.strerror}", flush=True)
                done[step] = EXIT_USAGE
            took = time.monotonic() - start
            print(f"   {'ready' if done[step] == 0 else 'FAILED'} in {took:.1f} s", flush=True)
        if done[step] != 0:
            failed.add(outcome.cassette)
            outcome.verdict = "prepare_failed"
            outcome.reason = f"its prepare step exited {done[step]}: {shlex.join(command.prepare)}"
            outcome.message = outcome.reason
    return failed


# --- replaying ---------------------------------------------------------------------------------


def _replay(outcome: Outcome, args: argparse.Namespace, keep: Path) -> None:
    """`rrlab replay --cassette C` with the stored command; its output shown and kept."""
    print(f"== {outcome.cassette}", flush=True)
    start = time.monotonic()
    report_file, metrics_file = keep / "rr-report.json", keep / "rr-metrics.txt"
    for stale in (report_file, metrics_file):
        stale.unlink(missing_ok=True)
    if args.profile == "ci_replay":  # CI trusts only cassettes their recorder finalized
        code = _run_shown(outcome, ["verify", "--strict", str(outcome.cassette)])
        if code != 0:
            outcome.exit, outcome.verdict = EXIT_MISMATCH, "unverified"
            outcome.reason = "rrlab verify --strict refused it (repaired or broken connections)"
            outcome.message = _last_line(outcome.output, "rrlab verify") or outcome.reason
            outcome.seconds = time.monotonic() - start
            return
    argv = ["replay", "--cassette", str(outcome.cassette), "--profile", args.profile]
    argv += ["--report", str(report_file), "--metrics", str(metrics_file)]
    argv += [*_passed_on(args)]
    outcome.exit = _run_shown(outcome, argv)
    outcome.seconds = time.monotonic() - start
    if report_file.exists():
        outcome.report = json.loads(report_file.read_bytes())
    _judge(outcome)


def _passed_on(args: argparse.Namespace) -> list[str]:
    """The options of this run that each cassette's replay takes as they are."""
    out = ["--match", args.match, "--pace", args.pace, "--sandbox", args.sandbox]
    out += ["--port-offset", str(args.port_offset), "--miss-grace", f"{args.miss_grace:g}"]
    out += ["--timeout", f"{args.timeout:g}"] if args.timeout is not None else []
    out += [a for f in args.ignore_field for a in ("--ignore-field", f)]
    out += [a for h in args.ignore_header for a in ("--ignore-header", h)]
    out += [a for root in args.write_root for a in ("--write-root", root)]
    return out


def _run_shown(outcome: Outcome, argv: list[str]) -> int:
    """Run `rrlab ARGV...`, its stdout and stderr passed through to our stdout as they come (the
    tail kept for the JUnit file). Forked from this process where it runs alone (the CLI): each
    cassette's replay then starts with everything already imported here (an interpreter and
    its imports per cassette were most of a small cassette's time); else a new rrlab."""
    proc: ForkedChild | subprocess.Popen[bytes]
    if threading.active_count() == 1:
        proc = ForkedChild(lambda: _subcommand(argv), text=False, merged=True)
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rrlab", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    tail: collections.deque[str] = collections.deque(outcome.output, maxlen=KEEP_LINES)
    assert proc.stdout is not None

    def pump() -> None:
        for raw in proc.stdout:  # type: ignore[union-attr]
            sys.stdout.buffer.write(raw)
            sys.stdout.flush()
            tail.append(raw.decode("utf-8", "replace").rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    code = proc.wait()
    reader.join(10)
    outcome.output = list(tail)
    return 128 - code if code < 0 else code


def _subcommand(argv: list[str]) -> int:
    """The body of a forked `rrlab replay ...` or `rrlab verify ...`."""
    if argv[0] == "verify":
        from rrlab.cassette_cli import register
    else:
        from .replay_cli import register
    return run_subcommand(register, argv[0], argv[1:])


def _preload() -> None:
    """Import once, here, what each forked replay imports (its fake broker's Twisted modules,
    every protocol, the cassette tools): not once per cassette. No reactor is made here; each
    fake broker installs its own."""
    import twisted.internet.posixbase  # noqa: F401
    import twisted.internet.tcp  # noqa: F401

    import rrlab.cassette_cli  # noqa: F401
    from rrlab.rr.protocols import PROTOCOLS

    from . import app, replay_cli  # noqa: F401

    for _protocol in PROTOCOLS.values():  # each loaded
        pass


def _judge(outcome: Outcome) -> None:
    """Verdict, reason and the one-line message from the replay's report and output."""
    report = outcome.report
    closing = _last_line(outcome.output, "rrlab replay:")
    if not report:  # it stopped before writing one: a usage error, a bad cassette
        outcome.verdict = (
            "ok" if outcome.exit == 0 else ("error" if outcome.exit == 2 else "failed")
        )
        outcome.reason = closing.removeprefix("rrlab replay: ") or f"exit {outcome.exit}"
        outcome.message = outcome.reason
        return
    outcome.verdict = str(report.get("verdict", "error"))
    outcome.reason = str(report.get("reason", ""))
    misses = report.get("misses") or []
    lines = [_miss_line(m) for m in misses]
    outcome.message = lines[0].splitlines()[0] if lines else (closing or outcome.reason)
    diffs = [d for a in (report.get("artifacts") or {}).values() for d in a.get("diff", [])]
    outcome.details = [closing, *lines, *diffs] if closing else [*lines, *diffs]


def _miss_line(data: dict[str, Any]) -> str:
    try:
        return Miss(**data).line()
    except TypeError:  # a report of another version: its reason is still there
        return f"MISS {printable(str(data.get('reason', data)))}"


def _last_line(lines: list[str], prefix: str) -> str:
    return next((ln for ln in reversed(lines) if ln.startswith(prefix)), "")


# --- the summary -------------------------------------------------------------------------------


def _print_table(outcomes: list[Outcome]) -> None:
    width = max([len("cassette"), *(len(str(o.cassette)) for o in outcomes)])
    print()
    print(
        f"{'cassette':{width}} {'verdict':15} {'matched':>7} {'synth':>6} {'missed':>6} "
        f"{'unused':>6} {'sandbox':8} {'s':>5}"
    )
    for o in outcomes:
        frames = o.report.get("frames", {})
        sandbox = o.report.get("sandbox", {}).get("used", "-")
        print(
            f"{str(o.cassette):{width}} {o.verdict:15} {frames.get('matched', 0):>7} "
            f"{frames.get('synthesized', 0):>6} {frames.get('missed', 0):>6} "
            f"{frames.get('unused', 0):>6} {sandbox:8} {o.seconds:>5.1f}"
        )
    failed = [o for o in outcomes if not o.passed]
    print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed", flush=True)
    for o in failed:
        print(f"  {o.cassette}: {printable(o.message)}")


def _report(outcomes: list[Outcome], args: argparse.Namespace, reports: Path) -> dict[str, Any]:
    """Canonical JSON, no clock value: two runs with the same results write the same bytes."""
    failed = sum(1 for o in outcomes if not o.passed)
    return {
        "cassettes": [o.to_dict(reports) for o in outcomes],
        "format": REPORT_FORMAT,
        "profile": args.profile,
        "totals": {"cassettes": len(outcomes), "failed": failed, "passed": len(outcomes) - failed},
    }


def _junit(outcomes: list[Outcome]) -> bytes:
    failures = sum(1 for o in outcomes if not o.passed and o.exit != EXIT_USAGE)
    errors = sum(1 for o in outcomes if not o.passed and o.exit == EXIT_USAGE)
    total = f"{sum(o.seconds for o in outcomes):.3f}"
    counts = {"tests": str(len(outcomes)), "failures": str(failures), "errors": str(errors)}
    suites = ET.Element("testsuites", name="rrlab replay", time=total, **counts)
    suite = ET.SubElement(suites, "testsuite", name="rrlab replay", time=total, **counts)
    for o in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=str(o.cassette.parent),
            name=o.cassette.name,
            time=f"{o.seconds:.3f}",
        )
        if not o.passed:
            kind = "error" if o.exit == EXIT_USAGE else "failure"
            bad = ET.SubElement(case, kind, message=_xml_text(o.message), type=o.verdict)
            bad.text = _xml_text("\n".join([o.reason, *o.details]))
        if o.output:
            ET.SubElement(case, "system-out").text = _xml_text("\n".join(o.output))
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"


def _xml_text(text: str) -> str:
    """XML 1.0 cannot carry most control characters: escape them as `printable` does."""
    return "".join(ch if ch in "\t\n" or ord(ch) >= 0x20 else f"\\x{ord(ch):02x}" for ch in text)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
