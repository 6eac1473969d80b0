"""SIGTERM right after the proxy says "listening" must still finalize the cassette.

Supervisors (and `make demo`) wait for that line and may stop the proxy at once. The line is
printed only once the reactor runs, when its signal handlers are installed; before that fix a
SIGTERM there killed the process with a cassette that was never finalized (9 runs in 10).
Needs no broker: nothing connects.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from rrlab.rr.cassette import CassetteReader, verify

ROOT = Path(__file__).resolve().parents[2]
RRLAB = Path(sys.executable).parent / "rrlab"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_at_listening_finalizes(tmp_path):
    for i in range(5):
        cassette = tmp_path / f"c{i}"
        proc = subprocess.Popen(
            [str(RRLAB), "proxy", f"--mqtt={_free_port()}=127.0.0.1:1883"]
            + ["--cassette", str(cassette), "--write-root", str(tmp_path)]
            + ["--log-file", str(tmp_path / f"log{i}.jsonl")],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if " listening " in line:
                proc.send_signal(signal.SIGTERM)
                break
        assert proc.wait(timeout=30) == 0
        verify(cassette)  # raises unless finalized and intact
        manifest = CassetteReader.open(cassette).manifest
        assert manifest.finalized and [r["proto"] for r in manifest.routes] == ["mqtt"]
