"""Who holds a TCP port: for messages that name a foreign process instead of saying `down`."""

from __future__ import annotations

import os
from pathlib import Path


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, st, inode = fields[1], fields[3], fields[9]
            if st == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    return inodes


def port_holder(port: int) -> str | None:
    """ "pid N (command)" of a process listening on `port`, or None when none can be seen
    (nobody listens, or /proc does not show it to us)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        if wanted.isdisjoint(_fd_targets(pid)):
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
        except OSError:
            continue
        text = cmd.decode(errors="replace")
        return f"pid {pid} ({text[:80] + '...' if len(text) > 80 else text})"
    return "another process (pid not visible)"


def _fd_targets(pid: str) -> set[str]:
    """What a process's open fds point to; an fd closed while we look is skipped, not the
    whole process (a threaded holder opens and closes others all the time)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    targets = set()
    for fd in fds:
        try:
            targets.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return targets
