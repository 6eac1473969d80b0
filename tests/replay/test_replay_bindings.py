"""Bindings, replay tier: request/reply clients that name things by fresh random ids replay, with
no rule, from cassettes recorded on the real brokers; a changed value that is not an identifier
is still a miss naming the field.

Cassettes (recorded with `rrlab brokers up` and `rrlab record`, commands in each test):
- amqp_cassettes/pika-rpc: tests/replay/amqp_rpc_client.py out/rpc/answer.txt --x 7 on RabbitMQ.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT, assert_replays, fake_broker, run_client

FIXTURES = ROOT / "tests" / "replay"
AMQP_RPC = FIXTURES / "amqp_cassettes" / "pika-rpc"
AMQP_RPC_CLIENT = [sys.executable, str(FIXTURES / "amqp_rpc_client.py"), "out/rpc/answer.txt"]


def _recorded(cassette, method: str) -> list[dict]:
    lines = (cassette / "frames.jsonl").read_text().splitlines()
    return [s for s in (json.loads(line)["summary"] for line in lines) if s.get("method") == method]


@pytest.mark.parametrize("mode", ["transcript", "lookup"])
def test_amqp_reply_queue_and_correlation_id_bind_with_no_rule(mode, tmp_path):
    """The caller's reply queue `reply-<uuid4>` and correlation id are new this run: both bind,
    the responder gets the request with the live reply_to and correlation id stamped in, and
    the caller accepts the answer only because it carries its own correlation id."""
    declared = [s["args"]["queue"] for s in _recorded(AMQP_RPC, "Queue.Declare")]
    assert declared[0].startswith("reply-"), declared
    served = assert_replays(
        AMQP_RPC, [*AMQP_RPC_CLIENT, "--x", "7"], ["out/rpc/answer.txt"], tmp_path, "--match", mode
    )
    bound = {b["recorded"]: b for b in served.report["bindings"]}
    assert declared[0].removeprefix("reply-") in bound  # the UUID inside the queue name
    assert len(served.report["bindings"]) == 3  # reply queue, correlation id, consumer tag


def test_amqp_changed_argument_is_a_miss_naming_the_field_not_the_ids(tmp_path):
    with fake_broker(AMQP_RPC, tmp_path) as served:
        try:
            client = run_client([*AMQP_RPC_CLIENT, "--x", "8"], tmp_path, timeout=30)
            failed = client.returncode != 0
        except subprocess.TimeoutExpired:
            # the missed request is never delivered (causality): the responder's Basic.Get
            # waits for it, as `rrlab replay` would end the command after its miss grace
            failed = True
    assert failed
    assert served.exit_code == 1
    miss = served.report["misses"][0]
    assert miss["api"] == "Basic.Publish"
    assert miss["diff"] == ["Basic.Publish ch 1 body.x: recorded 7 live 8"]


MQTT_RPC = FIXTURES / "mqtt_cassettes" / "amqtt-rpc"
MQTT_RPC_CLIENT = [sys.executable, str(FIXTURES / "mqtt_rpc_client.py"), "out/mqtt-rpc/answer.txt"]


@pytest.mark.parametrize("mode", ["transcript", "lookup"])
def test_mqtt_response_topic_carrying_the_random_client_id_binds_with_no_rule(mode, tmp_path):
    """amqtt clients with `svc-` + 8 hex client ids (new each run); the requester subscribes to
    `reply/<client id>` and names it in its request: the client ids bind at CONNECT, the topic
    and the payload that embed one match, and the responder's recorded request and the
    requester's recorded answer are pushed with the live topic and payload."""
    served = assert_replays(
        MQTT_RPC, [*MQTT_RPC_CLIENT, "--x", "7"], ["out/mqtt-rpc/answer.txt"], tmp_path,
        "--match", mode,
    )  # fmt: skip
    bound = served.report["bindings"]
    assert [b["where"].split(" ", 4)[-1] for b in bound] == ["CONNECT client_id"] * 2
    assert all(b["recorded"].startswith("svc-") for b in bound)


def test_mqtt_changed_argument_is_a_miss_naming_the_field(tmp_path):
    with fake_broker(MQTT_RPC, tmp_path) as served:
        client = run_client([*MQTT_RPC_CLIENT, "--x", "8"], tmp_path, timeout=60)
    assert client.returncode != 0
    assert served.exit_code == 1
    miss = served.report["misses"][0]
    assert miss["api"] == "PUBLISH"
    assert miss["diff"] == ["PUBLISH topic rpc/square payload.x: recorded 7 live 8"]


KAFKA_RPC = FIXTURES / "kafka_cassettes" / "kafka-rpc-tansu"
KAFKA_RPC_CLIENT = [
    sys.executable,
    str(FIXTURES / "kafka_rpc_client.py"),
    "out/kafka-rpc/answer.txt",
]


def test_kafka_uuid_correlation_header_binds_with_no_rule(tmp_path):
    """A fresh uuid4 in the request's key and `correlation_id` header: bound at the Produce,
    the responder fetches the request with the live id stamped in (batch re-encoded, CRC
    again), answers with it, and the requester finds the answer carrying its own id."""
    served = assert_replays(
        KAFKA_RPC, [*KAFKA_RPC_CLIENT, "--x", "7"], ["out/kafka-rpc/answer.txt"], tmp_path
    )
    (bound,) = served.report["bindings"]
    assert bound["where"].endswith("Produce rrlab.requests")


def test_kafka_changed_argument_is_a_miss_naming_the_field(tmp_path):
    with fake_broker(KAFKA_RPC, tmp_path) as served:
        client = run_client([*KAFKA_RPC_CLIENT, "--x", "8"], tmp_path, timeout=90)
    assert client.returncode != 0
    assert served.exit_code == 1
    miss = served.report["misses"][0]
    assert miss["api"] == "Produce"
    assert [line.split(" record 0 ")[-1] for line in miss["diff"]] == ["value.x: recorded 7 live 8"]


KAFKA_CLIENT_ID = FIXTURES / "kafka_cassettes" / "kafka-client-id-rpc-tansu"
KAFKA_CLIENT_ID_CLIENT = [
    sys.executable,
    str(FIXTURES / "kafka_client_id_rpc.py"),
    "out/kafka-client-id/answer.txt",
]
KAFKA_CLIENT_ID_CASES = {
    # how the requester reads its reply topic: (cassette, client, artifact, recorded client id)
    "assigned": (KAFKA_CLIENT_ID, KAFKA_CLIENT_ID_CLIENT, "out/kafka-client-id/answer.txt",
                 "svc-f747ef1d"),
    "group": (
        FIXTURES / "kafka_cassettes" / "kafka-client-id-group-apache",
        [sys.executable, str(FIXTURES / "kafka_client_id_rpc.py"),
         "out/kafka-client-id-group/answer.txt", "--group"],
        "out/kafka-client-id-group/answer.txt",
        "svc-d88e4761",
    ),
}  # fmt: skip


@pytest.mark.parametrize("read", sorted(KAFKA_CLIENT_ID_CASES))
def test_kafka_random_client_id_in_a_reply_topic_binds_with_no_rule(read, tmp_path):
    """kafka-python clients with client.id `svc-` + 8 hex (new each run) create, produce to
    and read a reply topic `rrlab.reply.<client id>`, and key the request by the id: the live
    id binds to the recorded one at its first request, and every answer naming the recorded
    id (Metadata, CreateTopics, ListOffsets, fetched records; with `group`, the JoinGroup
    member id the broker made of it, and the JoinGroup and SyncGroup bytes naming the reply
    topic) carries the live one. Recorded on Tansu: `rrlab record --kafka
    19092=127.0.0.1:9092 --cassette tests/replay/kafka_cassettes/kafka-client-id-rpc-tansu
    --write-root tests/replay/kafka_cassettes --artifact out/kafka-client-id/answer.txt --
    .venv/bin/python tests/replay/kafka_client_id_rpc.py out/kafka-client-id/answer.txt --x 7`;
    `group` on Apache Kafka (`--kafka-impl apache`), its own cassette and artifact, `--group`."""
    cassette, client, artifact, recorded_id = KAFKA_CLIENT_ID_CASES[read]
    served = assert_replays(cassette, [*client, "--x", "7"], [artifact], tmp_path)
    (bound,) = served.report["bindings"]
    assert bound["recorded"] == recorded_id and bound["where"].endswith(" client_id")
    assert bound["live"].startswith("svc-") and bound["live"] != bound["recorded"]


def test_kafka_random_client_id_changed_argument_is_a_miss_naming_the_field(tmp_path):
    with fake_broker(KAFKA_CLIENT_ID, tmp_path) as served:
        client = run_client([*KAFKA_CLIENT_ID_CLIENT, "--x", "8"], tmp_path, timeout=90)
    assert client.returncode != 0
    assert served.exit_code == 1
    miss = served.report["misses"][0]
    assert miss["api"] == "Produce"
    assert [line.split(" record 0 ")[-1] for line in miss["diff"]] == ["value.x: recorded 7 live 8"]


MQTT5_RR = FIXTURES / "mqtt_cassettes" / "mosquitto-v5-rr-mosquitto"
MQTT5_RR_CLIENT = [str(FIXTURES / "mqtt5_request_response.sh"), "out/mqtt5-rr/answer.txt"]
MQTT5_RR_BINARY = FIXTURES / "mqtt_cassettes" / "mosquitto-v5-rr-binary-mosquitto"
MQTT5_RR_BINARY_CLIENT = [
    "env",
    "MQTT_CORRELATION=binary",
    str(FIXTURES / "mqtt5_request_response.sh"),
    "out/mqtt5-rr-binary/answer.txt",
]
MQTT5_CASES = {
    # correlation data: (cassette, client, artifact)
    "text": (MQTT5_RR, MQTT5_RR_CLIENT, "out/mqtt5-rr/answer.txt"),
    "binary": (MQTT5_RR_BINARY, MQTT5_RR_BINARY_CLIENT, "out/mqtt5-rr-binary/answer.txt"),
}


@pytest.mark.parametrize("mode", ["transcript", "lookup"])
@pytest.mark.parametrize("correlation", sorted(MQTT5_CASES))
def test_mqtt5_correlation_data_and_response_topic_of_mosquitto_rr_bind_with_no_rule(
    correlation, mode, tmp_path
):
    """Mosquitto's MQTT 5 clients: `mosquitto_rr` (client id `svc-` + 8 hex, response topic
    `reply/<client id>`, a random correlation data) asks, `mosquitto_sub`/`mosquitto_pub`
    answer on the request's response topic with its correlation data, and the requester takes
    only an answer carrying its own. The client id binds at CONNECT, the correlation data
    (text, or bytes that are not UTF-8: bound whole by position, as a client id) at the
    request's PUBLISH; the responder is pushed the request with the live response topic and
    correlation data, and the requester the answer. Recorded on Mosquitto (`rrlab brokers up
    mqtt --mqtt-impl mosquitto`): `rrlab record --mqtt 11883=127.0.0.1:1883 --cassette
    tests/replay/mqtt_cassettes/mosquitto-v5-rr-mosquitto --write-root
    tests/replay/mqtt_cassettes --artifact out/mqtt5-rr/answer.txt --
    tests/replay/mqtt5_request_response.sh out/mqtt5-rr/answer.txt 7` (and the binary one
    with `env MQTT_CORRELATION=binary` before the script, its own cassette and artifact)."""
    cassette, client, artifact = MQTT5_CASES[correlation]
    served = assert_replays(cassette, [*client, "7"], [artifact], tmp_path, "--match", mode)
    bound = {b["where"].split(" ", 4)[-1]: b for b in served.report["bindings"]}
    assert sorted(bound) == ["CONNECT client_id", "PUBLISH"], bound
    assert bound["CONNECT client_id"]["recorded"].startswith("svc-")
    shown = bound["PUBLISH"]["recorded"]  # the correlation data: 16 bytes
    assert (
        len(shown) == 32 if correlation == "text" else shown.startswith("0x") and len(shown) == 34
    )


@pytest.mark.parametrize("correlation", sorted(MQTT5_CASES))
def test_mqtt5_mosquitto_rr_changed_request_is_a_miss_naming_the_field(correlation, tmp_path):
    cassette, client_argv, _artifact = MQTT5_CASES[correlation]
    with fake_broker(cassette, tmp_path) as served:
        client = run_client([*client_argv, "8"], tmp_path, env={"MQTT_WAIT": "5"}, timeout=60)
    assert client.returncode != 0
    assert served.exit_code == 1
    miss = served.report["misses"][0]
    assert miss["api"] == "PUBLISH"
    assert miss["diff"] == ["PUBLISH topic rpc/square payload.x: recorded 7 live 8"]
