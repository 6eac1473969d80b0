"""No network during replay, enforced: a fresh network namespace, or a guard in the interpreter.

- `netns`: the replay (fake broker and CMD) runs in a new network namespace whose only
  interface is `lo`: entered in place as root (`enter_netns`), else by re-executing the replay
  under `unshare -rn` (user namespaces). Nothing can leave the machine, whatever language CMD
  is written in.
- `guard`: where namespaces are unavailable, a `sitecustomize` put first on CMD's PYTHONPATH
  installs an audit hook that refuses any connect to a non-loopback address. It binds Python
  processes only; the report says this weaker guard was used.
- `off`: nothing (a usage choice, reported as such).
- `auto`: netns when a namespace can be made here, else guard.
"""

from __future__ import annotations

import enum
import fcntl
import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path

#: set in the environment of a replay re-executed inside its namespace
INSIDE_ENV = "RRLAB_REPLAY_SANDBOX"
GUARD_DIR = Path(__file__).resolve().parent / "guard"


class Sandbox(enum.StrEnum):
    AUTO = "auto"
    NETNS = "netns"
    GUARD = "guard"
    OFF = "off"


class SandboxError(Exception):
    """The asked-for sandbox cannot be set up here (a usage/policy error: exit 2)."""


def netns_available() -> str | None:
    """None when `unshare -n` works here, else why not."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare (util-linux) is not installed"
    try:
        probe = subprocess.run([unshare, "-n", "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if probe.returncode == 0:
        return None
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, text=True, timeout=10)
    if probe.returncode == 0:
        return None
    return probe.stderr.strip() or f"unshare exited {probe.returncode}"


def resolve(asked: Sandbox) -> Sandbox:
    if asked is Sandbox.AUTO:
        return Sandbox.NETNS if netns_available() is None else Sandbox.GUARD
    if asked is Sandbox.NETNS:
        why = netns_available()
        if why is not None:
            raise SandboxError(
                f"--sandbox netns: no network namespace can be made here ({why}); "
                "use --sandbox guard (Python processes only) or --sandbox auto"
            )
    return asked


def unshare_argv() -> list[str]:
    """The prefix that runs a command in a new network namespace (root: -n; else -rn)."""
    unshare = shutil.which("unshare") or "unshare"
    flag = "-n" if os.geteuid() == 0 else "-rn"
    return [unshare, flag, "--"]


_CLONE_NEWNET, _CLONE_NEWUSER = 0x40000000, 0x10000000


def enter_netns() -> bool:
    """Move this process, in place, into a new network namespace whose only interface is `lo`
    (brought up): what it starts from now on starts there too. As root directly; otherwise
    inside a new user namespace where we are root (what `unshare -rn` does). The process must
    run a single thread (a namespace is per thread). False where it cannot be done: then the
    replay is re-executed under `unshare`, which costs a new interpreter and its imports."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        uid, gid = os.geteuid(), os.getegid()
        if uid == 0 or libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
            return False
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"0 {uid} 1"),
            ("gid_map", f"0 {gid} 1"),
        ):
            with open(f"/proc/self/{name}", "w") as out:
                out.write(text)
    loopback_up()
    return True


_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """Bring `lo` up in a fresh namespace (it starts down), without needing `ip`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def interfaces() -> list[str]:
    return sorted(name for _index, name in socket.if_nameindex())


def guard_env(env: dict[str, str]) -> dict[str, str]:
    """CMD's environment with the loopback-only guard first on PYTHONPATH."""
    out = dict(env)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(GUARD_DIR), env.get("PYTHONPATH")) if p)
    out["RRLAB_NETWORK_GUARD"] = "loopback-only"
    return out
