"""A cassette knows the command that recorded it (rr.cassette.stored_command): `rrlab record`
stores the argv, the working directory relative to the cassette directory and the --prepare
step, with paths inside the working directory made relative, so that a moved or cloned project
replays.

No broker: the proxy is real (a subprocess on a free port, upstream a closed port) and the
recorded commands open no connection.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rrlab.rr.cassette import MalformedManifest, verify
from rrlab.rr.cassette.reader import load_manifest
from rrlab.rr.cassette.stored_command import StoredCommand, capture

ROOT = Path(__file__).resolve().parents[2]


def test_capture_stores_paths_inside_the_working_directory_relative_to_it(tmp_path):
    project = tmp_path / "proj"
    cassette = project / "tests" / "cassettes" / "c"
    argv = [f"{project}/.venv/bin/python", f"{project}/run.py", "--out", "out/x", "/usr/bin/env"]
    stored = capture(argv, project, cassette, prepare=[f"{project}/tools/fetch", "--all"])
    assert stored == StoredCommand(
        (".venv/bin/python", "./run.py", "--out", "out/x", "/usr/bin/env"),
        "../../..",
        ("tools/fetch", "--all"),
    )
    assert stored.workdir(cassette) == project
    moved = tmp_path / "elsewhere" / "tests" / "cassettes" / "c"  # a clone at another path
    assert stored.workdir(moved) == tmp_path / "elsewhere"


def test_a_project_path_that_only_shares_a_prefix_is_kept_absolute(tmp_path):
    stored = capture([f"{tmp_path}/proj-other/x"], tmp_path / "proj", tmp_path / "proj" / "c")
    assert stored.argv == (f"{tmp_path}/proj-other/x",) and stored.cwd == ".."


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ({"argv": [], "cwd": ".."}, "command.argv"),
        ({"argv": ["x", 1], "cwd": ".."}, "command.argv"),
        ({"argv": ["x"], "cwd": "/abs"}, "command.cwd"),
        ({"argv": ["x"], "cwd": "..", "prepare": "make"}, "command.prepare"),
        ({"argv": ["x"], "cwd": "..", "env": {}}, "unknown keys ['env']"),
    ],
)
def test_a_bad_stored_command_is_a_malformed_manifest_naming_the_field(tmp_path, command, words):
    cassette = _recorded(tmp_path)
    manifest = json.loads((cassette / "cassette.json").read_bytes())
    manifest["command"] = command
    (cassette / "cassette.json").write_text(json.dumps(manifest, sort_keys=True))
    with pytest.raises(MalformedManifest, match=words.replace("[", r"\[")):
        load_manifest(cassette)


def test_record_stores_the_command_its_directory_and_prepare_step(tmp_path):
    cassette = _recorded(tmp_path, "--prepare", f'{sys.executable} -c \'open("prepared", "w")\'')
    assert (tmp_path / "prepared").exists()  # the prepare step ran, from the record's cwd
    manifest = load_manifest(cassette)
    assert manifest.command is not None
    assert manifest.command.cwd == "../.."
    assert manifest.command.argv == tuple(_WRITES)
    assert manifest.command.prepare == (sys.executable, "-c", 'open("prepared", "w")')
    assert manifest.command.workdir(cassette) == tmp_path
    assert verify(cassette).artifacts == 1
    raw = (cassette / "cassette.json").read_bytes()
    assert manifest.to_json() == raw  # canonical, and read back to the same bytes


def test_record_refuses_a_prepare_step_that_fails_and_records_nothing(tmp_path):
    proc = _record(tmp_path, "--prepare", "false", "--", *_WRITES)
    assert proc.returncode == 2 and "--prepare exited 1: nothing recorded" in proc.stderr
    assert not (tmp_path / "cassettes" / "c").exists()


def test_a_cassette_without_a_command_has_no_command_key(tmp_path):
    """Cassettes recorded by `rrlab proxy` alone (or before commands were stored) keep their
    manifest bytes: the key appears only when there is a command."""
    cassette = _recorded(tmp_path)
    bare = dataclasses.replace(load_manifest(cassette), command=None)
    assert "command" not in json.loads(bare.to_json())
    (cassette / "cassette.json").write_bytes(bare.to_json())
    assert load_manifest(cassette).command is None


_WRITES = [
    sys.executable,
    "-c",
    "import pathlib; p = pathlib.Path('out/a.txt'); p.parent.mkdir(exist_ok=True); "
    "p.write_text('a')",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _record(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    upstream = f"127.0.0.1:{_free_port()}"  # nothing listens: the commands never connect
    route = ["--mqtt", f"{_free_port()}={upstream}", "--allow-upstream", upstream]
    return subprocess.run(
        [sys.executable, "-m", "rrlab", "record", *route, "--cassette", "cassettes/c",
         "--artifact", "out/a.txt", *argv],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _recorded(cwd: Path, *options: str) -> Path:
    proc = _record(cwd, *options, "--", *_WRITES)
    assert proc.returncode == 0, proc.stderr
    return cwd / "cassettes" / "c"
