"""`rrlab record`: run a command with the recording proxy in its path, keep the cassette only if
the command succeeded, and store the files it produced (its artifacts) in the cassette.

Why a subprocess proxy: `rrlab proxy` already checks routes and policy, finalizes on SIGTERM and
keeps its logs out of the cassette; record only sequences it. Why a temporary directory next to
the cassette: a failed or interrupted run must never leave a half-recorded cassette where a good
one was (`rewrite`), nor a cassette of a failed run that `once` would then refuse to replace.
The swap is two renames in one directory; the old cassette is removed only once the new one is
in place. Why artifacts are moved aside before CMD runs (rr.stale_artifacts): a file an earlier
run left at an --artifact path would otherwise be stored as this run's output. Why the command
is stored (rr.cassette.stored_command): `rrlab replay --cassette DIR` with no command, and
`replay --all`, run it again from the same directory relative to the cassette, --prepare first.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from rrlab.children import terminate
from rrlab.options import (
    PROTOS,
    add_allow_upstream,
    add_command_argv,
    add_paths,
    add_recording,
    add_write_root,
)
from rrlab.rr.cassette import CassetteError, WriterLock, verify
from rrlab.rr.cassette.artifacts import add_artifacts, store_command
from rrlab.rr.cassette.stored_command import StoredCommand, capture
from rrlab.rr.cassette.writer import existing_state
from rrlab.rr.cassette_changes import cassette_outline, changes
from rrlab.rr.policy import (
    PolicyError,
    check_writable,
    get_profile,
    parse_compact_over,
    project_compact_over,
)
from rrlab.rr.stale_artifacts import ArtifactsAside, StaleArtifactError
from rrlab.rr.usage import EXIT_USAGE, UsageError

from .cli import parse_hostport, parse_route
from .record_runs_cli import add_runs, with_runs

LISTENING = "rrlab proxy: listening "
START_TIMEOUT = 60.0  # seconds for the proxy to bind every route
STOP_TIMEOUT = 60.0  # seconds for the proxy to finalize after SIGTERM


class Interrupted(Exception):
    """SIGTERM/SIGINT while recording: stop everything, publish nothing, exit 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "record",
        help="run CMD through the recording proxy; keep the cassette and artifacts if it succeeds",
        description="Start the recording proxy on the routes, run CMD (after --), stop the proxy "
        "and store each --artifact file in the cassette. The cassette is published only when "
        "CMD exits 0; the exit code is CMD's.",
    )
    add_recording(p, rewrite="replace it if CMD succeeds")
    add_paths(
        p,
        "--artifact",
        "a file CMD writes (relative path, e.g. out/aggregate.json), stored under that name",
    )
    p.add_argument("--log-file", metavar="PATH", help="the proxy's JSON-lines log file")
    p.add_argument(
        "--prepare",
        metavar="CMDLINE",
        help="a command (one shell-quoted string) that fetches or builds what CMD needs, e.g. "
        "'tools/fetch-jars.sh': run first, outside the recording, and stored in the cassette "
        "so that `rrlab replay --all` runs it (with the network) before the offline replays",
    )
    add_allow_upstream(p)
    add_write_root(p)
    add_runs(p)
    add_command_argv(p, "record")
    p.set_defaults(func=with_runs(run))


def _artifact_key(path: str) -> str:
    """The name an artifact is stored under: the relative path as given, normalized."""
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or rel.as_posix() == ".":
        raise UsageError(
            f"--artifact {path!r}: give a relative path without '..', as CMD writes it"
        )
    return rel.as_posix()


def _prepare_argv(text: str | None) -> list[str]:
    try:
        argv = shlex.split(text or "")
    except ValueError as exc:
        raise UsageError(f"--prepare {text!r}: {exc} (give one shell-quoted command)") from None
    if text is not None and not argv:
        raise UsageError("--prepare '': give the command to run, or leave the option out")
    if argv and shutil.which(argv[0]) is None:
        raise UsageError(f"--prepare: cannot run {argv[0]!r}: not found or not executable")
    return argv


def _check_args(args: argparse.Namespace) -> tuple[Path, dict[str, str], list[str]]:
    """Everything decidable before a process starts: (cassette, artifact keys, proxy argv)."""
    if not args.cmd:
        raise UsageError("no command given: rrlab record [options] --cassette DIR -- CMD ...")
    if shutil.which(args.cmd[0]) is None:
        raise UsageError(f"cannot run {args.cmd[0]!r}: not found or not executable")
    args.prepare_argv = _prepare_argv(args.prepare)
    routes = [(proto, text) for proto in PROTOS for text in getattr(args, proto)]
    if not routes:
        raise UsageError(
            "no route given; add at least one of --kafka/--amqp/--mqtt LISTEN=UPSTREAM"
        )
    for proto, text in routes:
        parse_route(proto, text)  # syntax; policy (allow-list, loopback) is the proxy's check
    for extra in args.allow_upstream:
        parse_hostport(extra, "--allow-upstream")
    try:
        policy = get_profile(args.profile)
        policy = policy.with_write_roots(args.write_root)
        parse_compact_over(args.compact_over)  # a typo is a usage error now, not the proxy's
        project_compact_over(None)  # so is one in the project's rrlab.toml
        cassette = policy.check_write_path(args.cassette)
        check_writable(args.cassette, "--cassette", directory=True)
        if args.log_file:
            check_writable(args.log_file, "--log-file", parents=False)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    artifacts = {_artifact_key(path): path for path in args.artifact}
    proxy_argv = [sys.executable, "-m", "rrlab", "proxy", "--profile", args.profile]
    proxy_argv += [arg for proto, text in routes for arg in (f"--{proto}", text)]
    proxy_argv += [arg for up in args.allow_upstream for arg in ("--allow-upstream", up)]
    proxy_argv += [arg for root in args.write_root for arg in ("--write-root", root)]
    if args.log_file:
        proxy_argv += ["--log-file", args.log_file]
    if args.compact_over is not None:
        proxy_argv += ["--compact-over", args.compact_over]
    return cassette, artifacts, proxy_argv + ["--mode", "once"]


#: a warning, error or critical line of the proxy's human log (rrlab.console)
PROXY_WARNING = re.compile(r"\d\d:\d\d:\d\d (\x1b\[[\d;]*m)?(WARN|ERROR|CRIT)\b")
#: the proxy's line for a cassette it could not write (proxy.app: disk full, I/O error, ...)
WRITE_FAILED = re.compile(
    r"cassette_write_failed: .*?cannot write [^:]+: (?P<words>[^(]+?) \((?P<errno>E\w+)"
)


class _Proxy:
    """`rrlab proxy` as a child: its stdout lines and its warnings go to our stderr (the
    command owns stdout); the rest of its stderr is kept for a start-up failure's message."""

    def __init__(self, argv: list[str], routes: int) -> None:
        self.routes = routes
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.listening = 0
        self.ready = threading.Event()
        self.errors: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self._errors_pump = threading.Thread(target=self._pump_errors, daemon=True)
        self._errors_pump.start()

    def _pump_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line)
            if PROXY_WARNING.match(line):
                sys.stderr.write(line)
                sys.stderr.flush()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            sys.stderr.write(line)
            sys.stderr.flush()
            if line.startswith(LISTENING):
                self.listening += 1
                if self.listening >= self.routes:
                    self.ready.set()
        self.ready.set()  # exited: wake the waiter, who checks returncode

    def wait_listening(self) -> None:
        """Return once every route is bound; UsageError with the proxy's words if it is not."""
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready.wait(0.1):
            if time.monotonic() > deadline:
                self.stop()
                raise UsageError(f"the proxy did not listen within {START_TIMEOUT:g} s")
        if self.listening < self.routes:
            self.proc.wait()
            raise UsageError(self._stderr() or f"the proxy exited with {self.proc.returncode}")

    def _stderr(self) -> str:
        self._errors_pump.join(5)  # the proxy has exited: its stderr ends
        lines = [ln.strip() for ln in self.errors if ln.strip() and not ln.startswith("{")]
        return "; ".join(ln.removeprefix("rrlab proxy: ") for ln in lines[-3:])

    def write_failure(self) -> str | None:
        """'disk full (ENOSPC)' when the proxy stopped because it could not write the cassette."""
        for line in reversed(self.errors):
            found = WRITE_FAILED.search(line)
            if found:
                return f"{found['words']} ({found['errno']})"
        return None

    def stop(self) -> int:
        """SIGTERM, then wait for the cassette to be finalized; the proxy's exit code."""
        code = terminate(self.proc, STOP_TIMEOUT)
        self._errors_pump.join(5)
        return code


def _run_command(command: Sequence[str], aside: ArtifactsAside) -> int:
    """CMD with our stdin/stdout/stderr, started once earlier copies of its artifacts are out
    of the way; a signal death maps to 128+N like a shell."""
    try:
        aside.move()
    except StaleArtifactError as exc:
        raise UsageError(str(exc)) from None
    try:
        proc = subprocess.Popen(list(command))
    except OSError as exc:
        aside.restore()
        raise UsageError(f"cannot run {command[0]!r}: {exc.strerror}") from None
    try:
        code = proc.wait()
    except Interrupted:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    return 128 - code if code < 0 else code


def _publish(tmp: Path, cassette: Path) -> None:
    """Put the new recording in place; an old one is removed only after the swap."""
    old = cassette.with_name(f".{cassette.name}.old-{os.getpid()}")
    if cassette.exists() and any(cassette.iterdir()):
        os.rename(cassette, old)
    elif cassette.exists():
        cassette.rmdir()
    os.rename(tmp, cassette)
    shutil.rmtree(old, ignore_errors=True)


def _outline(cassette: Path) -> list[str] | None:
    try:
        return cassette_outline(cassette)
    except CassetteError:
        return None  # an unreadable old cassette: nothing to compare with


def _say_changes(before: list[str], after: list[str]) -> None:
    """Re-recording: what changed, in frame summaries."""
    diff = changes(before, after)
    if not diff:
        _say("same frames as the previous recording (ids and timings aside)")
        return
    _say("changes against the previous recording (frame summaries):")
    for line in diff:
        print(f"  {line}", file=sys.stderr)


def _on_signal(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def _say(text: str) -> None:
    print(f"rrlab record: {text}", file=sys.stderr, flush=True)


def _run_prepare(argv: list[str]) -> None:
    """The --prepare step, before anything is recorded; UsageError when it fails."""
    _say(f"prepare: {shlex.join(argv)}")
    code = subprocess.run(argv, stdin=subprocess.DEVNULL).returncode
    if code != 0:
        raise UsageError(f"--prepare exited {code}: nothing recorded")


def run(args: argparse.Namespace) -> int:
    cassette, artifacts, proxy_argv = _check_args(args)
    try:
        lock = WriterLock.acquire(cassette)  # one writer per cassette, until we return (lock.py)
        state = existing_state(cassette)
    except CassetteError as exc:
        raise UsageError(str(exc)) from None
    if state is not None and args.mode == "once":
        raise UsageError(
            f"{args.cassette}: a {state} cassette exists and --mode once never overwrites it "
            "(left untouched; pass --mode rewrite to replace it)"
        )
    if args.prepare_argv:
        try:
            _run_prepare(args.prepare_argv)
        except UsageError:
            lock.release()
            raise
    command: StoredCommand = capture(args.cmd, os.getcwd(), cassette, args.prepare_argv)
    cassette.parent.mkdir(parents=True, exist_ok=True)
    tmp = cassette.with_name(f".{cassette.name}.recording-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    routes = sum(len(getattr(args, proto)) for proto in PROTOS)
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    published = False
    aside = ArtifactsAside({key: Path(path) for key, path in artifacts.items()})
    try:
        proxy = _Proxy([*proxy_argv, "--cassette", str(tmp)], routes)
        try:
            proxy.wait_listening()
            code = _run_command(args.cmd, aside)
        finally:
            proxy_code = proxy.stop()
        earlier = aside.settle()
        failure = proxy.write_failure()
        if failure is not None:  # the likely reason the command failed too
            _say(
                f"the proxy could not write the cassette: {failure}; {args.cassette} left "
                f"unchanged (nothing recorded; command exited {code}); the partial recording "
                f"{tmp.name} is discarded, nothing to repair: free space and record again"
            )
            return code or proxy_code or EXIT_USAGE
        if code != 0:
            _say(f"command exited {code}: {args.cassette} left unchanged (nothing recorded)")
            return code
        if proxy_code != 0:
            _say(f"the proxy exited {proxy_code}: recording incomplete, {args.cassette} unchanged")
            return proxy_code if proxy_code > 0 else EXIT_USAGE
        unwritten = [key for key in artifacts if not aside.written(key)]
        if unwritten:
            first = unwritten[0]
            kept = f" (the earlier copy is kept at {earlier[first]})" if first in earlier else ""
            raise UsageError(
                f"--artifact {artifacts[first]}: CMD exited 0 but did not write it in this "
                f"run{kept}; {args.cassette} left unchanged"
            )
        try:
            add_artifacts(tmp, artifacts)
        except FileNotFoundError as exc:  # removed between our look and the copy
            raise UsageError(
                f"--artifact {exc.filename}: CMD exited 0 but did not write it; "
                f"{args.cassette} left unchanged"
            ) from None
        store_command(tmp, command)
        report = verify(tmp)
        before = _outline(cassette) if state == "finalized" else None
        _publish(tmp, cassette)
        published = True
        _say(report.summary().replace(str(tmp), args.cassette))
        if before is not None:
            _say_changes(before, cassette_outline(cassette))
        return 0
    except Interrupted as exc:
        aside.restore()  # earlier copies back where CMD wrote nothing before it was stopped
        _say(f"interrupted ({exc}): {args.cassette} left unchanged")
        return 128 + exc.signum
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if not published:
            shutil.rmtree(tmp, ignore_errors=True)
        lock.release()
