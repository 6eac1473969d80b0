"""`rrlab replay`: run a command against the fake broker, offline, and say whether it behaved as
recorded.

Starts `rrlab serve` on the cassette, runs CMD, stops the fake broker, then compares each
recorded artifact with the file CMD wrote (byte for byte; timing-bearing ones for shape only).
The run is enforced offline (replayer.sandbox): by default the fake broker and CMD run in a new
network namespace that has only `lo`. For CI it writes a canonical JSON report and an
OpenMetrics snapshot. Exit 0 when everything matched; 1 on a miss, an unused frame under a
strict profile, a differing artifact or a failing CMD; 2 on usage, policy or a bad cassette.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.openmetrics.exposition import generate_latest

from rr.canonical import dumps
from rr.cassette import CassetteError
from rr.cli_options import add_write_root
from rr.policy import PolicyError, get_profile
from rr.usage import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, UsageError

from . import sandbox
from .recording import Recording
from .session import MatchMode, Pace

LISTENING = "rrlab serve: listening "
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
REPLAY_PROFILES = ("rr_replay", "ci_replay")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay",
        help="run CMD against the fake broker, offline; fail unless its artifacts match",
        description="Serve the cassette (rrlab serve), run CMD (after --), and compare every "
        "recorded artifact with the file CMD wrote: byte for byte, or for shape only when "
        "timing-bearing. Runs in a network namespace with only loopback by default. Exit 0 "
        "ok, 1 mismatch/miss (a unified diff is printed), 2 usage/policy/bad cassette.",
        epilog="example: rrlab replay --profile ci_replay --cassette "
        "cassettes/worker-kafka-tansu -- rrlab-worker --driver kafka --count 200 --seed 1 "
        "--out out/worker-kafka-tansu",
    )
    p.add_argument("--cassette", required=True, metavar="DIR", help="cassette directory")
    p.add_argument(
        "--profile",
        default="rr_replay",
        choices=REPLAY_PROFILES,
        help="rr_replay: offline; ci_replay: offline and strict (default %(default)s)",
    )
    p.add_argument(
        "--match", default=MatchMode.TRANSCRIPT.value, choices=[m.value for m in MatchMode]
    )
    p.add_argument("--pace", default=Pace.FAST.value, choices=[m.value for m in Pace])
    p.add_argument(
        "--sandbox",
        default=sandbox.Sandbox.AUTO.value,
        choices=[s.value for s in sandbox.Sandbox],
        help="auto: a network namespace where possible, else the Python guard (default "
        "%(default)s)",
    )
    p.add_argument("--port-offset", type=int, default=0, metavar="N", help="move every listener")
    p.add_argument(
        "--artifact",
        action="extend",
        nargs="+",
        default=[],
        metavar="PATH",
        help="compare only these recorded artifacts (default: all but timing-bearing ones)",
    )
    p.add_argument(
        "--timing-artifact",
        action="extend",
        nargs="+",
        default=[],
        metavar="PATH",
        help="artifacts holding timings: checked for shape only",
    )
    p.add_argument("--ignore-field", action="append", default=[], metavar="PATH")
    p.add_argument("--ignore-header", action="append", default=[], metavar="NAME")
    p.add_argument("--report", default="out/rr-report.json", metavar="PATH")
    p.add_argument("--metrics", default="out/rr-metrics.txt", metavar="PATH")
    add_write_root(p)
    p.add_argument("cmd", nargs="*", metavar="-- CMD", help="the command to replay")
    p.set_defaults(func=run)


@dataclasses.dataclass
class Checked:
    """What replay found of one artifact."""

    name: str
    recorded_sha256: str
    live_sha256: str | None
    result: str  # identical | differs | missing | shape_ok | shape_differs
    diff: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "diff": self.diff[:200],
            "live_sha256": self.live_sha256,
            "recorded_sha256": self.recorded_sha256,
            "result": self.result,
        }

    @property
    def ok(self) -> bool:
        return self.result in ("identical", "shape_ok")


def run(args: argparse.Namespace) -> int:
    if not args.cmd:
        raise UsageError("no command given: rrlab replay [options] --cassette DIR -- CMD ...")
    if shutil.which(args.cmd[0]) is None:
        raise UsageError(f"cannot run {args.cmd[0]!r}: not found or not executable")
    try:
        policy = get_profile(args.profile)
        policy = policy.with_write_roots(args.write_root)
        report_path = policy.check_write_path(args.report)
        metrics_path = policy.check_write_path(args.metrics)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    try:
        recording = Recording.open(args.cassette)
    except CassetteError as exc:
        print(f"rrlab replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    compare, timing = _artifact_plan(recording, args)

    inside = os.environ.get(sandbox.INSIDE_ENV)
    asked = sandbox.Sandbox(args.sandbox)
    if inside is None:
        try:
            used = sandbox.resolve(asked)
        except sandbox.SandboxError as exc:
            raise UsageError(str(exc)) from None
        if used is sandbox.Sandbox.NETNS:
            return _reexec_in_namespace(args)
    else:
        used = sandbox.Sandbox(inside)
        sandbox.loopback_up()

    serve_report = Path(tempfile.mkdtemp(prefix="rrlab-replay-")) / "serve"
    try:
        served = _serve_and_run(args, recording, policy.strict, used, serve_report)
        checked = [_check(recording, name, timing=name in timing) for name in compare]
        verdict, why = _verdict(served, checked)
        report = _report(args, recording, served, checked, verdict, why, asked, used)
        _write(report_path, dumps(report) + b"\n")
        _write(metrics_path, _metrics(served, checked))
    finally:
        shutil.rmtree(serve_report.parent, ignore_errors=True)
    for item in checked:
        if item.diff:
            print("\n".join(item.diff))
    print(_closing(verdict, why, served, checked, used), flush=True)
    return EXIT_OK if verdict == "ok" else EXIT_MISMATCH


# --- plan --------------------------------------------------------------------------------------


def _artifact_plan(recording: Recording, args: argparse.Namespace) -> tuple[list[str], set[str]]:
    recorded = sorted(recording.manifest.artifacts)
    declared = recording.manifest.meta.get("timing_artifacts") or []
    timing = {_key(p) for p in [*declared, *args.timing_artifact]}
    wanted = [_key(p) for p in args.artifact] or recorded
    for name in [*wanted, *timing]:
        if name not in recording.manifest.artifacts:
            known = ", ".join(recorded) or "none"
            raise UsageError(f"the cassette has no artifact {name!r} (it has: {known})")
    return wanted, timing


def _key(path: str) -> str:
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise UsageError(f"artifact {path!r}: give a relative path without '..'")
    return rel.as_posix()


# --- running -----------------------------------------------------------------------------------


def _reexec_in_namespace(args: argparse.Namespace) -> int:
    """Run this same replay again inside a new network namespace (only `lo` there)."""
    argv = [*sandbox.unshare_argv(), sys.executable, "-m", "rrlab", *args.argv]
    env = {**os.environ, sandbox.INSIDE_ENV: sandbox.Sandbox.NETNS.value}
    proc = subprocess.Popen(argv, env=env)
    return _wait_forwarding_signals(proc)


def _wait_forwarding_signals(proc: subprocess.Popen) -> int:
    def forward(signum: int, _frame: Any) -> None:
        proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return 128 - code if code < 0 else code


@dataclasses.dataclass
class Served:
    command_exit: int
    serve_exit: int
    report: dict[str, Any]
    metrics: bytes
    interfaces: list[str]


def _serve_and_run(
    args: argparse.Namespace,
    recording: Recording,
    strict: bool,
    used: sandbox.Sandbox,
    scratch: Path,
) -> Served:
    report, metrics = scratch.with_suffix(".json"), scratch.with_suffix(".txt")
    argv = [sys.executable, "-m", "rrlab", "serve", "--cassette", str(recording.path)]
    argv += ["--match", args.match, "--pace", args.pace, "--port-offset", str(args.port_offset)]
    argv += ["--report", str(report), "--metrics-file", str(metrics)]
    argv += ["--strict"] if strict else []
    argv += [a for f in args.ignore_field for a in ("--ignore-field", f)]
    argv += [a for h in args.ignore_header for a in ("--ignore-header", h)]
    server = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    listening = threading.Event()
    want = len(recording.listeners())
    lines: list[str] = []

    def pump() -> None:
        assert server.stdout is not None
        seen = 0
        for line in server.stdout:
            lines.append(line)
            if line.startswith(LISTENING):
                seen += 1
                if seen >= want:
                    listening.set()
        listening.set()

    def pump_err() -> None:
        assert server.stderr is not None
        for line in server.stderr:  # misses, one per line, as they happen
            sys.stderr.write(line)

    pumps = [threading.Thread(target=f, daemon=True) for f in (pump, pump_err)]
    for thread in pumps:
        thread.start()
    if not listening.wait(START_TIMEOUT) or server.poll() is not None:
        server.kill()
        server.wait()
        raise UsageError(f"the fake broker did not start: {''.join(lines).strip()}")
    env = dict(os.environ)
    env.pop(sandbox.INSIDE_ENV, None)
    if used is sandbox.Sandbox.GUARD:
        env = sandbox.guard_env(env)
    interfaces = sandbox.interfaces()
    try:
        command = subprocess.Popen(list(args.cmd), env=env)
        command_exit = _wait_forwarding_signals(command)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            serve_exit = server.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            serve_exit = server.wait()
        for thread in pumps:  # every miss line is out before the verdict is printed
            thread.join(5)
    data = json.loads(report.read_bytes()) if report.exists() else {}
    return Served(
        command_exit,
        serve_exit,
        data,
        metrics.read_bytes() if metrics.exists() else b"",
        interfaces,
    )


# --- checking ----------------------------------------------------------------------------------


def _check(recording: Recording, name: str, *, timing: bool) -> Checked:
    try:
        recorded = recording.artifact(name)  # inside the cassette, its digest checked now
    except CassetteError as exc:
        raise UsageError(str(exc)) from None
    rec_sha = hashlib.sha256(recorded).hexdigest()
    live_path = Path(name)
    if not live_path.is_file():
        return Checked(name, rec_sha, None, "missing", [f"{name}: CMD did not write it"])
    live = live_path.read_bytes()
    live_sha = hashlib.sha256(live).hexdigest()
    if timing:
        problem = _shape_problem(name, recorded, live)
        if problem is None:
            return Checked(name, rec_sha, live_sha, "shape_ok")
        return Checked(name, rec_sha, live_sha, "shape_differs", [f"{name}: {problem}"])
    if live == recorded:
        return Checked(name, rec_sha, live_sha, "identical")
    return Checked(name, rec_sha, live_sha, "differs", _unified_diff(name, recorded, live))


def _readable(data: bytes) -> list[str]:
    """Text lines to diff: JSON pretty-printed (canonical JSON is one long line)."""
    try:
        return json.dumps(json.loads(data), indent=2, sort_keys=True).splitlines()
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return [f"<{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}>"]


def _unified_diff(name: str, recorded: bytes, live: bytes) -> list[str]:
    lines = list(
        difflib.unified_diff(
            _readable(recorded),
            _readable(live),
            fromfile=f"recorded/{name}",
            tofile=f"live/{name}",
            lineterm="",
        )
    )
    return lines or [f"{name}: same text, different bytes (whitespace or encoding)"]


def _shape_problem(name: str, recorded: bytes, live: bytes) -> str | None:
    """Timing-bearing artifacts: the same kind of document, not the same values."""
    if name.endswith(".json"):
        try:
            a, b = json.loads(recorded), json.loads(live)
        except ValueError:
            return "not JSON"
        if isinstance(a, dict) and (not isinstance(b, dict) or sorted(a) != sorted(b)):
            return (
                f"keys differ: recorded {sorted(a)} live {sorted(b) if isinstance(b, dict) else b}"
            )
        return None
    if recorded.rstrip().endswith(b"# EOF"):
        if not live.rstrip().endswith(b"# EOF"):
            return "OpenMetrics text does not end with # EOF"
        families = [ln for ln in recorded.splitlines() if ln.startswith(b"# TYPE")]
        live_families = [ln for ln in live.splitlines() if ln.startswith(b"# TYPE")]
        if families != live_families:
            return "metric families differ"
        return None
    return None if live else "empty"


def _verdict(served: Served, checked: list[Checked]) -> tuple[str, str]:
    fake = served.report.get("verdict")
    if fake is None:
        return "error", f"the fake broker wrote no report (exit {served.serve_exit})"
    if fake == "miss":
        return "miss", "the command sent frames the recording cannot answer"
    if served.command_exit != 0:
        return "command_failed", f"the command exited {served.command_exit}"
    if fake == "unused":
        return "unused", "recorded client frames were never sent (strict profile)"
    bad = [c.name for c in checked if not c.ok]
    if bad:
        return "mismatch", f"artifacts differ from the recording: {', '.join(bad)}"
    return "ok", f"{len(checked)} artifacts as recorded"


def _report(args, recording, served, checked, verdict, why, asked, used) -> dict[str, Any]:
    fake = served.report
    return {
        "artifacts": {c.name: c.to_dict() for c in checked},
        "cassette": {
            "frames_sha256": recording.manifest.frames_sha256,
            "path": str(args.cassette),
        },
        "command": {"argv": list(args.cmd), "exit": served.command_exit},
        "format": "rrlab.rr-report/1",
        "frames": fake.get("totals", {}),
        "frames_by_api": fake.get("by_api", {}),
        "match": args.match,
        "misses": fake.get("misses", []),
        "profile": args.profile,
        "reason": why,
        "sandbox": {
            "asked": asked.value,
            "interfaces": served.interfaces,
            "used": used.value,
            "weaker_guard": used is not sandbox.Sandbox.NETNS,
        },
        "unused": fake.get("unused", []),
        "verdict": verdict,
    }


def _metrics(served: Served, checked: list[Checked]) -> bytes:
    """The fake broker's counters plus artifact results, one OpenMetrics snapshot."""
    registry = CollectorRegistry()
    counter = Counter(
        "rrlab_replay_artifacts",
        "Recorded artifacts compared after the replayed command, by result",
        ["result"],
        registry=registry,
    )
    for result in ("identical", "differs", "missing", "shape_ok", "shape_differs"):
        counter.labels(result).inc(sum(1 for c in checked if c.result == result))
    ours = generate_latest(registry)
    theirs = served.metrics.rstrip()
    if theirs.endswith(b"# EOF"):
        theirs = theirs[: -len(b"# EOF")]
    return theirs + ours


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _closing(verdict, why, served, checked, used) -> str:
    t = served.report.get("totals", {})
    frames = (
        f"{t.get('matched', 0)} matched, {t.get('synthesized', 0)} synthesized, "
        f"{t.get('missed', 0)} missed, {t.get('unused', 0)} unused"
    )
    weaker = "" if used is sandbox.Sandbox.NETNS else " (weaker than a network namespace)"
    return (
        f"rrlab replay: {verdict.upper()} ({why}); frames: {frames}; sandbox {used.value}{weaker}"
    )
