"""replayer.sandbox.enter_netns: a replay enters its network namespace in place (no second
interpreter), as root directly and as any other user inside a user namespace of its own (what
`unshare -rn` does). Each case runs in a fresh process: the move cannot be undone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, os, socket
from rrlab.replayer import sandbox
entered = sandbox.enter_netns()
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    s.listen()
print(json.dumps({"entered": entered, "interfaces": sandbox.interfaces(), "euid": os.geteuid()}))
"""


@pytest.mark.parametrize("user", ["self", "nobody"])
def test_the_namespace_is_entered_in_place(user):
    prefix: list[str] = []
    if user == "nobody" and os.geteuid() == 0:  # (not root: "self" is unprivileged already)
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed: apt-get install util-linux"
        prefix = [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    done = subprocess.run(
        [*prefix, sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"entered": True, "interfaces": ["lo"], "euid": 0}, seen
