"""The fake broker makes no outbound connection: proven by watching it, not by reading code.

1. A socket audit: `rrlab serve` runs under a Python audit hook that logs every connect,
   sendto and name lookup; a whole worker replay leaves the log empty.
2. A network namespace with only `lo`: serve and the worker run where no other interface
   exists (the worker sees only `lo`), and the replay still passes byte-identical.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

from .conftest import ROOT, assert_replays
from .scenarios import SCENARIOS

LIST_INTERFACES = "import socket; print('interfaces', sorted(n for _, n in socket.if_nameindex()))"
SCENARIO = next(s for s in SCENARIOS if s.name == "worker-kafka-tansu")


def test_serve_under_a_socket_audit_makes_no_outbound_call(tmp_path, monkeypatch):
    audit_log = tmp_path / "audit.log"
    audit_log.write_text("")
    from . import conftest

    wrapper = [sys.executable, str(ROOT / "tests/replay/audited_serve.py"), str(audit_log), "--"]
    monkeypatch.setattr(conftest, "RRLAB", wrapper)
    served = assert_replays(SCENARIO.path, SCENARIO.argv, SCENARIO.artifacts, tmp_path)
    assert served.report["totals"]["matched"] > 0
    assert audit_log.read_text() == "", "the fake broker reached for the network"


def test_replay_in_a_namespace_with_only_loopback(tmp_path):
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to prove replay works with no network"
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, text=True)
    assert probe.returncode == 0, (
        f"cannot create a network namespace here ({probe.stderr.strip()}): this proof cannot "
        "run on this machine"
    )
    script = textwrap.dedent(
        f"""
        set -e
        ip link set lo up 2>/dev/null || true
        {sys.executable} -c "{LIST_INTERFACES}"
        {sys.executable} -m pytest -q -p no:cacheprovider \\
          "{ROOT}/tests/replay/test_replay_kafka.py::test_produce_batches_split_differently_still_replay"
        """
    )
    proc = subprocess.run(
        [unshare, "-n", "bash", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "interfaces ['lo']" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout + proc.stderr
