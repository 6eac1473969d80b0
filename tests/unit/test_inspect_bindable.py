"""rrlab inspect lists, per connection, the values a replay would bind (no sockets)."""

from __future__ import annotations

import json
from pathlib import Path

from inspect_output import inspect_output

REPLAY = Path(__file__).resolve().parents[1] / "replay"


def test_inspect_names_the_identifier_shaped_values_of_each_connection():
    text = inspect_output(REPLAY / "amqp_cassettes" / "pika-rpc")
    section = text[text.index("replay, per connection") :]
    assert "  binds: identifier-shaped values its client frames carry" in section
    conn1 = section[section.index("conn 1 (amqp):") : section.index("conn 2 (amqp):")]
    assert "  binds 4:\n    d935a1c9-e770-45b3-aef4-3f77e7bc1bb9 (uuid)," in conn1
    assert "ctag1.5f08de1d3c4d4d95a55e1dc0fe06fa67 (consumer tag)" in conn1
    doc = json.loads(inspect_output(REPLAY / "mqtt_cassettes" / "amqtt-rpc", "--json"))
    assert doc["bindable"] == {
        "1": [{"kind": "client id", "value": "svc-905a1b8b"}],
        "2": [{"kind": "client id", "value": "svc-aa09f34b"}],
    }
    kafka = json.loads(inspect_output(REPLAY / "kafka_cassettes" / "kafka-rpc-tansu", "--json"))
    assert kafka["bindable"] == {
        "4": [{"kind": "uuid", "value": "d4d302d8-47bb-4c86-b8ad-64324db6bda4"}]
    }


def test_inspect_names_kafka_client_ids_and_mqtt5_correlation_data_bound_by_position():
    kafka = json.loads(
        inspect_output(REPLAY / "kafka_cassettes" / "kafka-client-id-rpc-tansu", "--json")
    )
    assert kafka["bindable"]["2"] == [{"kind": "client id", "value": "svc-f747ef1d"}]
    mqtt = json.loads(
        inspect_output(REPLAY / "mqtt_cassettes" / "mosquitto-v5-rr-binary-mosquitto", "--json")
    )
    assert mqtt["bindable"]["2"] == [
        {"kind": "client id", "value": "svc-1db38af9"},
        {"kind": "correlation data", "value": "0xa8dcb8ceb09cf1bd9ea382dcf0a3c2d4"},  # bytes
    ]
    text = json.loads(
        inspect_output(REPLAY / "mqtt_cassettes" / "mosquitto-v5-rr-mosquitto", "--json")
    )
    assert text["bindable"]["3"] == [
        {"kind": "correlation data", "value": "c91fee6b38507b86250cf417c662bf60"}  # as text
    ]
