"""`rrlab replay`: one command that serves the cassette, runs CMD offline and judges it.

No broker runs. The sandbox is proven by what CMD sees, never by sending a packet off this
machine: the only host a test aims at is a veth peer inside a namespace the test made itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .client_scenarios import SCENARIOS as CLIENT_SCENARIOS
from .conftest import ROOT, RRLAB
from .scenarios import SCENARIOS

KAFKA = next(s for s in SCENARIOS if s.name == "worker-kafka-tansu")


def replay(
    scenario, cwd: Path, *options: str, argv: list[str] | None = None, env=None, mkdir=False
) -> tuple[subprocess.CompletedProcess[str], dict]:
    if mkdir:
        cwd.mkdir()
    cmd = [*RRLAB, "replay", "--cassette", str(scenario.path), *options, "--"]
    cmd += argv if argv is not None else scenario.argv
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=240, env=env)
    report_path = cwd / "out" / "rr-report.json"
    report = json.loads(report_path.read_bytes()) if report_path.exists() else {}
    return proc, report


def test_replay_passes_offline_and_writes_report_and_metrics(tmp_path):
    proc, report = replay(KAFKA, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["verdict"] == "ok"
    artifact = report["artifacts"][KAFKA.artifacts[0]]
    assert artifact["result"] == "identical"
    assert artifact["live_sha256"] == artifact["recorded_sha256"]
    assert report["frames"]["matched"] > 0 and report["frames"]["missed"] == 0
    assert report["sandbox"] == {
        "asked": "auto",
        "interfaces": ["lo"],
        "used": "netns",
        "weaker_guard": False,
    }
    raw = (tmp_path / "out" / "rr-report.json").read_bytes()
    assert raw == json.dumps(report, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    metrics = (tmp_path / "out" / "rr-metrics.txt").read_text()
    assert metrics.rstrip().endswith("# EOF")
    assert 'rrlab_replay_artifacts_total{result="identical"} 1.0' in metrics
    assert "rrlab_replay_frames_total" in metrics and "_created" not in metrics
    assert "rrlab replay: OK" in proc.stdout


def test_cmd_sees_only_loopback_under_rr_replay(tmp_path):
    probe = "import socket; print(sorted(n for _, n in socket.if_nameindex()))"
    wrapped = [
        sys.executable,
        "-c",
        f"import subprocess, sys; {probe}; sys.exit(subprocess.call({KAFKA.argv!r}))",
    ]
    proc, report = replay(KAFKA, tmp_path, "--profile", "rr_replay", argv=wrapped)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "['lo']" in proc.stdout.splitlines()[0]


_FAMILY = """
import json, subprocess, sys, psutil
me = psutil.Process()
replay = me.parent()
others = [p.cmdline() for p in replay.children() if p.pid != me.pid]
print(json.dumps({"ppid": replay.ppid(), "cmdline": replay.cmdline(), "others": others}))
sys.exit(subprocess.call(json.loads(sys.argv[1])))
"""


def test_one_process_replays_no_second_interpreter(tmp_path):
    """Start-up: replay enters its network namespace in place (no replay re-executed under
    unshare) and forks its fake broker (no `python -m rrlab serve`): the command's parent is
    the replay this test started, and the command's one sibling, the fake broker, runs replay's
    own command line."""
    argv = [sys.executable, "-c", _FAMILY, json.dumps(KAFKA.argv)]
    proc, report = replay(KAFKA, tmp_path, argv=argv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    family = json.loads(proc.stdout.splitlines()[0])
    assert family["ppid"] == os.getpid(), family
    assert family["cmdline"][-len(argv) :] == argv and "replay" in family["cmdline"]
    assert family["others"] == [family["cmdline"]], family
    assert report["sandbox"]["used"] == "netns" and report["sandbox"]["interfaces"] == ["lo"]


@pytest.mark.parametrize(
    "name", ["worker-kafka-tansu", "worker-amqp-rabbitmq", "worker-mqtt-amqtt"]
)
def test_changed_worker_payload_fails_with_a_diff_pointing_at_it(name, tmp_path):
    """The worker's payload logic edited: every driver fails with the field named, and the
    worker says so in one line (no traceback)."""
    scenario = next(s for s in SCENARIOS if s.name == name)
    changed = tmp_path / "changed"
    shutil.copytree(ROOT / "worker", changed / "worker")
    envelope = changed / "worker" / "envelope.py"
    envelope.write_text(envelope.read_text().replace("% 10000", "% 9999"))
    env = {**__import__("os").environ, "PYTHONPATH": str(changed)}
    proc, report = replay(scenario, tmp_path, "--profile", "ci_replay", env=env)
    assert proc.returncode == 1
    assert report["verdict"] == "miss"
    assert any(".amount: recorded" in d for m in report["misses"] for d in m["diff"])
    assert "amount: recorded" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_ci_replay_fails_on_unused_frames_rr_replay_on_the_artifact(tmp_path):
    """Half the recorded messages: both profiles fail on the Produces never sent (behaviour:
    a miss naming each); rr_replay also prints the aggregate's unified diff."""
    half = [a if a != "200" else "100" for a in KAFKA.argv]
    strict_dir, lenient_dir = tmp_path / "strict", tmp_path / "lenient"
    strict_dir.mkdir()
    lenient_dir.mkdir()
    proc, report = replay(KAFKA, strict_dir, "--profile", "ci_replay", argv=half)
    assert proc.returncode == 1 and report["verdict"] == "miss", proc.stdout + proc.stderr
    assert report["unused"] and "never sent" in report["reason"]
    proc, report = replay(KAFKA, lenient_dir, "--profile", "rr_replay", argv=half)
    assert proc.returncode == 1 and report["verdict"] == "miss", proc.stdout + proc.stderr
    assert "artifacts differ from the recording" in report["reason"]
    assert f"--- recorded/{KAFKA.artifacts[0]}" in proc.stdout
    assert report["artifacts"][KAFKA.artifacts[0]]["result"] == "differs"


def test_guard_sandbox_replays_a_python_command_and_says_it_is_weaker(tmp_path):
    proc, report = replay(KAFKA, tmp_path, "--sandbox", "guard")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["sandbox"]["used"] == "guard" and report["sandbox"]["weaker_guard"] is True
    assert "weaker than a network namespace" in proc.stdout


def test_bad_cassette_and_usage_are_exit_2(tmp_path):
    proc = subprocess.run(
        [*RRLAB, "replay", "--cassette", str(tmp_path / "nope"), "--", "true"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "no such cassette directory" in proc.stderr
    proc = subprocess.run([*RRLAB, "replay"], cwd=tmp_path, capture_output=True)
    assert proc.returncode == 2 and b"give --cassette DIR (or --all DIR...)" in proc.stderr


# --- the verdict means the command behaved as recorded ---------------------------------------

BATCHING = next(s for s in CLIENT_SCENARIOS if s.name == "kafka-batching-tansu")
ENDLESS = [sys.executable, str(ROOT / "tests/replay/kafka_endless_consumer.py")]


def test_true_after_a_good_run_fails_naming_the_artifact(tmp_path):
    """The recorded aggregate left in out/ by a good run is moved aside, not judged: `true`
    (said OK before) fails naming it, and the earlier copy is kept beside it."""
    good, _ = replay(KAFKA, tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    proc, report = replay(KAFKA, tmp_path, argv=["true"])
    name = KAFKA.artifacts[0]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    closing = proc.stdout.splitlines()[-1]
    assert f"not written by this run: {name}" in closing, closing
    assert report["artifacts"][name]["result"] == "missing"
    earlier = tmp_path / f"{name}.rrlab-previous"
    assert report["artifacts"][name]["earlier_copy"] == f"{name}.rrlab-previous"
    assert earlier.read_bytes() == (KAFKA.path / "artifacts" / name).read_bytes()
    assert not (tmp_path / name).exists()
    again, _ = replay(KAFKA, tmp_path)  # a good run again: its own file, the earlier one dropped
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / name).exists() and not earlier.exists()


def test_a_command_that_never_reaches_the_fake_broker_is_never_ok(tmp_path):
    """Writing the recorded bytes without talking to the fake broker (said OK before)."""
    name = KAFKA.artifacts[0]
    copy = "import pathlib, shutil, sys; pathlib.Path(sys.argv[2]).parent.mkdir(parents=True); "
    copy += "shutil.copy(sys.argv[1], sys.argv[2])"
    argv = [sys.executable, "-c", copy, str(KAFKA.path / "artifacts" / name), name]
    proc, report = replay(KAFKA, tmp_path, argv=argv)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert report["verdict"] == "nothing_matched"
    assert report["artifacts"][name]["result"] == "identical"
    assert "matched none of the 15 recorded client frames" in proc.stdout.splitlines()[-1]


def test_a_consumer_loop_without_a_timeout_is_ended_after_a_miss(tmp_path):
    """kafka-python reading back what it wrote, with no deadline of its own: with one changed
    record it never ends by itself (it ran until something outside killed it), so --miss-grace
    ends it and the verdict is MISS. The unchanged client ends by itself and passes."""
    out = ["--out", BATCHING.artifacts[0]]
    control, report = replay(BATCHING, tmp_path / "same", argv=[*ENDLESS, *out], mkdir=True)
    assert control.returncode == 0 and report["verdict"] == "ok", control.stdout + control.stderr
    proc, report = replay(
        BATCHING, tmp_path / "changed", "--miss-grace", "1",
        argv=[*ENDLESS, "--change", "50", *out], mkdir=True,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert report["verdict"] == "miss" and report["command"]["ended_by"] == "miss_grace"
    assert "record 50 value.text" in proc.stderr
    assert "ended 1 s after the first miss (--miss-grace)" in proc.stdout.splitlines()[-1]


def test_timeout_bounds_the_whole_run(tmp_path):
    """A command that waits without a miss: --timeout ends it, verdict TIMEOUT. (On a loaded
    machine the fake broker may not even listen within it: TIMEOUT too, the command never run.)"""
    started = tmp_path / "started"
    sleeper = [sys.executable, "-c", f"import time; open({str(started)!r}, 'w'); time.sleep(300)"]
    proc, report = replay(KAFKA, tmp_path, "--timeout", "4", argv=sleeper)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert report["verdict"] == "timeout" and report["command"]["ended_by"] == "timeout"
    closing = proc.stdout.splitlines()[-1]
    if started.exists():
        assert closing.startswith("rrlab replay: TIMEOUT (the run reached --timeout 4 s"), closing
        assert report["command"]["exit"] == 128 + 15  # SIGTERM to its process group
    else:
        assert "was not listening within --timeout 4 s" in closing and "exited" not in closing


# the fake broker is replay's other child (forked: its command line is replay's own)
_FREEZE_SERVE = """
import os, signal, sys, psutil
for sibling in psutil.Process(os.getppid()).children():
    if sibling.pid != os.getpid():
        os.kill(sibling.pid, signal.SIGSTOP)
        open(sys.argv[1], "w")
"""


def test_a_fake_broker_that_never_finishes_its_report_is_not_the_commands_failure(tmp_path):
    """The fake broker stopped (SIGSTOP) by a command that then exits 0: past --timeout replay
    kills it and says so in a verdict of its own (before: "exit -9", blamed on the run). The
    --timeout leaves the fake broker ample time to start on a loaded machine; should it still
    not listen in time, the command never runs and the verdict is TIMEOUT."""
    frozen = tmp_path / "frozen"
    argv = [sys.executable, "-c", _FREEZE_SERVE, str(frozen)]
    proc, report = replay(KAFKA, tmp_path, "--timeout", "12", argv=argv)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    closing = proc.stdout.splitlines()[-1]
    if report["command"]["exit"] is None:
        assert report["verdict"] == "timeout", closing
        return
    assert frozen.exists(), proc.stdout + proc.stderr
    assert report["verdict"] == "unfinished", closing
    assert report["command"]["exit"] == 0 and report["fake_broker"]["killed"]
    assert "UNFINISHED (the fake broker did not finish its report (--timeout passed" in closing
    assert "the command exited 0" in closing and "no report from the fake broker" in closing


# --- a host the test made itself: a veth peer in a namespace of its own -----------------------

PEER_IP, HOST_IP, PEER_PORT = "169.254.213.2", "169.254.213.1", 18888


@pytest.fixture
def peer_host() -> Iterator[str]:
    """A listening TCP server on a veth peer in a network namespace this test creates."""
    assert shutil.which("ip"), "iproute2 (ip) is needed to build the test's own peer host"
    tag = uuid.uuid4().hex[:6]
    ns, host_if, peer_if = f"rrlab-peer-{tag}", f"rrh{tag}", f"rrp{tag}"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("netns", "add", ns)
    server = None
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        ip("link", "set", peer_if, "netns", ns)
        ip("addr", "add", f"{HOST_IP}/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("netns", "exec", ns, "ip", "addr", "add", f"{PEER_IP}/30", "dev", peer_if)
        ip("netns", "exec", ns, "ip", "link", "set", peer_if, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", _SERVER.format(PEER_IP, PEER_PORT)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield PEER_IP
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


_SERVER = """
import socket
s = socket.socket(); s.bind(("{0}", {1})); s.listen(8); print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()
"""

_CONNECT = f"""
import socket, sys
try:
    socket.create_connection(("{PEER_IP}", {PEER_PORT}), timeout=3).close()
except OSError as exc:
    print("unreachable:", type(exc).__name__, exc)
    sys.exit(7)
print("reached")
"""


def test_the_peer_is_reachable_without_the_sandbox(peer_host):
    """The control: outside replay the test's own peer answers, so 'unreachable' means more."""
    proc = subprocess.run([sys.executable, "-c", _CONNECT], capture_output=True, text=True)
    assert proc.stdout.strip() == "reached", proc.stdout + proc.stderr


@pytest.mark.parametrize("mode", ["netns", "guard"])
def test_the_peer_is_unreachable_under_replay(peer_host, mode, tmp_path):
    proc, report = replay(KAFKA, tmp_path, "--sandbox", mode, argv=[sys.executable, "-c", _CONNECT])
    assert "unreachable:" in proc.stdout, proc.stdout + proc.stderr
    assert report["command"]["exit"] == 7
    assert report["verdict"] in ("command_failed", "unused")
    if mode == "guard":
        assert "rrlab replay guard" in proc.stdout


def test_artifact_diffs_never_send_control_sequences_to_the_terminal(tmp_path):
    """A live (or recorded) artifact holding ESC sequences is shown escaped in the diff: what a
    file says is printed, never obeyed by the terminal."""
    artifact = KAFKA.artifacts[0]
    script = f"{' '.join(KAFKA.argv)} && printf '\\033[2J\\033[31mred\\n' > {artifact}"
    proc, report = replay(KAFKA, tmp_path, argv=["bash", "-c", script])
    assert proc.returncode == 1 and report["verdict"] == "mismatch", proc.stdout + proc.stderr
    assert "\x1b" not in proc.stdout + proc.stderr
    assert "\\x1b[31mred" in proc.stdout
