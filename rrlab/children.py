"""Our own child processes (a recording proxy, a fake broker) stopped one way: SIGTERM so the
child finalizes its cassette or report, then a bounded wait, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess


def terminate(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float) -> int:
    """SIGTERM `proc` if it still runs and wait up to `timeout` seconds for it to finish what it
    writes on the way out; kill it after that. Its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
