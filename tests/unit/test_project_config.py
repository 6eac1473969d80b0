"""A project's own write roots (`write_roots` in rrlab.toml or `[tool.rrlab]` of pyproject.toml).

The usual place of a project's cassettes is tests/cassettes/, which the default roots (cassettes/
and out/) refused with a message that named neither --write-root nor a setting (issue L.6). Real
`rrlab record` runs in a temporary project: the proxy is real, upstream a closed port, and the
recorded command opens no connection, so no broker is needed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rrlab.rr.policy import PolicyError, get_profile, project_write_roots


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _record(cwd: Path, cassette: str, *options: str) -> subprocess.CompletedProcess:
    upstream = f"127.0.0.1:{_free_port()}"  # nothing listens: the command never connects
    return subprocess.run(
        [sys.executable, "-m", "rrlab", "record", *options, "--mqtt", f"{_free_port()}={upstream}",
         "--allow-upstream", upstream, "--cassette", cassette, "--", "true"],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_tests_cassettes_refused_by_default_and_the_message_says_how(tmp_path: Path) -> None:
    proc = _record(tmp_path, "tests/cassettes/c")
    assert proc.returncode == 2, proc.stderr
    assert "outside the allowed write roots" in proc.stderr
    assert "--write-root" in proc.stderr and "write_roots" in proc.stderr
    assert "[tool.rrlab] in pyproject.toml" in proc.stderr and "rrlab.toml" in proc.stderr
    assert not (tmp_path / "tests").exists()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pyproject.toml", '[tool.rrlab]\nwrite_roots = ["tests/cassettes"]\n'),
        ("rrlab.toml", 'write_roots = ["tests/cassettes"]\n'),
    ],
)  # fmt: skip
def test_a_configured_root_is_accepted(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    proc = _record(tmp_path, "tests/cassettes/c")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "tests" / "cassettes" / "c" / "cassette.json").is_file()


def test_rrlab_toml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.rrlab]\nwrite_roots = ["from-pyproject"]\n')
    (tmp_path / "rrlab.toml").write_text('write_roots = ["from-rrlab-toml"]\n')
    assert project_write_roots(tmp_path) == (tmp_path.resolve() / "from-rrlab-toml",)


def test_no_configuration_adds_nothing(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "theirs"\n')
    assert project_write_roots(tmp_path) == ()


def test_profile_roots_and_flag_roots_stay(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rrlab.toml").write_text('write_roots = ["tests/cassettes"]\n')
    policy = get_profile("os_record").with_write_roots([tmp_path / "scratch"])
    for path in ("cassettes/a", "out/a", "tests/cassettes/a", "scratch/a"):
        policy.check_write_path(path)


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("rrlab.toml", "write_roots = [", "cannot read it as TOML"),
        ("rrlab.toml", 'write_roots = "tests/cassettes"\n', "must be a list of directory paths"),
        ("pyproject.toml", "[tool]\nrrlab = 3\n", "[tool.rrlab] must be a table"),
    ],
)
def test_a_bad_configuration_is_a_usage_error_naming_the_file(
    tmp_path: Path, name: str, text: str, words: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(PolicyError) as err:
        project_write_roots(tmp_path)
    assert words in str(err.value) and str(tmp_path / name) in str(err.value)
    proc = _record(tmp_path, "cassettes/c")
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_the_project_sets_the_compaction_threshold_and_the_flag_wins(tmp_path: Path) -> None:
    (tmp_path / "rrlab.toml").write_text('compact_over = "always"\n')
    assert _record(tmp_path, "cassettes/c").returncode == 0
    assert (tmp_path / "cassettes" / "c" / "frames.jsonl.gz").is_file()
    proc = _record(tmp_path, "cassettes/d", "--compact-over", "never")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cassettes" / "d" / "frames.jsonl").is_file()


def test_a_bad_compaction_threshold_is_a_usage_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "rrlab.toml").write_text('compact_over = "1M"\n')
    proc = _record(tmp_path, "cassettes/c")
    assert proc.returncode == 2
    assert "rrlab.toml: compact_over: compaction threshold must be a byte count" in proc.stderr
    assert not (tmp_path / "cassettes").exists()
