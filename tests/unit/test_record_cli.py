"""`rrlab record`: once/rewrite, a failed command keeps the old cassette, artifacts are verified.

No broker is needed: the proxy is real (a subprocess on a free port, upstream a closed port) and
the recorded commands simply open no connection, so the cassettes hold zero frames.
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rrlab.rr.cassette import CassetteWriter, DigestMismatch, NotFinalized, verify
from rrlab.rr.cassette.artifacts import add_artifacts

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _record(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    """`rrlab record` in `cwd` (its write roots cassettes/ and out/ are there)."""
    upstream = f"127.0.0.1:{_free_port()}"  # nothing listens: the commands never connect
    route = ["--mqtt", f"{_free_port()}={upstream}", "--allow-upstream", upstream]
    return subprocess.run(
        [sys.executable, "-m", "rrlab", "record", *route, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _writes(path: str, text: str, code: int = 0) -> list[str]:
    """A command that writes `text` to `path`, prints a line, and exits `code`."""
    script = (
        "import pathlib, sys; p = pathlib.Path(sys.argv[1]); p.parent.mkdir(parents=True, "
        "exist_ok=True); p.write_text(sys.argv[2]); print('cmd-out'); sys.exit(int(sys.argv[3]))"
    )
    return [sys.executable, "-c", script, path, text, str(code)]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_records_artifact_under_its_relative_path(tmp_path):
    proc = _record(
        tmp_path, "--cassette", "cassettes/c", "--artifact", "out/k/aggregate.json",
        "--", *_writes("out/k/aggregate.json", '{"n":1}'),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "cmd-out\n"  # CMD's output passes through; ours is on stderr
    assert "rrlab proxy: listening mqtt" in proc.stderr
    cassette = tmp_path / "cassettes" / "c"
    manifest = json.loads((cassette / "cassette.json").read_bytes())
    digest = hashlib.sha256(b'{"n":1}').hexdigest()
    assert manifest["artifacts"] == {"out/k/aggregate.json": digest}
    assert (cassette / "artifacts" / "out" / "k" / "aggregate.json").read_bytes() == b'{"n":1}'
    assert verify(cassette).artifacts == 1
    assert [p.name for p in (tmp_path / "cassettes").iterdir()] == ["c"]  # no temp dir left


def test_compact_over_reaches_the_proxy_and_always_compacts(tmp_path):
    proc = _record(tmp_path, "--cassette", "cassettes/c", "--compact-over", "always", "--", "true")
    assert proc.returncode == 0, proc.stderr
    cassette = tmp_path / "cassettes" / "c"
    assert json.loads((cassette / "cassette.json").read_bytes())["format"] == "rrlab.cassette/4"
    assert (cassette / "frames.jsonl.gz").exists() and not (cassette / "frames.jsonl").exists()
    assert verify(cassette).frames == 0


def test_once_refuses_an_existing_cassette_untouched(tmp_path):
    first = _record(tmp_path, "--cassette", "cassettes/c", "--", *_writes("out/a", "1"))
    assert first.returncode == 0, first.stderr
    before = _snapshot(tmp_path / "cassettes")
    proc = _record(tmp_path, "--cassette", "cassettes/c", "--", *_writes("out/a", "2"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--mode once never overwrites it" in lines[0], proc.stderr
    assert proc.stdout == ""  # the command never ran
    assert (tmp_path / "out" / "a").read_text() == "1"
    assert _snapshot(tmp_path / "cassettes") == before


def test_rewrite_replaces_only_when_the_command_succeeds(tmp_path):
    args = ["--cassette", "cassettes/c", "--mode", "rewrite", "--artifact", "out/a", "--"]
    assert _record(tmp_path, *args, *_writes("out/a", "one")).returncode == 0
    before = _snapshot(tmp_path / "cassettes")
    failed = _record(tmp_path, *args, *_writes("out/a", "two", code=3))
    assert failed.returncode == 3  # CMD's exit code
    assert "left unchanged" in failed.stderr
    assert _snapshot(tmp_path / "cassettes") == before
    assert verify(tmp_path / "cassettes" / "c").artifacts == 1
    ok = _record(tmp_path, *args, *_writes("out/a", "three"))
    assert ok.returncode == 0, ok.stderr
    assert "same frames as the previous recording" in ok.stderr  # re-recording says what changed
    cassette = tmp_path / "cassettes" / "c"
    assert (cassette / "artifacts" / "out" / "a").read_text() == "three"
    assert json.loads((cassette / "cassette.json").read_bytes())["artifacts"] == {
        "out/a": hashlib.sha256(b"three").hexdigest()
    }
    assert [p.name for p in (tmp_path / "cassettes").iterdir()] == ["c"]


def test_sigterm_while_recording_keeps_the_old_cassette(tmp_path):
    """An interrupted `rewrite` stops CMD and the proxy, publishes nothing, exits 128+15."""
    args = ["--cassette", "cassettes/c", "--mode", "rewrite", "--"]
    assert _record(tmp_path, *args, *_writes("out/a", "one")).returncode == 0
    before = _snapshot(tmp_path / "cassettes")
    upstream = f"127.0.0.1:{_free_port()}"
    marker = tmp_path / "still-running"
    sleeper = [sys.executable, "-c", f"import time; time.sleep(6); open({str(marker)!r}, 'w')"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rrlab", "record", "--mqtt", f"{_free_port()}={upstream}",
         "--allow-upstream", upstream, *args, *sleeper],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    assert "listening" in proc.stderr.readline()
    time.sleep(1)  # CMD is running now
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    assert "interrupted (SIGTERM)" in proc.stderr.read()
    assert _snapshot(tmp_path / "cassettes") == before
    assert [p.name for p in (tmp_path / "cassettes").iterdir()] == ["c"]
    time.sleep(7)
    assert not marker.exists()  # CMD was stopped, not left behind


def test_missing_artifact_publishes_nothing(tmp_path):
    proc = _record(
        tmp_path, "--cassette", "cassettes/c", "--artifact", "out/never",
        "--", *_writes("out/a", "x"),
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--artifact out/never" in proc.stderr
    assert not (tmp_path / "cassettes").exists() or not any((tmp_path / "cassettes").iterdir())


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--cassette", "cassettes/c"], "no command given"),
        (["--cassette", "cassettes/c", "--artifact", "../x", "--", "true"], "without '..'"),
        (["--cassette", "/etc/c", "--", "true"], "outside the allowed write roots"),
        (["--cassette", "cassettes/c", "--", "no-such-command-rrlab"], "cannot run"),
        (["--cassette", "cassettes/c", "--profile", "nope", "--", "true"], "unknown profile"),
        (["--cassette", "cassettes/c", "--log-file", "out/x/l", "--", "true"], "does not exist"),
        (["--cassette", "cassettes/c", "--compact-over", "1M", "--", "true"], "byte count"),
    ],
)
def test_usage_errors_exit_2_before_anything_runs(tmp_path, argv, words):
    proc = _record(tmp_path, *argv)
    assert proc.returncode == 2
    assert proc.stderr.startswith("rrlab record: ") and proc.stderr.count("\n") == 1
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "cassettes").exists()


def test_proxy_policy_refusal_is_reported(tmp_path):
    """The proxy's own check (upstream allow-list) stops record before CMD runs."""
    proc = subprocess.run(
        [sys.executable, "-m", "rrlab", "record", "--kafka", f"{_free_port()}=10.9.9.9:9092",
         "--cassette", "cassettes/c", "--", *_writes("out/a", "x")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "10.9.9.9:9092 is not allowed by profile os_record" in proc.stderr
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "cassettes").exists() or not any((tmp_path / "cassettes").iterdir())


# -- rr.cassette.artifacts ---------------------------------------------------------------------


def _finalized(path: Path) -> Path:
    writer = CassetteWriter.create(path)
    conn = writer.open_connection("mqtt", "127.0.0.1:1", "127.0.0.1:2")
    writer.write_frame(conn, "c2s", "mqtt", {"type": "PINGREQ"}, b"\xc0\x00")
    writer.finalize()
    return path


def test_add_artifacts_digest_is_verified(tmp_path):
    cassette = _finalized(tmp_path / "c")
    src = tmp_path / "agg.json"
    src.write_bytes(b"abc")
    added = add_artifacts(cassette, {"out/kafka/aggregate.json": src})
    assert added == {"out/kafka/aggregate.json": hashlib.sha256(b"abc").hexdigest()}
    assert verify(cassette).artifacts == 1
    (cassette / "artifacts" / "out" / "kafka" / "aggregate.json").write_bytes(b"abd")
    with pytest.raises(DigestMismatch):
        verify(cassette)


def test_add_artifacts_refuses_before_changing_anything(tmp_path):
    cassette = _finalized(tmp_path / "c")
    before = _snapshot(cassette)
    with pytest.raises(FileNotFoundError):
        add_artifacts(cassette, {"out/a": tmp_path / "missing"})
    with pytest.raises(ValueError, match="relative path"):
        add_artifacts(cassette, {"../a": cassette / "cassette.json"})
    assert _snapshot(cassette) == before
    unfinished = tmp_path / "u"
    CassetteWriter.create(unfinished)  # never finalized: a recording still running or crashed
    with pytest.raises(NotFinalized):
        add_artifacts(unfinished, {"a": cassette / "cassette.json"})


def test_proxy_warnings_reach_the_terminal(tmp_path):
    """A connection whose upstream refuses: `rrlab record` shows the proxy's warning line."""
    listen, upstream = _free_port(), f"127.0.0.1:{_free_port()}"
    script = (
        "import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1]))); "
        "s.settimeout(10); s.recv(1)"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "rrlab", "record", "--mqtt", f"{listen}={upstream}",
         "--allow-upstream", upstream, "--cassette", "cassettes/c", "--",
         sys.executable, "-c", script, str(listen)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warning = [ln for ln in proc.stderr.splitlines() if "upstream_failed" in ln]
    assert len(warning) == 1 and f"ERROR upstream_failed: upstream {upstream} refused" in warning[0]
    assert "rrlab proxy: finalized" in proc.stderr and proc.stdout == ""


def test_an_artifact_left_by_an_earlier_run_is_not_recorded(tmp_path):
    """A file an earlier run left at an --artifact path is moved aside before CMD runs: a CMD
    that writes nothing is refused naming it (it was stored as this run's output before), and
    the earlier copy is kept, not lost."""
    args = ["--cassette", "cassettes/c", "--mode", "rewrite", "--artifact", "out/a", "--"]
    assert _record(tmp_path, *args, *_writes("out/a", "one")).returncode == 0
    before = _snapshot(tmp_path / "cassettes")
    proc = _record(tmp_path, *args, sys.executable, "-c", "pass")
    assert proc.returncode == 2, proc.stderr
    assert "--artifact out/a: CMD exited 0 but did not write it in this run" in proc.stderr
    assert "out/a.rrlab-previous" in proc.stderr and "left unchanged" in proc.stderr
    assert _snapshot(tmp_path / "cassettes") == before
    assert not (tmp_path / "out" / "a").exists()
    assert (tmp_path / "out" / "a.rrlab-previous").read_text() == "one"
    ok = _record(tmp_path, *args, *_writes("out/a", "two"))  # a run that writes it again
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a"]  # earlier copy dropped
    assert (tmp_path / "cassettes" / "c" / "artifacts" / "out" / "a").read_text() == "two"
