"""Spawn, track and stop broker processes we started ourselves.

Each process runs in its own session (process group == pid), so stopping it also stops the
children it forked (RabbitMQ's erl_child_setup, a JVM's helpers). We remember the pid together
with its kernel start time, so a recycled pid is never mistaken for our broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

#: Seconds between SIGTERM and SIGKILL.
GRACE_S = 10.0


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """Kernel start time (clock ticks since boot) of a live pid; None when gone or a zombie."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(pid: int, started: int | None = None) -> bool:
    """True when pid runs and (if given) is the same process that started at `started`."""
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def _live_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) of every live, non-zombie process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[0] not in ("Z", "X"):
                table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def family(pid: int) -> list[int]:
    """pid's process group plus all descendants of its members (some, like Erlang's
    erl_child_setup, start a session of their own and would outlive a group kill)."""
    table = _live_table()
    found = {p for p, (_, group) in table.items() if group == pid}
    grew = True
    while grew:
        kids = {p for p, (parent, _) in table.items() if parent in found} - found
        found |= kids
        grew = bool(kids)
    return sorted(found)


def spawn(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict[str, int]:
    """Start argv detached in a new session, stdout+stderr appended to log_path.

    Returns {"pid": ..., "start": ...}, the record `stop` and `alive` take.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    # Let the Popen object go without a "still running" warning: we track the pid ourselves.
    proc.returncode = 0
    return {"pid": proc.pid, "start": start_time(proc.pid) or 0}


def _reap(pid: int) -> None:
    """Collect a child of ours that exited, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(record: dict[str, int], grace_s: float = GRACE_S) -> bool:
    """SIGTERM the process group of a process we spawned, SIGKILL after grace_s.

    Returns True when something was running. Does nothing if the pid now belongs to another
    process (start time differs).
    """
    pid, started = record["pid"], record.get("start")
    if alive(pid) and not alive(pid, started):
        return False  # pid recycled by someone else's process: not ours to stop
    members = family(pid)
    if not members:
        _reap(pid)
        return False
    # SIGTERM to the group only (a graceful stop; RabbitMQ's erl_child_setup must not be
    # killed before beam), SIGKILL to whatever of the family is left after the grace period.
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        targets = [pid] if sig == signal.SIGTERM else members
        for target in targets:
            try:
                (os.killpg if sig == signal.SIGTERM else os.kill)(target, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            _reap(pid)
            members = [m for m in members if alive(m)]
            if not members:
                return True
            time.sleep(0.05)
    _reap(pid)
    return True
