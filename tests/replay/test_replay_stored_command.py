"""A cassette replays itself: `rrlab replay --cassette DIR` with no command runs the one `rrlab
record` stored, from the stored directory; `rrlab replay --all DIR...` (and `rrlab ci`) replays
every cassette under the directories into one table, a canonical JSON report and JUnit XML.

Each test copies committed cassettes into a project of its own under tmp_path (the project's
`.venv`, `worker` and `tools` are links to this checkout's), so the stored working directory
(`../..` from `cassettes/NAME`) is that project: what a clone of a repository at another path is.
Real clients (the demo worker: kafka-python, pika, amqtt) against the fake broker; no broker.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from rrlab.rr.cassette.reader import load_manifest

from .conftest import CASSETTES, ROOT, RRLAB

AMQP = "worker-amqp-rabbitmq"
KAFKA_GROUP = "worker-kafka-apache-group"  # (test_serve_repeat)


def _project(tmp_path: Path, *names: str) -> Path:
    """tmp_path/proj holding copies of the committed cassettes `names` under cassettes/."""
    project = tmp_path / "proj"
    for link in (".venv", "worker", "tools", "tests"):
        if not (project / link).exists():
            project.mkdir(exist_ok=True)
            (project / link).symlink_to(ROOT / link)
    for name in names:
        shutil.copytree(CASSETTES / name, project / "cassettes" / name)
    return project


def _set_command(cassette: Path, **changes: object) -> None:
    """Rewrite the copy's manifest with its stored command changed, or without one when no
    change is given (frames and artifacts untouched)."""
    manifest = load_manifest(cassette)
    command = manifest.command
    if changes and command is not None:
        command = dataclasses.replace(command, **changes)
    elif not changes:
        command = None
    (cassette / "cassette.json").write_bytes(
        dataclasses.replace(manifest, command=command).to_json()
    )


def _rrlab(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RRLAB, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_committed_cassettes_store_the_command_they_were_recorded_with():
    manifest = load_manifest(CASSETTES / AMQP)
    assert manifest.command is not None, "migrate: the cassette stores no command"
    assert manifest.command.cwd == "../.."
    assert manifest.command.argv[:3] == (".venv/bin/python", "-m", "worker")
    assert manifest.command.workdir(CASSETTES / AMQP) == ROOT


def test_replay_with_no_command_runs_the_stored_one_from_the_stored_directory(tmp_path):
    project = _project(tmp_path, AMQP)
    elsewhere = tmp_path / "elsewhere"  # replay's own cwd: the command does not run here
    elsewhere.mkdir()
    proc = _rrlab(elsewhere, "replay", "--cassette", str(project / "cassettes" / AMQP))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rrlab replay: OK" in proc.stdout
    artifact = f"out/{AMQP}/aggregate.json"
    assert (project / artifact).read_bytes() == (
        CASSETTES / AMQP / "artifacts" / artifact
    ).read_bytes()
    assert not (elsewhere / "out" / AMQP).exists()
    report = json.loads((elsewhere / "out" / "rr-report.json").read_bytes())
    assert report["command"]["argv"] == list(load_manifest(CASSETTES / AMQP).command.argv)
    assert report["artifacts"][artifact]["result"] == "identical"


def test_replay_of_a_cassette_without_a_command_is_a_usage_error_saying_so(tmp_path):
    project = _project(tmp_path, AMQP)
    _set_command(project / "cassettes" / AMQP)  # as recorded by `rrlab proxy` alone
    proc = _rrlab(tmp_path, "replay", "--cassette", str(project / "cassettes" / AMQP))
    assert proc.returncode == 2
    assert "stores no command" in proc.stderr and "-- CMD" in proc.stderr


def test_replay_all_reports_each_cassette_in_a_table_json_and_junit(tmp_path):
    project = _project(tmp_path, AMQP)
    changed = project / "cassettes" / "changed" / "amqp-seed-2"  # one level deeper: found too
    shutil.copytree(CASSETTES / AMQP, changed)
    argv = load_manifest(changed).command.argv
    seed = argv.index("--seed") + 1
    _set_command(changed, cwd="../../..", argv=(*argv[:seed], "2", *argv[seed + 1 :]))

    proc = _rrlab(
        tmp_path, "replay", "--all", str(project / "cassettes"),
        "--report", "out/all.json", "--junit", "out/junit.xml",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    table = proc.stdout[proc.stdout.index("cassette ") :]
    assert "1 passed, 1 failed" in table
    assert f"{project}/cassettes/{AMQP} " in table and " ok " in table and " miss " in table

    raw = (tmp_path / "out" / "all.json").read_bytes()
    report = json.loads(raw)
    assert raw == json.dumps(report, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    rows = {Path(row["cassette"]).name: row for row in report["cassettes"]}
    assert rows[AMQP]["verdict"] == "ok" and rows[AMQP]["exit"] == 0
    assert rows["amqp-seed-2"]["verdict"] == "miss" and rows["amqp-seed-2"]["exit"] == 1
    assert rows["amqp-seed-2"]["message"].startswith("MISS amqp")
    assert report["totals"] == {"cassettes": 2, "failed": 1, "passed": 1}
    kept = json.loads((tmp_path / "out" / "replay" / AMQP / "rr-report.json").read_bytes())
    assert kept["verdict"] == "ok"

    suite = ET.parse(tmp_path / "out" / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases[AMQP].find("failure") is None
    failure = cases["amqp-seed-2"].find("failure")
    assert failure.get("message") == rows["amqp-seed-2"]["message"]
    assert failure.get("type") == "miss"


def test_rrlab_ci_passes_when_every_cassette_replays_and_refuses_an_empty_directory(tmp_path):
    project = _project(tmp_path, AMQP)
    proc = _rrlab(project, "ci", "cassettes", "--junit", "out/junit.xml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 0 failed" in proc.stdout
    report = json.loads((project / "out" / "replay" / "report.json").read_bytes())
    assert report["profile"] == "ci_replay" and report["totals"]["passed"] == 1
    (tmp_path / "empty").mkdir()
    proc = _rrlab(tmp_path, "replay", "--all", str(tmp_path / "empty"))
    assert proc.returncode == 2 and "no cassette under it" in proc.stderr


_PARENTS = """
import json, subprocess, sys, psutil
replay = psutil.Process().parent()
print("family", json.dumps({"ppid": replay.ppid(), "cmdline": replay.cmdline()}), flush=True)
sys.exit(subprocess.call(json.loads(sys.argv[1])))
"""


def test_replay_all_forks_each_replay_from_itself(tmp_path):
    """Start-up: each cassette's replay is forked from `rrlab replay --all` (no interpreter and
    imports per cassette) and enters its namespace in place: every command's parent is a child
    of the process this test started, running its command line."""
    kafka = "worker-kafka-tansu"
    project = _project(tmp_path, kafka)
    shutil.copytree(project / "cassettes" / kafka, project / "cassettes" / "again")
    for name in (kafka, "again"):
        argv = load_manifest(project / "cassettes" / name).command.argv
        _set_command(
            project / "cassettes" / name,
            argv=(argv[0], "-c", _PARENTS, json.dumps(list(argv))),
        )
    cmd = [*RRLAB, "replay", "--all", "cassettes"]
    proc = subprocess.Popen(cmd, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = (data.decode() for data in proc.communicate(timeout=300))
    assert proc.returncode == 0, out + err
    lines = [line.removeprefix("family ") for line in out.splitlines()]
    families = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(families) == 2, out
    for family in families:
        assert family["ppid"] == proc.pid and family["cmdline"][-4:] == cmd[-4:], family
