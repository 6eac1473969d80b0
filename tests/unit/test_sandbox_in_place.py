"""replayer.sandbox.enter_netns: a replay enters its network namespace in place (no second
interpreter), as root directly and as any other user inside a user namespace of its own (what
`unshare -rn` does). Each case runs in a fresh process: the move cannot be undone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import ctypes, json, os, socket, sys
from rrlab.replayer import sandbox
if sys.argv[1:] == ["nobody"]:  # dropped here, after the imports: the checkout and its venv
    os.setgroups([])  # need not be readable by nobody (a CI clone in a private directory)
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE, as a process started as nobody
entered = sandbox.enter_netns()
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    s.listen()
print(json.dumps({"entered": entered, "interfaces": sandbox.interfaces(), "euid": os.geteuid()}))
"""


@pytest.mark.parametrize("user", ["self", "nobody"])
def test_the_namespace_is_entered_in_place(user):
    """As root, and as an unprivileged user (root drops to nobody; not root: "self" is
    unprivileged already)."""
    drop = ["nobody"] if user == "nobody" and os.geteuid() == 0 else []
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *drop], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"entered": True, "interfaces": ["lo"], "euid": 0}, seen
