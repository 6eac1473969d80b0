"""The one diff-and-ignore module (rr.diff): values, ignore paths (lists included), diff lines.

Each protocol's normalizer has its own test of the same list rule (test_normalize_*.py), so a
path means the same wherever it is written.
"""

from __future__ import annotations

import pytest

from rrlab.rr import diff
from rrlab.rr.protocols.amqp import normalize as amqp
from rrlab.rr.protocols.kafka import normalize as kafka
from rrlab.rr.protocols.mqtt import normalize as mqtt

SHAPE = diff.Shape(frozenset({"properties", "body"}), "body", ("properties", "headers"))


def test_value_of_json_text_binary_and_json_held_in_strings():
    assert diff.value_of(b'{"a":1}') == {"a": 1}
    assert diff.value_of(b'{"a":"{\\"b\\":[1,2]}"}') == {"a": {"b": [1, 2]}}
    assert diff.value_of(b'"{not json"') == "{not json"
    assert diff.value_of(b"plain text") == "plain text"
    assert diff.value_of(b"\xff\x00") == {"base64": "/wA="}
    assert diff.value_of(None) is None


def test_a_list_is_crossed_by_name_at_any_depth():
    doc = {"items": [{"id": 1, "n": 1}, [{"id": 2, "n": 2}], {"n": 3}], "id": 9}
    assert diff.without(doc, ("items", "id")) == {
        "items": [{"n": 1}, [{"n": 2}], {"n": 3}],
        "id": 9,
    }
    assert doc["items"][0] == {"id": 1, "n": 1}  # the input is never edited
    assert diff.without([{"a": {"b": 1, "c": 2}}], ("a", "b")) == [{"a": {"c": 2}}]


def test_a_path_that_names_nothing_is_no_error():
    doc = {"a": {"b": 1}, "s": "text", "n": None}
    for path in (("x",), ("a", "x"), ("a", "b", "c"), ("s", "x"), ("n", "x")):
        assert diff.without(doc, path) == doc


def test_paths_start_at_a_part_or_else_in_the_payload():
    assert SHAPE.resolve("properties.message_id") == ("properties", "message_id")
    assert SHAPE.resolve("body.n") == ("body", "n")
    assert SHAPE.resolve("n") == ("body", "n")
    assert SHAPE.resolve("trace.id") == ("body", "trace", "id")
    rules = diff.Ignore.build(SHAPE, ["properties.timestamp", "ts"], ["traceparent"])
    assert rules.paths == (
        ("properties", "timestamp"),
        ("body", "ts"),
        ("properties", "headers", "traceparent"),
    )
    assert rules.touches("body") and rules.touches("properties") and not rules.touches("args")
    assert rules.within("body").paths == (("ts",),)


@pytest.mark.parametrize(
    "path,hint",
    [
        ("items[0].id", "items.id"),
        ("items[].id", "items.id"),
        ("a..b", "empty name"),
        ("", "non-empty"),
    ],
)
def test_a_bad_path_is_refused_saying_what_to_write(path, hint):
    with pytest.raises(ValueError, match=hint.replace(".", r"\.")):
        diff.parse_path(path)


def test_lines_name_each_leaf_with_an_ignorable_path():
    rec = {"a": {"b": 1, "gone": True}, "items": [{"id": 1}, {"id": 2}], "bin": {"base64": "/wA="}}
    live = {"a": {"b": 2, "new": "x"}, "items": [{"id": 1}, {"id": 3}], "bin": {"base64": "/wE="}}
    assert diff.lines(rec, live) == [
        "a.b: recorded 1 live 2",
        "a.gone: recorded true live (absent)",
        'a.new: recorded (absent) live "x"',
        "bin: recorded <2 bytes ff00> live <2 bytes ff01>",
        "items[1].id: recorded 2 live 3",
    ]
    assert diff.lines([1, 2], [1, 2, 3], "items") == ["items: recorded [1,2] live [1,2,3]"]
    assert diff.lines(1, True) == ["value: recorded 1 live true"]  # equal in Python, not JSON
    assert len(diff.lines({"k": list(range(50))}, {"k": list(range(1, 51))})) == diff.MAX_LINES
    assert diff.show("x" * 200).endswith("…")


def test_headers_by_name_keep_every_value_of_a_repeated_name():
    pairs = [("a", b"1"), ("b", b"x"), ("a", b"2")]
    assert diff.by_name(pairs, diff.value_of) == {"a": [1, 2], "b": "x"}


ITEMS_REC = b'{"items":[{"id":"u-1","n":1},{"id":"u-2","n":2}]}'
ITEMS_LIVE = b'{"items":[{"id":"u-8","n":1},{"id":"u-9","n":2}]}'


def test_the_same_list_path_means_the_same_for_every_protocol():
    """`items.id`, written once, lets every element's id vary in a Kafka record value, an
    AMQP body and an MQTT payload; without it each protocol names the same first field."""
    # Kafka
    rec_k, live_k = kafka.RecordFace(None, ITEMS_REC, ()), kafka.RecordFace(None, ITEMS_LIVE, ())
    kafka_lines = kafka.record_diff("r", rec_k, live_k)
    rules = kafka.record_rules(["items.id"])
    assert kafka.record_key(rec_k, rules) == kafka.record_key(live_k, rules)
    # AMQP
    rec_a = amqp.Message(1, "Basic.Publish", {}, {}, ITEMS_REC)
    live_a = amqp.Message(1, "Basic.Publish", {}, {}, ITEMS_LIVE)
    amqp_lines = amqp.diff(amqp.normalized(rec_a), amqp.normalized(live_a))
    opts = amqp.Options(ignore_fields=("items.id",))
    assert amqp.match_key(rec_a, opts) == amqp.match_key(live_a, opts)
    # MQTT
    pub = {"packet": "PUBLISH", "topic": "t", "qos": 0, "retain": False, "dup": False}
    mqtt_lines = mqtt.diff(pub, pub, ITEMS_REC, ITEMS_LIVE)
    ignore = mqtt.ignore_rules(["items.id"])
    assert mqtt.match_key(pub, ITEMS_REC, ignore) == mqtt.match_key(pub, ITEMS_LIVE, ignore)
    assert mqtt.match_key(pub, ITEMS_REC) != mqtt.match_key(pub, ITEMS_LIVE)

    first = 'items[0].id: recorded "u-1" live "u-8"'
    assert kafka_lines[0] == f"r value.{first}"
    assert amqp_lines[0] == f"Basic.Publish ch 1 body.{first}"
    assert mqtt_lines[0] == f"PUBLISH topic t payload.{first}"
