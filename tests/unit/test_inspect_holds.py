"""rrlab inspect shows, per connection, the recorded deliveries a replay holds until the live
publish that produced them has matched, as the fake broker derives them (no sockets)."""

from __future__ import annotations

import json
from pathlib import Path

from inspect_output import inspect_output
from replay_playbook import serve

from rrlab.rr.codecs import Proto

ROOT = Path(__file__).resolve().parents[2]
REPLAY = ROOT / "tests" / "replay"


def _ref(api: str, conn: int, index: int, seq: int) -> dict[str, object]:
    return {"api": api, "conn": conn, "index": index, "seq": seq}


def _section(text: str, conn: int) -> str:
    """Connection `conn`'s part of the per-connection replay section."""
    tail = text[text.index("replay, per connection") :]
    start = tail.index(f"\nconn {conn} (")
    end = tail.find("\nconn ", start + 1)
    return tail[start : end if end >= 0 else None]


def test_pika_rpc_each_side_waits_for_the_other_sides_publish():
    # the client publishes the request (seq 15, conn 1); the server's Basic.Get answer on conn 2
    # waits for it; the server publishes the reply (seq 31, conn 2); the client's Basic.Deliver
    # on conn 1 waits for that
    cassette = REPLAY / "amqp_cassettes" / "pika-rpc"
    doc = json.loads(inspect_output(cassette, "--json"))
    assert doc["holds"] == {
        "1": [{"delivery": _ref("Basic.Deliver", 1, 18, 39), "publish": _ref("body", 2, 15, 31)}],
        "2": [{"delivery": _ref("Basic.GetOk", 2, 10, 26), "publish": _ref("body", 1, 15, 15)}],
    }
    text = inspect_output(cassette)
    client, server = _section(text, 1), _section(text, 2)
    assert "  holds 1 delivery until a publish matched:" in client
    assert "    seq 39 Basic.Deliver <- publish on conn 2 (seq 31)" in client
    assert "  its publishes release held deliveries: 1 on conn 2" in client
    assert "    seq 26 Basic.GetOk <- publish on conn 1 (seq 15)" in server
    only = inspect_output(cassette, "--conn", "2")
    assert "seq 26 Basic.GetOk <- publish on conn 1 (seq 15)" in only
    assert "seq 39 Basic.Deliver" not in only


def test_a_consumer_connection_waits_for_its_producer_connection():
    doc = json.loads(inspect_output(REPLAY / "amqp_cassettes" / "pika-two-connections", "--json"))
    assert list(doc["holds"]) == ["1"]  # the producer (conn 2) is handed nothing
    held = doc["holds"]["1"]
    assert len(held) == 10
    assert held[0] == {
        "delivery": _ref("Basic.Deliver", 1, 15, 66),
        "publish": _ref("body", 2, 13, 24),
    }
    assert held[-1]["publish"]["conn"] == 2
    assert [h["delivery"]["seq"] for h in held] == sorted(h["delivery"]["seq"] for h in held)


def test_mqtt_pushes_wait_for_the_publisher_on_the_other_connection():
    doc = json.loads(inspect_output(REPLAY / "mqtt_cassettes" / "amqtt-rpc", "--json"))
    assert doc["holds"] == {
        "1": [{"delivery": _ref("PUBLISH", 1, 4, 10), "publish": _ref("PUBLISH", 2, 4, 8)}],
        "2": [{"delivery": _ref("PUBLISH", 2, 6, 14), "publish": _ref("PUBLISH", 1, 6, 12)}],
    }
    text = inspect_output(ROOT / "cassettes" / "client-mqtt-mosquitto-clients-mosquitto")
    subscriber = _section(text, 1)
    assert "  holds 100 deliveries until a publish matched:" in subscriber
    assert "    seq 7 PUBLISH <- publish on conn 2 (seq 6)" in subscriber
    assert "  +88 more (--json lists them all)" in subscriber
    assert "its publishes release held deliveries: 100 on conn 1" in _section(text, 2)


def test_kafka_connections_hold_nothing():
    text = inspect_output(REPLAY / "kafka_cassettes" / "kafka-rpc-tansu")
    assert "conn 1 (kafka): nothing bound or held" in text
    assert (
        json.loads(inspect_output(REPLAY / "kafka_cassettes" / "kafka-rpc-tansu", "--json"))[
            "holds"
        ]
        == {}
    )


def test_inspect_shows_the_fake_brokers_own_links():
    """The pairs inspect lists are the gate's: the causes `rrlab serve` prepares."""
    for name, proto in (
        ("worker-amqp-rabbitmq", Proto.AMQP),
        ("worker-mqtt-mosquitto", Proto.MQTT),
    ):
        ctx = serve(name)
        shared = ctx.shared[proto]
        causes = shared.causes.cause_of if proto is Proto.AMQP else shared.cause_of
        doc = json.loads(inspect_output(ROOT / "cassettes" / name, "--json"))
        listed = {
            (h["delivery"]["conn"], h["delivery"]["index"]): (
                h["publish"]["conn"],
                h["publish"]["index"],
            )
            for held in doc["holds"].values()
            for h in held
        }
        assert causes and listed == causes, name
