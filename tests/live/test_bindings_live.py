"""Bindings, live: request/reply clients that name things by fresh random ids (a pika reply
queue `reply-<uuid4>` and uuid4 correlation id; a kafka-python uuid4 correlation header;
kafka-python clients with client.id `svc-<8 hex>` and a reply topic `reply.<client id>`, read
directly or in a consumer group named by the id; amqtt
clients `svc-<8 hex>` with a response topic that embeds the id; Mosquitto's MQTT 5 clients,
`mosquitto_rr` with client id `svc-<8 hex>`, response topic `reply/<client id>` and a random
correlation data, as text or as bytes that are not UTF-8, answered by
`mosquitto_sub`/`mosquitto_pub`) recorded through `rrlab record` from the real brokers, then
replayed offline (`rrlab replay`, network sandbox) with no rule:
the run is OK with the artifact as recorded and the replay names the bindings it made; the same
client with a changed request argument is a miss naming that field."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from proxy_harness import RRLAB

pytestmark = pytest.mark.live
CLIENTS = Path(__file__).resolve().parents[1] / "replay"
OUT = "out/answer.txt"
CASES = {
    # case: (protocol, route, client, bindings made in replay at least)
    "amqp": ("amqp", "15673=127.0.0.1:5672", "amqp_rpc_client.py", 2),
    "kafka": ("kafka", "19092=127.0.0.1:9092", "kafka_rpc_client.py", 1),
    "kafka-client-id": ("kafka", "19092=127.0.0.1:9092", "kafka_client_id_rpc.py", 1),
    # the reply read in a consumer group named by the client id (Apache: groups join at once)
    "kafka-client-id-group-apache": ("kafka", "19092=127.0.0.1:9092", "kafka_client_id_rpc.py", 1),
    "mqtt": ("mqtt", "11883=127.0.0.1:1883", "mqtt_rpc_client.py", 2),
    "mqtt5-mosquitto": ("mqtt", "11883=127.0.0.1:1883", "mqtt5_request_response.sh", 2),
    "mqtt5-binary-mosquitto": ("mqtt", "11883=127.0.0.1:1883", "mqtt5_request_response.sh", 2),
}


def _client(case: str, x: int, prefix: str) -> list[str]:
    proto, _route, client, _bindings = CASES[case]
    if client.endswith(".sh"):  # binary: correlation data of bytes that are not UTF-8
        binary = ["env", "MQTT_CORRELATION=binary"] if "binary" in case else []
        return [*binary, str(CLIENTS / client), OUT, str(x)]
    argv = [sys.executable, str(CLIENTS / client), OUT, "--x", str(x)]
    argv += ["--group"] if "group" in case else []
    return argv + (["--prefix", prefix] if proto == "kafka" else [])


@pytest.mark.parametrize("case", sorted(CASES))
def test_request_reply_with_fresh_ids_records_live_and_replays_offline_with_no_rule(
    live_brokers, tmp_path, case
):
    proto, route, _client_file, bindings = CASES[case]
    live_brokers(
        proto,
        kafka_impl="apache" if case.endswith("apache") else "tansu",
        mqtt_impl="mosquitto" if case.endswith("mosquitto") else "amqtt",
    )
    prefix = f"rrlab.{uuid.uuid4().hex[:8]}."  # fresh Kafka topics on a shared broker
    cassette = tmp_path / "cassette"
    record = [str(RRLAB), "record", f"--{proto}", route, "--cassette", str(cassette)]
    record += ["--write-root", str(tmp_path), "--artifact", OUT, "--", *_client(case, 7, prefix)]
    done = subprocess.run(record, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / OUT).read_text() == "7 squared = 49\n"

    report = tmp_path / "out" / "report.json"
    replay = [str(RRLAB), "replay", "--cassette", str(cassette), "--artifact", OUT]
    replay += ["--report", str(report), "--write-root", str(tmp_path), "--"]
    done = subprocess.run(
        [*replay, *_client(case, 7, prefix)], cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    made = json.loads(report.read_text())["bindings"]
    assert len(made) >= bindings, made
    assert "bound " in done.stdout + done.stderr

    done = subprocess.run(
        [*replay, *_client(case, 8, prefix)], cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    misses = json.loads(report.read_text())["misses"]
    assert any(line.endswith("recorded 7 live 8") for line in misses[0]["diff"]), misses


JAVA_CLIENT = Path(__file__).resolve().parents[2] / "tools" / "clients" / "kafka-java.sh"


def test_java_client_with_a_random_client_id_naming_topic_and_group_replays_with_no_rule(
    live_brokers, tmp_path
):
    """Apache Kafka's Java client (AdminClient, idempotent producer, consumer group) with
    CLIENT_ID=random: one client.id `svc-<8 hex>` per run, and the topic and the group named by
    it. Recorded on Apache Kafka, replayed offline: the live id binds at the first request, the
    topic, group, member id and subscription bytes naming it match, and records come back."""
    prepared = subprocess.run([str(JAVA_CLIENT), "--prepare"], capture_output=True, text=True)
    assert prepared.returncode == 0, (
        f"{JAVA_CLIENT} --prepare (fetches the Kafka jars with Maven: run it once where the "
        f"network is reachable, e.g. `make prepare`): {prepared.stderr}"
    )
    live_brokers("kafka", kafka_impl="apache")
    out = "out/records.txt"
    topic = f"rrlab.{uuid.uuid4().hex[:8]}.java"  # fresh on a shared broker
    client = ["env", "CLIENT_ID=random", "CLIENT_COUNT=10", f"CLIENT_TOPIC={topic}"]
    client += [str(JAVA_CLIENT), out]
    cassette = tmp_path / "cassette"
    record = [str(RRLAB), "record", "--kafka", "19092=127.0.0.1:9092", "--cassette", str(cassette)]
    record += ["--write-root", str(tmp_path), "--artifact", out, "--", *client]
    done = subprocess.run(record, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / out).read_text().endswith("count 10\n")

    report = tmp_path / "out" / "report.json"
    replay = [str(RRLAB), "replay", "--cassette", str(cassette), "--artifact", out]
    replay += ["--report", str(report), "--write-root", str(tmp_path), "--", *client]
    done = subprocess.run(replay, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (bound,) = json.loads(report.read_text())["bindings"]
    assert bound["recorded"].startswith("svc-") and bound["where"].endswith(" client_id")
