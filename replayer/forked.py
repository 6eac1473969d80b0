"""A child process made by fork, without exec: `rrlab replay` runs its fake broker this way.

An exec'd `python -m rrlab serve` started a new interpreter and imported again everything the
replay had just imported (the core, every protocol, the cassette reader): about a second on this
machine, on the critical path of every replay. A forked child starts with all of it loaded and
only imports what serving adds (Twisted's reactor). The parent must fork while it runs a single
thread (replay does: its pump threads start after the fork).

`ForkedChild` offers the part of `subprocess.Popen` that replay uses: `pid`, text `stdout` and
`stderr` pipes, `poll`, `wait`, `send_signal`, `kill`, `returncode`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO

from rrlab.rr.usage import EXIT_USAGE, UsageError


class ForkedChild:
    """`main()` run in a forked child whose stdin is /dev/null and whose stdout and stderr are
    pipes to us; the child ends with `os._exit(main())` and never returns into our code."""

    def __init__(self, main: Callable[[], int], *, text: bool = True, merged: bool = False) -> None:
        """`text`: str pipes (else bytes); `merged`: its stderr goes into its stdout pipe (as
        Popen's stderr=STDOUT), and `stderr` is None."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe() if not merged else (-1, os.dup(out_w))
        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            stream.flush()
        pid = os.fork()
        if pid == 0:  # the child
            _run_child(main, out_r, out_w, err_r, err_w)
        os.close(out_w)
        os.close(err_w)
        self.pid = pid
        self.returncode: int | None = None
        self.args = ["<forked>"]
        self.stdout: IO = _reader(out_r, text)
        self.stderr: IO | None = None if merged else _reader(err_r, text)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (negative: the signal that ended it); TimeoutExpired as Popen's."""
        if timeout is None:
            while self.returncode is None:
                _pid, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while (code := self.poll()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(min(delay, left, 0.05))
            delay *= 2
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # never a pid that was reaped (and maybe reused)
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def run_subcommand(
    register: Callable[[argparse._SubParsersAction], None], name: str, argv: list[str]
) -> int:
    """`rrlab NAME ARGV...` as a function, with the command's usage errors and exit codes (what
    rrlab.cli.main does for it): the body of a forked `rrlab serve`, `replay` or `verify`."""
    parser = argparse.ArgumentParser(prog="rrlab")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([name, *argv])
    args.argv = [name, *argv]
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"rrlab {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _reader(fd: int, text: bool) -> IO:
    if text:
        return open(fd, encoding="utf-8", errors="replace")  # noqa: SIM115
    return open(fd, "rb")  # noqa: SIM115


def _rebind_std_streams() -> None:
    """sys.stdin/stdout/stderr on fds 0-2 (now /dev/null and the pipes), as a new interpreter
    would have them: the parent's may be objects of its own (a test runner's capture)."""
    encoding = getattr(sys.__stdout__, "encoding", None) or "utf-8"
    sys.stdin = open(0, encoding=encoding, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding=encoding, closefd=False)  # noqa: SIM115
    sys.stderr = open(  # noqa: SIM115
        2, "w", buffering=1, encoding=encoding, errors="backslashreplace", closefd=False
    )


def _run_child(main: Callable[[], int], out_r: int, out_w: int, err_r: int, err_w: int) -> None:
    code = 1
    try:
        os.close(out_r)
        if err_r >= 0:
            os.close(err_r)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (null, out_w, err_w):
            os.close(fd)
        _rebind_std_streams()
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # a traceback on its stderr, as an exec'd child would print it
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
