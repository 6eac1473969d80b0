"""AMQP 0-9-1 replay: unmodified clients against `rrlab serve`, no broker anywhere.

The worker (pika, its own random consumer tag) and rabbitmq-c's amqp-tools replay byte-identical
in both match modes; a slow consumer lives on synthesized heartbeats; acks batched differently
replay in lookup mode; connections opened in another order rebind; a changed client fails with
Connection.Close 541 and a diff naming the changed field.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, assert_replays, fake_broker, recorded_artifact, run_client
from .scenarios import SCENARIOS

AMQP_SCENARIOS = [s for s in SCENARIOS if "amqp" in s.name]
FIXTURES = ROOT / "tests" / "replay" / "amqp_cassettes"
PIKA_CLIENT = [sys.executable, str(ROOT / "tests" / "replay" / "amqp_pika_client.py")]
BODIES = "out/bodies.txt"
AMQP_TOOLS = ["amqp-declare-queue", "amqp-publish", "amqp-consume", "amqp-delete-queue"]
TOOLS_CASSETTE = ROOT / "cassettes" / "client-amqp-tools-rabbitmq"  # tools/clients/amqp-tools.sh
TOOLS_ARTIFACT = "out/client-amqp-tools-rabbitmq/output.txt"
TOOLS_COUNT = 100


def _client_scenarios() -> list:
    from .client_scenarios import SCENARIOS as CLIENTS

    return [s for s in CLIENTS if "amqp" in s.name]


@pytest.mark.parametrize("scenario", AMQP_SCENARIOS, ids=lambda s: s.name)
def test_worker_replays_byte_identical_three_times_and_in_lookup_mode(scenario, tmp_path):
    for _ in range(3):
        served = assert_replays(scenario.path, scenario.argv, scenario.artifacts, tmp_path)
        assert served.report["totals"]["unused"] == 0, served.report["unused"]
    served = assert_replays(
        scenario.path, scenario.argv, scenario.artifacts, tmp_path, "--match", "lookup"
    )
    amqp = served.report["by_api"]["amqp"]
    assert amqp["Basic.Publish"]["matched"] == 200
    assert amqp["Basic.Ack"]["matched"] == 200
    assert served.report["totals"]["unused"] == 0


def test_the_live_random_consumer_tag_is_stamped_into_served_frames(tmp_path):
    """The recording holds pika's tag of that run; this run's tag differs, and pika (which
    drops deliveries for a tag it does not know) still gets all 200."""
    scenario = next(s for s in AMQP_SCENARIOS if s.name == "worker-amqp-rabbitmq")
    tags = _recorded_values(scenario.path, "Basic.Consume", "consumer_tag")
    assert len(tags) == 1 and tags[0].startswith("ctag1."), tags
    served = assert_replays(scenario.path, scenario.argv, scenario.artifacts, tmp_path)
    assert served.report["by_api"]["amqp"]["Basic.Cancel"]["matched"] == 1


@pytest.mark.parametrize("mode", ["transcript", "lookup"])
def test_another_client_family_amqp_tools_replays(mode, tmp_path):
    """rabbitmq-c's command-line tools: four connections, a server-named consumer tag."""
    missing = [t for t in AMQP_TOOLS if shutil.which(t) is None]
    assert not missing, f"needs {missing}: install amqp-tools with tools/ensure-system-packages"
    scenarios = _client_scenarios()
    assert [s.path for s in scenarios] == [TOOLS_CASSETTE]
    for scenario in scenarios:
        for _ in range(3 if mode == "transcript" else 1):
            served = assert_replays(
                scenario.path, scenario.argv, scenario.artifacts, tmp_path, "--match", mode
            )
            assert served.report["connections"]["bound"] == 4
            assert served.report["totals"]["unused"] == 0, served.report["unused"]


def test_connections_opened_in_another_order_rebind(tmp_path):
    """amqp-publish runs before amqp-declare-queue: the publisher first binds to the recorded
    declare connection (the openings are alike), then moves to the recorded publisher."""
    missing = [t for t in AMQP_TOOLS if shutil.which(t) is None]
    assert not missing, f"needs {missing}: install amqp-tools with tools/ensure-system-packages"
    cassette = TOOLS_CASSETTE
    conn = [
        "--server=127.0.0.1",
        "--port=15673",
        "--vhost=rrlab",
        "--username=rrlab",
        "--password=any-password-at-all",
    ]
    queue = ["-q", "rrlab.client.amqp-tools"]
    lines = "".join(f"msg-{i:04d} n={i} sq={i * i}\n" for i in range(TOOLS_COUNT))
    publish = ["amqp-publish", *conn, "-r", queue[1], "-C", "text/plain"]
    publish += ["-H", "source: amqp-tools", "-l"]
    with fake_broker(cassette, tmp_path, "--match", "lookup") as served:
        assert run_client_input(publish, lines, tmp_path).returncode == 0
        assert run_client(["amqp-declare-queue", *conn, *queue], tmp_path).returncode == 0
        count = ["-c", str(TOOLS_COUNT)]
        consumed = run_client(["amqp-consume", *conn, *queue, *count, "awk", "1"], tmp_path)
        assert run_client(["amqp-delete-queue", *conn, *queue], tmp_path).returncode == 0
    assert served.exit_code == 0, served.stderr
    assert consumed.stdout.encode() == recorded_artifact(cassette, TOOLS_ARTIFACT)
    assert served.report["totals"]["unused"] == 0


@pytest.mark.parametrize("mode", ["transcript", "lookup"])
def test_two_open_connections_opened_in_the_other_order_swap(mode, tmp_path):
    """Recorded consumer-first, replayed publisher-first with both connections open: each
    binds to the other's recording, and the two swap when the first one diverges."""
    argv = [sys.executable, str(ROOT / "tests" / "replay" / "amqp_two_connections.py"), BODIES]
    cassette = FIXTURES / "pika-two-connections"
    for order in ("consumer-first", "publisher-first"):
        served = assert_replays(
            cassette, [*argv, "--order", order], [BODIES], tmp_path, "--match", mode
        )
        assert served.report["connections"]["bound"] == 2
        assert served.report["totals"]["unused"] == 0


@pytest.mark.parametrize("mode", ["transcript", "lookup"])
def test_slow_consumer_lives_on_synthesized_heartbeats(mode, tmp_path):
    """13 s of processing with a 1 s heartbeat: pika drops a connection that is silent for
    6 s, so the run passes only if the fake broker beats (the recorded beats are not sent)."""
    argv = [*PIKA_CLIENT, BODIES, "--count", "1", "--delay", "13", "--heartbeat", "1"]
    served = assert_replays(
        FIXTURES / "pika-slow-consumer", argv, [BODIES], tmp_path, "--match", mode
    )
    assert served.report["by_api"]["amqp"]["heartbeat"]["synthesized"] >= 30


def test_another_heartbeat_interval_replays_and_is_kept(tmp_path):
    """The client settles on 2 s instead of the recorded 1 s: TuneOk still matches, and the
    fake broker beats at the live interval (half as often)."""
    argv = [*PIKA_CLIENT, BODIES, "--count", "1", "--delay", "13", "--heartbeat", "2"]
    served = assert_replays(FIXTURES / "pika-slow-consumer", argv, [BODIES], tmp_path)
    beats = served.report["by_api"]["amqp"]["heartbeat"]["synthesized"]
    assert 15 <= beats < 30, beats


def _acks(*extra: str) -> list[str]:
    return [*PIKA_CLIENT, BODIES, "--count", "20", "--delay", "0", "--prefetch", "100", *extra]


def test_acks_batched_differently_replay_in_lookup_mode(tmp_path):
    """Recorded: one ack per delivery; live: one multiple=True ack per five."""
    served = assert_replays(
        FIXTURES / "pika-acks", _acks("--ack-every", "5"), [BODIES], tmp_path, "--match", "lookup"
    )
    assert served.report["by_api"]["amqp"]["Basic.Ack"]["matched"] == 20  # recorded acks covered
    assert served.report["totals"]["unused"] == 0


def test_single_acks_replay_a_recorded_batched_ack_in_lookup_mode(tmp_path):
    """Recorded: one multiple=True ack per five deliveries; live: one ack per delivery."""
    served = assert_replays(
        FIXTURES / "pika-acks-batched",
        _acks("--ack-every", "1"),
        [BODIES],
        tmp_path,
        "--match",
        "lookup",
    )
    assert served.report["by_api"]["amqp"]["Basic.Ack"]["matched"] == 20
    assert served.report["totals"]["unused"] == 0


@pytest.mark.parametrize("mode", ["transcript", "lookup"])
def test_a_client_polling_more_often_gets_the_recorded_empty_answer_again(mode, tmp_path):
    """Recorded: one Basic.Get on the empty queue; live: three. The extra polls are answered
    with the recorded Basic.GetEmpty (synthesized), never with a later recorded GetOk."""
    argv = [*PIKA_CLIENT, BODIES, "--count", "10", "--delay", "0", "--get"]
    served = assert_replays(
        FIXTURES / "pika-get", [*argv, "--empty-polls", "3"], [BODIES], tmp_path, "--match", mode
    )
    assert served.report["by_api"]["amqp"]["Basic.Get"]["synthesized"] == 2
    assert served.report["by_api"]["amqp"]["Basic.Get"]["matched"] == 11


def test_acks_batched_differently_miss_in_transcript_mode(tmp_path):
    with fake_broker(FIXTURES / "pika-acks", tmp_path) as served:
        client = run_client(_acks("--ack-every", "5"), tmp_path)
    assert client.returncode != 0
    assert served.exit_code == 1
    miss = served.report["misses"][0]
    assert miss["api"] == "Basic.Ack"
    assert "Basic.Ack ch 1 args.multiple: recorded false live true" in miss["diff"]


def test_changed_body_fails_with_close_541_and_a_diff_naming_the_field(tmp_path):
    with fake_broker(FIXTURES / "pika-acks", tmp_path, "--match", "lookup") as served:
        client = run_client(_acks("--extra", "x"), tmp_path)
    assert client.returncode != 0
    assert "541" in client.stderr and "body.extra" in client.stderr, client.stderr
    assert served.exit_code == 1
    miss = served.report["misses"][0]
    assert miss["api"] == "Basic.Publish" and miss["closest"]["body"]["n"] == 0
    assert miss["diff"] == ['Basic.Publish ch 1 body.extra: recorded (absent) live "x"']
    assert "MISS amqp Basic.Publish" in served.stderr


def test_changed_worker_fails_with_a_diff_naming_the_changed_field(tmp_path):
    """One payload field computed differently: exit 1, and the diff points at `amount`."""
    scenario = next(s for s in AMQP_SCENARIOS if s.name == "worker-amqp-rabbitmq")
    changed = tmp_path / "changed"
    shutil.copytree(ROOT / "worker", changed / "worker")
    envelope = changed / "worker" / "envelope.py"
    source = envelope.read_text()
    assert "% 10000" in source
    envelope.write_text(source.replace("% 10000", "% 9999"))
    cwd = tmp_path / "run"
    cwd.mkdir()
    with fake_broker(scenario.path, tmp_path) as served:
        client = run_client(scenario.argv, cwd, env={"PYTHONPATH": str(changed)})
    assert client.returncode != 0
    assert served.exit_code == 1
    miss = served.report["misses"][0]
    assert miss["api"] == "Basic.Publish"
    assert any("body.amount: recorded" in line for line in miss["diff"]), miss["diff"]


def test_other_seed_fails_naming_the_queue(tmp_path):
    scenario = next(s for s in AMQP_SCENARIOS if s.name == "worker-amqp-rabbitmq")
    argv = [*scenario.argv[: scenario.argv.index("--seed") + 1], "2", "--out", "out/x"]
    with fake_broker(scenario.path, tmp_path) as served:
        client = run_client(argv, tmp_path)
    assert client.returncode != 0
    assert served.exit_code == 1
    assert served.report["misses"][0]["diff"] == [
        'Queue.Declare ch 1 args.queue: recorded "rrlab.worker.1" live "rrlab.worker.2"'
    ]


def run_client_input(argv: list[str], stdin: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60)


def _recorded_values(cassette: Path, method: str, arg: str) -> list:
    out = []
    with open(cassette / "frames.jsonl", "rb") as fh:
        for line in fh:
            summary = json.loads(line)["summary"]
            if summary.get("method") == method:
                out.append(summary["args"][arg])
    return out


def test_recorded_pace_replays(tmp_path):
    """Server frames keep their recorded delay after the client message that released them."""
    scenario = next(s for s in AMQP_SCENARIOS if s.name == "worker-amqp-rabbitmq")
    served = assert_replays(
        scenario.path, scenario.argv, scenario.artifacts, tmp_path, "--pace", "recorded"
    )
    assert served.report["pace"] == "recorded"


def test_side_by_side_replays_on_moved_ports(tmp_path):
    """Two fake brokers of one cassette at once, each worker on its own moved port."""
    scenario = next(s for s in AMQP_SCENARIOS if s.name == "worker-amqp-rabbitmq")
    runs = []
    for offset in (1000, 2000):
        cwd = tmp_path / f"side-{offset}"
        cwd.mkdir()
        ctx = fake_broker(scenario.path, tmp_path, offset=offset)
        served = ctx.__enter__()
        url = f"amqp://rrlab:any-password@127.0.0.1:{15673 + offset}/rrlab"
        env = {**os.environ, "AMQP_URL": url}
        proc = subprocess.Popen(scenario.argv, cwd=cwd, env=env, stderr=subprocess.PIPE)
        runs.append((ctx, served, proc, cwd))
    for ctx, served, proc, cwd in runs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
        ctx.__exit__(None, None, None)
        assert served.exit_code == 0, served.stderr
        for name in scenario.artifacts:
            assert (cwd / name).read_bytes() == recorded_artifact(scenario.path, name)
        assert f"listening amqp 127.0.0.1:{15673 + served.offset}" in served.stdout


def test_a_declared_ignore_field_may_vary(tmp_path):
    """--ignore-field (as in replay-rules.json): the changed body field no longer misses."""
    served = assert_replays(
        FIXTURES / "pika-acks", _acks("--extra", "x"), [BODIES], tmp_path, "--ignore-field", "extra"
    )
    assert served.report["by_api"]["amqp"]["Basic.Publish"]["matched"] == 20


def test_another_user_is_refused_at_binding_with_the_user_named(tmp_path):
    """Any password is accepted (the cassette holds a placeholder), another user is not."""
    assert shutil.which("amqp-declare-queue"), (
        "needs amqp-declare-queue: install amqp-tools with tools/ensure-system-packages"
    )
    argv = ["amqp-declare-queue", "--server=127.0.0.1", "--port=15673", "--vhost=rrlab"]
    argv += ["--username=mallory", "--password=x", "-q", "rrlab.client.amqp-tools"]
    with fake_broker(TOOLS_CASSETTE, tmp_path) as served:
        client = run_client(argv, tmp_path)
    assert client.returncode != 0
    assert served.exit_code == 1
    miss = served.report["misses"][0]
    assert miss["api"] == "Connection.StartOk"
    assert miss["reason"] == "no recorded connection opens like this one"
    assert miss["diff"] == [
        'Connection.StartOk ch 0 args.response.user: recorded "rrlab" live "mallory"'
    ]
    assert miss["live"]["args"]["response"] == {"user": "mallory"}  # never the password


MESSAGE_PROPS = FIXTURES / "pika-message-props"  # recorded with --message-props on RabbitMQ


def _message_props_client() -> list[str]:
    return [*PIKA_CLIENT, BODIES, "--count", "5", "--delay", "0", "--prefetch", "100"] + [
        "--message-props"
    ]


def test_message_id_and_timestamp_replay_when_their_property_paths_are_ignored(tmp_path):
    """pika sets message_id=uuid4() and timestamp=now on every publish: with the two property
    paths in replay-rules.json (or given as --ignore-field) the run replays, strict."""
    copy = tmp_path / "cassette"
    shutil.copytree(MESSAGE_PROPS, copy)
    rules = {"ignore_fields": ["properties.message_id", "properties.timestamp"]}
    (copy / "replay-rules.json").write_text(json.dumps(rules))
    served = assert_replays(copy, _message_props_client(), [BODIES], tmp_path, "--strict")
    assert served.report["by_api"]["amqp"]["Basic.Publish"]["matched"] == 5
    flags = ["--ignore-field", "properties.message_id", "--ignore-field", "properties.timestamp"]
    assert_replays(MESSAGE_PROPS, _message_props_client(), [BODIES], tmp_path, *flags)


def test_message_id_and_timestamp_replay_with_no_rule_bound_and_clock(tmp_path):
    """With no rule: the uuid4 message_id is identifier-shaped (bound recorded -> live), the
    timestamp a clock value of the recording (any live one of its form matches)."""
    served = assert_replays(MESSAGE_PROPS, _message_props_client(), [BODIES], tmp_path, "--strict")
    wheres = [b["where"].split(" ", 4)[-1] for b in served.report["bindings"]]
    assert wheres.count("Basic.Publish") == 5  # one message_id per publish
    assert wheres.count("Basic.Consume consumer_tag") == 1  # pika's random tag


def test_timestamp_misses_naming_the_property_when_its_clock_rule_is_exact(tmp_path):
    copy = tmp_path / "cassette"
    shutil.copytree(MESSAGE_PROPS, copy)
    (copy / "replay-rules.json").write_text(
        json.dumps({"exact_clock_fields": ["properties.timestamp"]})
    )
    with fake_broker(copy, tmp_path) as served:
        client = run_client(_message_props_client(), tmp_path)
    assert client.returncode != 0
    assert served.exit_code == 1
    lines = served.report["misses"][0]["diff"]
    # the message_id would bind: the diff names only the field that really differs
    assert [line.split(":")[0] for line in lines] == ["Basic.Publish ch 1 properties.timestamp"]
