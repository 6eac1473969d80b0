"""The `rrlab` root: --version, help with examples and defaults, no stray files in the cwd."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RRLAB = Path(sys.executable).with_name("rrlab")


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPOTHESIS")}
    return subprocess.run(
        [str(RRLAB), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_version(tmp_path: Path) -> None:
    done = _run("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("rrlab 0."), done


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["proxy", "--help"],
        ["inspect", "--help"],
        ["verify", str(ROOT / "cassettes" / "worker-kafka-tansu")],
    ],
)
def test_no_files_left_in_the_working_directory(argv: list[str], tmp_path: Path) -> None:
    """kio imports Hypothesis when it is installed, which creates `.hypothesis/` in the cwd."""
    done = _run(*argv, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_every_command_has_an_example_and_shows_defaults(tmp_path: Path) -> None:
    from rrlab.cli import SUBCOMMANDS

    for command in SUBCOMMANDS:
        out = _run(command, "--help", cwd=tmp_path).stdout
        assert "example:" in out and f"rrlab {command}" in out.split("example:")[1], command
    proxy = " ".join(_run("proxy", "--help", cwd=tmp_path).stdout.split())
    assert "one of ci_replay, os_record, rr_replay" in proxy  # profile choices
    assert "(default os_record: upstreams 127.0.0.1:9092" in proxy
    assert "an AMQP 0-9-1 route" in proxy and "a amqp" not in proxy
    assert "(profile default 1000000)" in proxy  # --max-frames
    assert "--log-format {human,json}" in proxy and "(default: human)" in proxy
    record = " ".join(_run("record", "--help", cwd=tmp_path).stdout.split())
    assert "one of ci_replay, os_record, rr_replay (default os_record: upstreams" in record
    brokers = " ".join(_run("brokers", "--help", cwd=tmp_path).stdout.split())
    assert "(default: auto)" in brokers and "{auto,tansu,apache}" in brokers
    assert "{amqtt,mosquitto}" in brokers


def test_unknown_flag_names_the_subcommand_usage(tmp_path: Path) -> None:
    done = _run("verify", "x", "--bogus", cwd=tmp_path)
    assert done.returncode == 2
    assert "usage: rrlab verify" in done.stderr
    assert "rrlab verify: error: unrecognized arguments: --bogus" in done.stderr
