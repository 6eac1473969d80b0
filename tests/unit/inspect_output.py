"""`rrlab inspect` run as a user runs it, for the tests that read its output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def inspect_output(cassette: Path, *flags: str) -> str:
    """What `rrlab inspect CASSETTE FLAGS...` prints (it must exit 0)."""
    done = subprocess.run(
        [sys.executable, "-m", "rrlab", "inspect", str(cassette), *flags],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
