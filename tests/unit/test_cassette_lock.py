"""One writer per cassette (issue J.5): `rrlab record`, `rrlab proxy` and `verify --repair` take
an flock on `.NAME.lock` beside the cassette; a second writer exits 2 naming the holder's pid.

Today two `rrlab record --mode rewrite` into one cassette both exit 0 and the last silently
wins. The proxy is real here (a free port, an upstream nothing listens on: the commands open no
connection), as in test_record_cli.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rrlab.rr.cassette import CassetteLocked, CassetteWriter, WriterLock, verify
from rrlab.rr.cassette.lock import lock_path

HOLD = (
    "import sys\n"
    "from rr.cassette.lock import WriterLock\n"
    "lock = WriterLock.acquire(sys.argv[1])\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _route() -> list[str]:
    upstream = f"127.0.0.1:{_free_port()}"
    return ["--mqtt", f"{_free_port()}={upstream}", "--allow-upstream", upstream]


def _holder(cassette: Path) -> subprocess.Popen:
    """Another process holding the cassette's writer lock until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(cassette)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def _rrlab(cwd: Path, *argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rrlab", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_concurrent_records_the_second_exits_2_naming_the_first(tmp_path):
    """The first `rrlab record --mode rewrite` runs a command that waits for a go file; the
    second, started meanwhile, is refused at once and names the first's pid."""
    started, go = tmp_path / "started", tmp_path / "go"
    wait = (
        "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch()\n"
        "while not pathlib.Path(sys.argv[2]).exists(): time.sleep(0.05)\n"
        "pathlib.Path('out').mkdir(exist_ok=True); pathlib.Path('out/a').write_text('first')\n"
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "rrlab", "record", *_route(), "--cassette", "cassettes/c",
         "--mode", "rewrite", "--artifact", "out/a", "--",
         sys.executable, "-c", wait, str(started), str(go)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for(started)
        second = _rrlab(
            tmp_path, "record", *_route(), "--cassette", "cassettes/c", "--mode", "rewrite",
            "--artifact", "out/a", "--", sys.executable, "-c",
            "import pathlib; pathlib.Path('out').mkdir(exist_ok=True); "
            "pathlib.Path('out/a').write_text('second')",
        )  # fmt: skip
        assert second.returncode == 2, second.stderr
        assert f"another writer holds this cassette: pid {first.pid} (rrlab record" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        go.touch()
        _out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    assert (tmp_path / "cassettes" / "c" / "artifacts" / "out" / "a").read_text() == "first"
    assert sorted(p.name for p in (tmp_path / "cassettes").iterdir()) == ["c"]  # lock removed


def test_proxy_and_repair_refuse_a_held_cassette_naming_the_pid(tmp_path):
    cassette = tmp_path / "cassettes" / "c"
    cassette.mkdir(parents=True)
    holder = _holder(cassette)
    try:
        proxy = _rrlab(tmp_path, "proxy", *_route(), "--cassette", "cassettes/c")
        assert proxy.returncode == 2, proxy.stderr
        assert f"another writer holds this cassette: pid {holder.pid}" in proxy.stderr
        repair = _rrlab(tmp_path, "verify", "--repair", "cassettes/c")
        assert repair.returncode == 2, repair.stderr
        assert f"pid {holder.pid}" in repair.stderr
        with pytest.raises(CassetteLocked) as err:
            CassetteWriter.create(cassette, mode="rewrite")
        assert err.value.pid == holder.pid
    finally:
        holder.communicate("")
    assert list(cassette.iterdir()) == []  # refused writers wrote nothing


def test_a_stale_lock_of_a_dead_process_does_not_block(tmp_path):
    """kill -9 leaves `.c.lock` with a dead pid in it: the kernel released the flock, so the
    next writer takes it (and says nothing about the old pid)."""
    cassette = tmp_path / "cassettes" / "c"
    holder = _holder(cassette)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock_path(cassette).read_text() == f"{holder.pid}\n"  # left behind
    proc = _rrlab(
        tmp_path, "record", *_route(), "--cassette", "cassettes/c", "--", sys.executable, "-c", ""
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((cassette / "cassette.json").read_bytes())["finalized"] is True
    assert not lock_path(cassette).exists()


def test_lock_lives_beside_the_cassette_so_a_rewrite_swap_keeps_it(tmp_path):
    cassette = tmp_path / "c"
    assert lock_path(cassette) == tmp_path / ".c.lock"
    assert lock_path(tmp_path / "sub" / ".." / "c") == tmp_path / ".c.lock"
    with WriterLock.acquire(cassette):
        (tmp_path / ".c.recording-1").mkdir()  # what record --mode rewrite swaps in
        os.rename(tmp_path / ".c.recording-1", cassette)
        with pytest.raises(CassetteLocked, match=f"pid {os.getpid()}"):
            WriterLock.acquire(cassette)
    WriterLock.acquire(cassette).release()  # released: free again, file gone
    assert not lock_path(cassette).exists()


def test_writer_holds_the_lock_until_finalize(tmp_path):
    w = CassetteWriter.create(tmp_path / "c")
    with pytest.raises(CassetteLocked):
        verify(tmp_path / "c", repair=True)
    w.finalize()
    assert not lock_path(tmp_path / "c").exists()
    assert verify(tmp_path / "c", repair=True).frames == 0
    CassetteWriter.create(tmp_path / "c", mode="rewrite").finalize()


def test_a_planted_lock_symlink_is_refused_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / ".c.lock").symlink_to(victim)
    with pytest.raises(Exception, match="is a symlink"):
        WriterLock.acquire(tmp_path / "c")
    assert victim.read_text() == "keep"
