"""What the worker says at a terminal against a real broker: a one-line success summary on
stdout (stderr empty), and a wrong password called a refused login, not an unreachable broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "AMQP_URL", "MQTT_URL")}


def _worker(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker", *argv], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=ENV)  # fmt: skip


@pytest.mark.live
def test_success_summary_and_refused_login(live_brokers, tmp_path):
    url = live_brokers("amqp")["amqp"]
    ok = _worker("--driver", "amqp", "--amqp-url", url, "--count", "7", "--topic", "rrlab.term",
                 "--timeout", "20", "--out", str(tmp_path / "ok"))  # fmt: skip
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    (line,) = ok.stdout.splitlines()
    assert line.startswith("rrlab-worker: ok: amqp at amqp://rrlab:***@127.0.0.1:5672/rrlab: ")
    assert "produced 7, consumed 7 in " in line and "rrlab-secret-pw" not in line

    wrong = url.replace("rrlab-secret-pw", "not-the-password")
    bad = _worker("--driver", "amqp", "--amqp-url", wrong, "--timeout", "20",
                  "--out", str(tmp_path / "bad"))  # fmt: skip
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert bad.stderr.startswith(
        "rrlab-worker: error: amqp broker at amqp://rrlab:***@127.0.0.1:5672/rrlab refused the "
        "login: "
    ), bad.stderr
    assert "cannot reach" not in bad.stderr and "not-the-password" not in bad.stderr
