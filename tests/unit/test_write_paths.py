"""Every path a command opens for writing is checked before it starts (issue J.6): one line,
exit 2, nothing started. Before, `rrlab proxy --log-file out/missing/x` was a traceback (and
`rrlab replay --report` into a file's "directory" failed after the command had run). A log
file goes into a directory that exists (as `rrlab record` already required); reports and
metrics files get their missing directories made, as before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rrlab.rr.policy import PathNotWritable, check_writable

ROOT = Path(__file__).resolve().parents[2]
CASSETTE = ROOT / "cassettes" / "worker-mqtt-mosquitto"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with out/ and cassettes/, and a file where a directory is wanted."""
    (tmp_path / "out").mkdir()
    (tmp_path / "cassettes").mkdir()
    (tmp_path / "out" / "afile").write_text("")
    return tmp_path


CASES = {
    "proxy --log-file": ["proxy", "--mqtt", "1=127.0.0.1:1883", "--cassette", "cassettes/c",
                         "--log-file", "out/missing/x"],
    "proxy --log-file file": ["proxy", "--mqtt", "1=127.0.0.1:1883", "--cassette",
                              "cassettes/c", "--log-file", "out/afile/x"],
    "proxy --cassette": ["proxy", "--mqtt", "1=127.0.0.1:1883", "--cassette", "out/afile/c"],
    "serve --log-file": ["serve", "--cassette", str(CASSETTE), "--log-file", "out/missing/x"],
    "serve --report": ["serve", "--cassette", str(CASSETTE), "--report", "out"],
    "serve --metrics-file": ["serve", "--cassette", str(CASSETTE), "--metrics-file",
                             "out/afile/m.txt"],
    "record --log-file": ["record", "--mqtt", "1=127.0.0.1:1883", "--cassette", "cassettes/c",
                          "--log-file", "out/afile/x", "--", "true"],
    "record --cassette": ["record", "--mqtt", "1=127.0.0.1:1883", "--cassette",
                          "out/afile/c", "--", "true"],
    "replay --report": ["replay", "--cassette", str(CASSETTE), "--report", "out/afile/r.json",
                        "--sandbox", "off", "--", "true"],
    "replay --metrics": ["replay", "--cassette", str(CASSETTE), "--metrics", "out/afile/m",
                         "--sandbox", "off", "--", "true"],
}  # fmt: skip


@pytest.mark.parametrize("argv", CASES.values(), ids=CASES.keys())
def test_an_unwritable_path_is_one_line_and_exit_2(project: Path, argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rrlab", *argv],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    flag = next(a for a in argv if a.startswith("--") and a in lines[0])
    assert f"{flag} " in lines[0] and "cannot write there" in lines[0], lines[0]
    assert "listening" not in done.stdout


def test_check_writable_says_why(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    assert check_writable(tmp_path / "new" / "deeper" / "x", "--report")  # made when written
    with pytest.raises(PathNotWritable, match=r"its directory \S+/new does not exist"):
        check_writable(tmp_path / "new" / "x", "--log-file", parents=False)
    with pytest.raises(PathNotWritable, match="is a file, not a directory"):
        check_writable(tmp_path / "f" / "x", "--log-file")
    with pytest.raises(PathNotWritable, match="it is a directory"):
        check_writable(tmp_path, "--report")
    with pytest.raises(PathNotWritable, match="it is a file, not a directory"):
        check_writable(tmp_path / "f", "--cassette", directory=True)
