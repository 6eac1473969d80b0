"""replayer.forked: a forked child behaves as the exec'd `rrlab serve` it replaces, as far as
`rrlab replay` can tell (pipes, exit codes, signals, a traceback on stderr)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from rrlab.replayer.forked import ForkedChild


def test_output_goes_to_the_pipes_and_the_exit_code_comes_back():
    def main() -> int:
        print("listening", flush=True)
        print("a warning", file=sys.stderr)
        return 3

    child = ForkedChild(main)
    assert child.stdout.read() == "listening\n"
    assert child.stderr.read() == "a warning\n"
    assert child.wait(10) == 3 and child.returncode == 3 and child.poll() == 3


def test_sys_exit_and_an_exception_end_the_child_never_the_parent():
    assert ForkedChild(lambda: sys.exit(2)).wait(10) == 2
    child = ForkedChild(lambda: 1 // 0)
    assert "ZeroDivisionError" in child.stderr.read()
    assert child.wait(10) == 1


def test_wait_times_out_and_a_signal_ends_it():
    child = ForkedChild(lambda: time.sleep(60) or 0)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.05)
    assert child.poll() is None
    child.send_signal(signal.SIGTERM)
    assert child.wait(10) == -signal.SIGTERM
    child.kill()  # reaped already: no signal to a pid that may be reused
