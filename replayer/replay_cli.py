"""`rrlab replay`: run a command against the fake broker, offline, and say whether it behaved as
recorded.

Starts `rrlab serve` on the cassette, moves earlier copies of the recorded artifacts aside
(rr.stale_artifacts), runs CMD, stops the fake broker, then compares each recorded artifact with
the file CMD wrote in this run (byte for byte; timing-bearing ones for shape only). The run is
enforced offline (replayer.sandbox): by default the fake broker and CMD run in a new network
namespace that has only `lo`. For CI it writes a canonical JSON report and an OpenMetrics
snapshot. With no command after `--` it runs the one the cassette stored (`rrlab record` keeps
its argv and working directory: rr.cassette.stored_command), from that directory; `--all DIR...`
does so for every cassette under the directories (replayer.replay_all).

OK means the command behaved as recorded: it exited 0, matched recorded traffic (a command that
matched none of a cassette's client frames never passes), nothing missed, and every artifact
was written by this run and equals the recorded one. A miss ends the command after
--miss-grace seconds (the fake broker logs each miss to a file the moment it happens; that file,
not its terminal lines, is what is watched, so wording, log format and rate limits cannot hide
one); --timeout bounds the whole run. The fake broker gets as long as it needs to write its
report (within --timeout), and one that did not finish is its own verdict, never the command's.
Exit 0 when OK; 1 for every other verdict; 2 on usage, policy or a bad cassette.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from rrlab.options import add_cassette, add_command_argv, add_paths, add_write_root
from rrlab.rr.canonical import dumps
from rrlab.rr.cassette import CassetteError
from rrlab.rr.cassette.errors import printable
from rrlab.rr.policy import PolicyError, check_writable, get_profile
from rrlab.rr.replay.recording import Recording
from rrlab.rr.stale_artifacts import ArtifactsAside, StaleArtifactError
from rrlab.rr.usage import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, UsageError

from . import cli as serve_cli
from . import early_listen, replay_all, sandbox
from .cli import add_matching
from .forked import ForkedChild, run_subcommand

LISTENING = "rrlab serve: listening "
LISTEN_HOST = "127.0.0.1"  # where `rrlab serve` listens (replayer.app)
DEFAULT_REPORT = "out/rr-report.json"
REPLAY_PROFILES = ("rr_replay", "ci_replay")
DEFAULT_MISS_GRACE = 3.0  # seconds a command gets after a miss to end by itself (its own words)
TERM_GRACE = 2.0  # seconds from SIGTERM to SIGKILL when replay ends the command's process group
STOP_AFTER_TIMEOUT = 5.0  # seconds the fake broker still gets for its report once --timeout is up
NOTE_EVERY = 30.0  # seconds between "still waiting for the fake broker" lines
POLL = 0.1  # seconds between looks at the command, the miss log and the clock


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay",
        help="run CMD against the fake broker, offline; fail unless its artifacts match",
        description="Serve the cassette (rrlab serve), run CMD (after --), and compare every "
        "recorded artifact with the file CMD wrote: byte for byte, or for shape only when "
        "timing-bearing. Runs in a network namespace with only loopback by default. Exit 0 "
        "ok, 1 mismatch/miss (a unified diff is printed), 2 usage/policy/bad cassette.",
        epilog="example:\n  rrlab replay --cassette cassettes/worker-kafka-tansu   "
        "(the command it recorded)\n  rrlab replay --profile ci_replay --cassette "
        "cassettes/worker-kafka-tansu -- python -m worker --driver kafka --count 200 --seed 1 "
        "--out out/worker-kafka-tansu\n  rrlab replay --all cassettes tests/cassettes "
        "--junit out/junit.xml",
    )
    _add_arguments(p, "rr_replay")
    p.set_defaults(func=run)
    ci = subparsers.add_parser(
        "ci",
        help="replay every cassette under DIRs with its stored command, strict (replay --all)",
        description="`rrlab replay --all --profile ci_replay DIR...` (default DIR: cassettes): "
        "every cassette replayed offline with the command it recorded; one table, a canonical "
        "JSON report (--report) and JUnit XML (--junit). Exit 0 all passed, 1 a miss or "
        "mismatch, 2 usage (or a cassette that cannot be replayed).",
        epilog="example: rrlab ci cassettes --junit out/replay/junit.xml",
    )
    ci.add_argument(
        "dirs",
        nargs="*",
        default=["cassettes"],
        metavar="DIR",
        help="directories to search for cassettes (default: cassettes)",
    )
    _add_arguments(ci, "ci_replay", batch_only=True)
    ci.set_defaults(func=_run_ci)


def _run_ci(args: argparse.Namespace) -> int:
    args.all, args.cassette, args.cmd = args.dirs, None, []
    return replay_all.run(args)


def _add_arguments(p: argparse.ArgumentParser, profile: str, *, batch_only: bool = False) -> None:
    """replay's options; `rrlab ci` (batch_only) takes them all but --cassette, --all, CMD and
    the per-run artifact lists."""
    if not batch_only:
        add_cassette(p, required=False, help="cassette directory (or --all DIR...)")
        p.add_argument(
            "--all",
            nargs="+",
            metavar="DIR",
            help="replay every cassette at or under each DIR with the command it stored, then "
            "print one table (see --report, --junit, --reports-dir)",
        )
    p.add_argument(
        "--profile",
        default=profile,
        choices=REPLAY_PROFILES,
        help="rr_replay: offline; ci_replay: offline and strict (default %(default)s)",
    )
    add_matching(p)
    p.add_argument(
        "--sandbox",
        default=sandbox.Sandbox.AUTO.value,
        choices=[s.value for s in sandbox.Sandbox],
        help="auto: a network namespace where possible, else the Python guard (default "
        "%(default)s)",
    )
    if not batch_only:
        add_paths(
            p,
            "--artifact",
            "compare only these recorded artifacts (default: all but timing-bearing)",
        )
        add_paths(p, "--timing-artifact", "artifacts holding timings: checked for shape only")
    p.add_argument(
        "--miss-grace",
        type=_seconds,
        default=DEFAULT_MISS_GRACE,
        metavar="SECONDS",
        help="after the first miss, let the command end by itself for this long, then end it "
        f"(SIGTERM to its process group, SIGKILL {TERM_GRACE:g} s later); the verdict is MISS "
        "(default %(default)g)",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="bound the whole run: past it the command is ended the same way and the verdict "
        "is TIMEOUT (default: none)",
    )
    p.add_argument(
        "--report",
        metavar="PATH",
        help=f"the canonical JSON report (default {DEFAULT_REPORT}; with --all the summary, "
        f"default {replay_all.DEFAULT_REPORT})",
    )
    p.add_argument(
        "--metrics",
        default="out/rr-metrics.txt",
        metavar="PATH",
        help="OpenMetrics snapshot of the replay (with --all: one per cassette, in --reports-dir)",
    )
    add_write_root(p)
    replay_all.add_arguments(p)
    if not batch_only:
        add_command_argv(p, "replay (default: the one the cassette stored)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds (0 or more)")
    return value


@dataclasses.dataclass
class Checked:
    """What replay found of one artifact."""

    name: str
    recorded_sha256: str
    live_sha256: str | None
    result: str  # identical | differs | missing | shape_ok | shape_differs
    diff: list[str] = dataclasses.field(default_factory=list)
    earlier_copy: str | None = None  # missing: where the earlier run's file was moved aside

    def to_dict(self) -> dict[str, Any]:
        return {
            "diff": self.diff[:200],
            "earlier_copy": self.earlier_copy,
            "live_sha256": self.live_sha256,
            "recorded_sha256": self.recorded_sha256,
            "result": self.result,
        }

    @property
    def ok(self) -> bool:
        return self.result in ("identical", "shape_ok")


def run(args: argparse.Namespace) -> int:
    if args.all is not None:
        return replay_all.run(args)
    if not args.cassette:
        raise UsageError("give --cassette DIR (or --all DIR...)")
    if args.junit or args.prepare_only:
        raise UsageError("--junit and --prepare-only go with --all DIR...")
    args.report = args.report or DEFAULT_REPORT
    try:
        policy = get_profile(args.profile)
        policy = policy.with_write_roots(args.write_root)
        report_path = policy.check_write_path(args.report)
        metrics_path = policy.check_write_path(args.metrics)
        check_writable(args.report, "--report")
        check_writable(args.metrics, "--metrics")
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    try:
        # checked whole here (a bad cassette is exit 2 before anything runs); the fake broker
        # classifies client frames for its report, replay needs no kinds of its own
        recording = Recording.open(args.cassette, classify=None)
    except CassetteError as exc:
        print(f"rrlab replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args.cmd, args.workdir = _command(args, recording)
    compare, timing = _artifact_plan(recording, args)

    inside = os.environ.get(sandbox.INSIDE_ENV)
    asked = sandbox.Sandbox(args.sandbox)
    if (
        inside is None
        and asked in (sandbox.Sandbox.AUTO, sandbox.Sandbox.NETNS)
        and threading.active_count() == 1  # a namespace is per thread: the CLI, not a library
        and sandbox.enter_netns()  # in place (root): nothing imported again, no process between
    ):
        used = sandbox.Sandbox.NETNS
    elif inside is None:
        try:
            used = sandbox.resolve(asked)
        except sandbox.SandboxError as exc:
            raise UsageError(str(exc)) from None
        if used is sandbox.Sandbox.NETNS:
            return _reexec_in_namespace(args)
    else:
        used = sandbox.Sandbox(inside)
        sandbox.loopback_up()

    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    aside = ArtifactsAside({name: args.workdir / name for name in compare})
    serve_report = Path(tempfile.mkdtemp(prefix="rrlab-replay-")) / "serve"
    try:
        try:
            served = _serve_and_run(
                args, recording, policy.strict, used, serve_report, aside, deadline
            )
        except Interrupted as exc:
            print(
                f"rrlab replay: interrupted ({exc}) before the fake broker served", file=sys.stderr
            )
            return 128 + exc.signum
        ran = served.command_exit is not None
        earlier = aside.settle() if ran else {}
        checked = [
            _check(
                recording, name, timing=name in timing, earlier=earlier.get(name), at=args.workdir
            )
            for name in (compare if ran else [])
        ]
        verdict, why = _verdict(served, checked, _client_frames(recording), args)
        live = served.report.get("connections", {}).get("live")
        if verdict != "ok" and served.report and not live and _client_frames(recording):
            why += f"; {_never_connected(recording, served)}"  # also when the command failed
        report = _report(args, recording, served, checked, verdict, why, asked, used)
        _write(report_path, dumps(report) + b"\n")
        _write(metrics_path, _metrics(served, checked))
    finally:
        shutil.rmtree(serve_report.parent, ignore_errors=True)
    for item in checked:
        if item.diff:
            print("\n".join(printable(line) for line in item.diff))  # no control sequence obeyed
    for note in served.report.get("notes", []):  # e.g. a request matched by its header only
        _say(f"note: {printable(note)}")
    for bound in served.report.get("bindings", [])[:MAX_BINDING_LINES]:  # values the client chose
        _say(printable(f"bound {bound['recorded']} -> {bound['live']} ({bound['where']})"))
    print(_closing(verdict, why, served, checked, used), flush=True)
    return EXIT_OK if verdict == "ok" else EXIT_MISMATCH


# --- plan --------------------------------------------------------------------------------------


def _command(args: argparse.Namespace, recording: Recording) -> tuple[list[str], Path]:
    """What runs, and from where: the command after --, from here; else the one the cassette
    stored, from its stored directory (UsageError when there is none, or it cannot run)."""
    if args.cmd:
        argv, workdir, where = list(args.cmd), Path(), ""  # paths in reports stay as given
    else:
        stored = recording.manifest.command
        if stored is None:
            raise UsageError(
                f"{args.cassette} stores no command (recorded by `rrlab proxy`, or by an rrlab "
                "that did not store commands): give it after --, as in: rrlab replay "
                f"--cassette {args.cassette} -- CMD ..., or record it again with rrlab record"
            )
        workdir = stored.workdir(recording.path)
        if not workdir.is_dir():
            raise UsageError(
                f"{args.cassette}: its command runs in {stored.cwd} relative to the cassette "
                f"({workdir}), which is not a directory here"
            )
        argv, where = list(stored.argv), f" (the cassette's command, from {workdir})"
    exe = argv[0]
    path = workdir / exe if "/" in exe else shutil.which(exe)
    if path is None or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise UsageError(f"cannot run {exe!r}: not found or not executable{where}")
    return argv, workdir


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
    """How the command and the fake broker ended."""

    command_exit: int | None  # None: it never started (--timeout passed before serve listened)
    ended_by: str | None  # "miss_grace" | "timeout": replay ended the command
    missed: bool  # the fake broker logged a miss (known even when it wrote no report)
    serve_exit: int
    serve_killed: str | None  # why replay killed the fake broker before it wrote its report
    report: dict[str, Any]
    metrics: bytes
    interfaces: list[str]


def _serve_and_run(
    args: argparse.Namespace,
    recording: Recording,
    strict: bool,
    used: sandbox.Sandbox,
    scratch: Path,
    aside: ArtifactsAside,
    deadline: float | None,
) -> Served:
    report, metrics = scratch.with_suffix(".json"), scratch.with_suffix(".txt")
    misses = _MissWatch(scratch.with_suffix(".misses.jsonl"))
    argv = ["--cassette", str(recording.path)]
    argv += ["--match", args.match, "--pace", args.pace, "--port-offset", str(args.port_offset)]
    argv += ["--report", str(report), "--metrics-file", str(metrics)]
    argv += ["--miss-log", str(misses.path)]
    argv += ["--strict"] if strict else []
    argv += [a for f in args.ignore_field for a in ("--ignore-field", f)]
    argv += [a for h in args.ignore_header for a in ("--ignore-header", h)]
    live_ports = serve_cli.port_map([p for _, p in recording.listeners()], args.port_offset, [])
    bound = early_listen.bind(live_ports.moves.values())  # taken: exit 2, nothing started
    try:
        server = _FakeBroker(_start_serve([*argv, *early_listen.flags(bound)], bound), len(bound))
    finally:
        early_listen.close(bound)  # the fake broker holds its own copies
    command_exit: int | None = None
    ended_by: str | None = "timeout"
    interfaces: list[str] = []
    try:
        # at once: the command's start-up overlaps the fake broker's, whose sockets already
        # listen (its clients wait in their backlog until it accepts)
        env = dict(os.environ)
        env.pop(sandbox.INSIDE_ENV, None)
        if used is sandbox.Sandbox.GUARD:
            env = sandbox.guard_env(env)
        interfaces = sandbox.interfaces()
        command = _start_command(args.cmd, env, aside, args.workdir)
        # loaded while the command starts, not before serving: what `_metrics` needs at the end
        import prometheus_client.openmetrics.exposition  # noqa: F401

        command_exit, ended_by = _supervise(
            command, misses, args.miss_grace, deadline, server.gave_up
        )
        try:  # judged once it listened: "did not start" is exit 2, whatever the command did
            _until_signalled(server.wait_listening, deadline)
        except (UsageError, Interrupted):
            aside.restore()
            raise
    finally:
        serve_exit, serve_killed = server.stop(deadline)
    data = json.loads(report.read_bytes()) if report.exists() else {}
    return Served(
        command_exit,
        ended_by,
        misses.first_at() is not None,
        serve_exit,
        serve_killed,
        data,
        metrics.read_bytes() if metrics.exists() else b"",
        interfaces,
    )


def _start_serve(
    argv: list[str], bound: Mapping[int, socket.socket]
) -> ForkedChild | subprocess.Popen[str]:
    """`rrlab serve ARGV`: forked where replay runs alone in its process (the CLI), so the child
    starts with everything replay imported; a new interpreter where other threads run (replay
    called as a function inside a larger program, which must not be forked). Either way it
    inherits the listening sockets `bound`."""
    if threading.active_count() == 1:
        return ForkedChild(lambda: run_subcommand(serve_cli.register, "serve", argv))
    return subprocess.Popen(
        [sys.executable, "-m", "rrlab", "serve", *argv],
        pass_fds=[sock.fileno() for sock in bound.values()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


class _FakeBroker:
    """`rrlab serve` as a child (forked: it starts with what replay imported): its stdout
    watched for the listening lines, its stderr (misses and warnings, as they happen) passed
    through to ours."""

    def __init__(self, proc: ForkedChild | subprocess.Popen[str], listeners: int) -> None:
        self.proc = proc
        self.listening = threading.Event()  # every listener bound, or the fake broker exited
        self.bound = False  # every listener bound
        self.lines: list[str] = []
        self.last_err = ""  # its last stderr line: why it did not start, if it did not
        self.pumps = [
            threading.Thread(target=f, args=(listeners,), daemon=True)
            for f in (self._pump, self._pump_err)
        ]
        for thread in self.pumps:
            thread.start()

    def _pump(self, listeners: int) -> None:
        assert self.proc.stdout is not None
        seen = 0
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith(LISTENING):
                seen += 1
                if seen >= listeners:
                    self.bound = True
                    self.listening.set()
        self.listening.set()  # exited: wake the waiter, who looks at the exit code

    def _pump_err(self, _listeners: int) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            if line.strip():
                self.last_err = line.strip()

    def gave_up(self) -> bool:
        """It exited before it listened (it could not serve this cassette)."""
        return self.listening.is_set() and not self.bound

    def wait_listening(self, deadline: float | None) -> bool:
        """True once every listener is bound (however long opening the cassette takes); False
        when --timeout passed first; UsageError when the fake broker exited instead."""
        started = time.monotonic()
        while not self.listening.wait(_until(deadline, NOTE_EVERY)):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            _say(f"the fake broker is not listening yet ({time.monotonic() - started:.0f} s)")
        if not self.bound:  # it exited instead
            self.proc.wait()
            for thread in self.pumps:
                thread.join(5)
            said = "".join(self.lines).strip() or self.last_err.removeprefix("rrlab serve: ")
            raise UsageError(
                f"the fake broker did not start: {said or f'exit {self.proc.returncode}'}"
            )
        return True

    def stop(self, deadline: float | None) -> tuple[int, str | None]:
        """SIGTERM, then wait as long as the fake broker needs to write its report: without
        --timeout no limit (a line every NOTE_EVERY s says why we wait); with it, until it has
        passed and STOP_AFTER_TIMEOUT more. SIGTERM/SIGINT to replay meanwhile kills it.
        (exit code, why it was killed or None)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        limit = None if deadline is None else max(deadline, started + STOP_AFTER_TIMEOUT)
        interrupted: list[int] = []
        old = {
            s: signal.signal(s, lambda signum, _f: interrupted.append(signum))
            for s in (signal.SIGTERM, signal.SIGINT)
        }
        killed = None
        try:
            next_note = started + NOTE_EVERY
            while (code := _wait(self.proc, POLL)) is None:
                now = time.monotonic()
                if interrupted:
                    name = signal.Signals(interrupted[0]).name
                    killed = f"replay got {name} while it was writing its report"
                elif limit is not None and now >= limit:
                    killed = f"--timeout passed; killed {now - started:.0f} s after SIGTERM"
                elif now >= next_note:
                    next_note += NOTE_EVERY
                    _say(f"waiting for the fake broker to write its report ({now - started:.0f} s)")
                    continue
                else:
                    continue
                self.proc.kill()
                code = self.proc.wait()
                break
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
        for thread in self.pumps:  # every miss line is out before the verdict is printed
            thread.join(5)
        return code, killed


class Interrupted(Exception):
    """SIGTERM/SIGINT while waiting for the fake broker to listen: stop it, judge nothing."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _until_signalled(wait: Callable[[float | None], bool], deadline: float | None) -> bool:
    """`wait(deadline)`, with SIGTERM/SIGINT raising Interrupted (the caller's `finally` then
    stops the fake broker instead of leaving it behind, listening)."""

    def interrupt(signum: int, _frame: Any) -> None:
        raise Interrupted(signum)

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return wait(deadline)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


class _MissWatch:
    """The fake broker's --miss-log: one JSON line per miss, written the moment it happens."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._first: float | None = None

    def first_at(self) -> float | None:
        """When replay first saw a miss logged (monotonic), or None."""
        if self._first is None:
            try:
                logged = self.path.stat().st_size > 0
            except FileNotFoundError:
                logged = False
            if logged:
                self._first = time.monotonic()
        return self._first


def _start_command(
    cmd: list[str], env: dict[str, str], aside: ArtifactsAside, cwd: Path | None = None
) -> subprocess.Popen:
    """CMD in a process group of its own (so that ending it ends its children too), started
    only once earlier copies of its artifacts are out of the way."""
    try:
        aside.move()
    except StaleArtifactError as exc:
        raise UsageError(str(exc)) from None
    try:
        return subprocess.Popen(list(cmd), env=env, process_group=0, cwd=cwd)
    except OSError as exc:
        aside.restore()
        raise UsageError(f"cannot run {cmd[0]!r}: {exc.strerror}") from None


def _supervise(
    command: subprocess.Popen,
    misses: _MissWatch,
    grace: float,
    deadline: float | None,
    broker_gave_up: Callable[[], bool],
) -> tuple[int, str | None]:
    """Wait for CMD; end its process group `grace` s after the first miss, at the deadline, or
    when the fake broker exited without serving. SIGTERM/SIGINT sent to replay go to the whole
    group. (exit code, what ended it or None)."""

    def forward(signum: int, _frame: Any) -> None:
        _signal_group(command, signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    ended_by = None
    try:
        while (code := _wait(command, POLL)) is None:
            first_miss = misses.first_at()
            if first_miss is not None and time.monotonic() >= first_miss + grace:
                ended_by = "miss_grace"
            elif deadline is not None and time.monotonic() >= deadline:
                ended_by = "timeout"
            elif broker_gave_up():
                ended_by = "no_broker"
            else:
                continue
            code = _end_group(command)
            break
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return (128 - code if code < 0 else code), ended_by


def _end_group(command: subprocess.Popen) -> int:
    _signal_group(command, signal.SIGTERM)
    _wait(command, TERM_GRACE)
    _signal_group(command, signal.SIGKILL)  # whatever of the group is still there
    return command.wait()


def _signal_group(command: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(command.pid, signum)
    except ProcessLookupError:
        pass


def _wait(proc: subprocess.Popen[Any] | ForkedChild, seconds: float) -> int | None:
    """Its exit code once it exits within `seconds`, else None. Woken by the exit itself (a
    pidfd, Linux) rather than Popen.wait's polling, which notices an exit up to 50 ms late:
    time added to every replay."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux (>= 5.3), or gone meanwhile
        pidfd = None
    if pidfd is not None:
        try:
            select.select([pidfd], [], [], seconds)
        finally:
            os.close(pidfd)
        return proc.poll()
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


def _until(deadline: float | None, at_most: float) -> float:
    """Seconds to wait: `at_most`, or less if the deadline comes first."""
    if deadline is None:
        return at_most
    return max(0.0, min(at_most, deadline - time.monotonic()))


def _say(text: str) -> None:
    print(f"rrlab replay: {text}", file=sys.stderr, flush=True)


# --- checking ----------------------------------------------------------------------------------


def _check(
    recording: Recording, name: str, *, timing: bool, earlier: Path | None = None, at: Path = Path()
) -> Checked:
    try:
        recorded = recording.artifact(name)  # inside the cassette, its digest checked now
    except CassetteError as exc:
        raise UsageError(str(exc)) from None
    rec_sha = hashlib.sha256(recorded).hexdigest()
    live_path = at / name
    if not live_path.is_file():
        kept = f" (the earlier copy is kept at {earlier})" if earlier is not None else ""
        line = f"{name}: not written by this run{kept}"
        return Checked(name, rec_sha, None, "missing", [line], str(earlier) if earlier else None)
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


def _client_frames(recording: Recording) -> int:
    return sum(conn.info.frames.get("c2s", 0) for conn in recording.conns)


def _verdict(
    served: Served, checked: list[Checked], client_frames: int, args: argparse.Namespace
) -> tuple[str, str]:
    """The first failing check names the verdict; the reason lists every one that failed."""
    found: list[tuple[str, str]] = []
    fake = served.report.get("verdict")
    never_sent = int(served.report.get("never_sent") or 0)
    live_missed = served.report.get("totals", {}).get("missed", 0)
    if live_missed or ((fake == "miss" or served.missed) and not never_sent):
        why = "the command sent frames the recording cannot answer"
        if served.ended_by == "miss_grace":
            why += f"; ended {args.miss_grace:g} s after the first miss (--miss-grace)"
        found.append(("miss", why))
    if served.ended_by == "timeout":
        if served.command_exit is None:
            why = f"the fake broker was not listening within --timeout {args.timeout:g} s"
        else:
            why = f"the run reached --timeout {args.timeout:g} s; the command was ended"
        found.append(("timeout", why))
    if not served.report and served.serve_killed is None and served.command_exit is not None:
        found.append(("error", f"the fake broker exited {served.serve_exit} without a report"))
    if served.command_exit not in (0, None) and served.ended_by is None:
        found.append(("command_failed", f"the command exited {served.command_exit}"))
    if served.serve_killed is not None:
        why = f"{served.serve_killed}; the command exited {served.command_exit}"
        found.append(("unfinished", f"the fake broker did not finish its report ({why})"))
    matched = served.report.get("totals", {}).get("matched", 0)
    if served.report and client_frames and not matched:
        why = f"the command matched none of the {client_frames} recorded client frames"
        found.append(("nothing_matched", why + ": did it reach the fake broker?"))
    if fake == "not_accepted":
        n = served.report.get("connections", {}).get("not_accepted", 0)
        why = f"the fake broker could not accept {n} connections (too many open files)"
        found.append(("not_accepted", why))
    if never_sent:  # after the causes it may follow from (timeout, no connection, ...)
        why = f"the command never sent {never_sent} recorded behaviour frames (publish, ack, ...)"
        found.append(("miss", why))
    if fake == "unused":
        found.append(("unused", "recorded client frames were never sent (strict profile)"))
    missing = [c.name for c in checked if c.result == "missing"]
    if missing:
        found.append(("mismatch", f"not written by this run: {', '.join(missing)}"))
    differ = [c.name for c in checked if not c.ok and c.result != "missing"]
    if differ:
        found.append(("mismatch", f"artifacts differ from the recording: {', '.join(differ)}"))
    if not found:
        return "ok", f"{len(checked)} artifacts as recorded"
    return found[0][0], "; ".join(why for _verdict, why in found)


def _never_connected(recording: Recording, served: Served) -> str:
    """Where the fake broker listened, for a command that never connected (pointed elsewhere):
    the cassette's own addresses, moved where --port-offset moved them."""
    moves = served.report.get("ports", {})
    where = []
    for proto, port in recording.listeners():
        live = moves.get(str(port), port)
        moved = "" if live == port else f" (recorded {LISTEN_HOST}:{port})"
        where.append(f"{proto} {LISTEN_HOST}:{live}{moved}")
    return (
        f"it never connected: the fake broker listened on {', '.join(where)}, where the "
        "cassette expects the command to connect (the addresses it used when recorded)"
    )


def _report(args, recording, served, checked, verdict, why, asked, used) -> dict[str, Any]:
    fake = served.report
    return {
        "artifacts": {c.name: c.to_dict() for c in checked},
        "bindings": fake.get("bindings", []),
        "cassette": {
            "frames_sha256": recording.manifest.frames_sha256,
            "path": str(args.cassette),
        },
        "command": {
            "argv": list(args.cmd),
            "ended_by": served.ended_by,
            "exit": served.command_exit,
        },
        "fake_broker": {"exit": served.serve_exit, "killed": served.serve_killed},
        "format": "rrlab.rr-report/1",
        "frames": fake.get("totals", {}),
        "frames_by_api": fake.get("by_api", {}),
        "match": args.match,
        "misses": fake.get("misses", []),
        "notes": fake.get("notes", []),
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
    # imported here, not at start-up: only a run that writes --metrics pays for it
    from prometheus_client import CollectorRegistry, Counter, disable_created_metrics
    from prometheus_client.openmetrics.exposition import generate_latest

    disable_created_metrics()  # `_created` samples are clock values: stays comparable
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


#: bindings named on the terminal (the report lists them all)
MAX_BINDING_LINES = 10


def _closing(verdict, why, served, checked, used) -> str:
    t = served.report.get("totals")
    frames = (
        f"{t.get('matched', 0)} matched, {t.get('synthesized', 0)} synthesized, "
        f"{t.get('missed', 0)} missed, {t.get('unused', 0)} unused"
        if t is not None
        else "not counted (no report from the fake broker)"
    )
    weaker = "" if used is sandbox.Sandbox.NETNS else " (weaker than a network namespace)"
    return (
        f"rrlab replay: {verdict.upper()} ({why}); frames: {frames}; sandbox {used.value}{weaker}"
    )
