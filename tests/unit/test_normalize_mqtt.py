"""MQTT match keys and diffs (rr.protocols.mqtt.normalize) on the committed worker cassette,
and the packet builders the replayer answers with (rr.protocols.mqtt.codec: packet ids stamped,
DISCONNECT, CONNACK)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rrlab.rr.cassette import CassetteReader
from rrlab.rr.codecs import Direction
from rrlab.rr.protocols import decoder_for
from rrlab.rr.protocols.mqtt import normalize as norm
from rrlab.rr.protocols.mqtt.codec import (
    encode_connack,
    encode_disconnect,
    encode_remaining_length,
    packet_id_span,
    with_packet_id,
)
from rrlab.rr.redact import PLACEHOLDER

C2S, S2C = Direction.C2S, Direction.S2C
CASSETTE = Path(__file__).resolve().parents[2] / "cassettes" / "worker-mqtt-amqtt"


def recorded() -> list[dict]:
    with CassetteReader.open(CASSETTE) as reader:
        return [f.to_dict() | {"bytes": f.raw} for f in reader.frames()]


def decode(raw: bytes, direction: Direction = C2S, level: int = 4):
    dec = decoder_for("mqtt")
    dec.protocol_level = level  # type: ignore[attr-defined]
    out = dec.decode(direction, raw)
    assert "error" not in out.summary, out.summary
    return out.summary, out.body


def key_of(raw: bytes, ignore: tuple[str, ...] = (), level: int = 4):
    summary, body = decode(raw, level=level)
    return norm.match_key(summary, body.payload, norm.ignore_rules(ignore))


def s(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return len(data).to_bytes(2, "big") + data


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_remaining_length(len(body)) + body


def publish(topic: str, payload: bytes, pid: int = 1, qos: int = 1, dup: bool = False) -> bytes:
    first = 0x30 | (qos << 1) | (0x08 if dup else 0)
    return packet(first, s(topic) + (pid.to_bytes(2, "big") if qos else b"") + payload)


def connect(
    client_id: str = "c1",
    user: str | None = "bob",
    password: bytes | None = b"pw",
    keep_alive: int = 60,
    level: int = 4,
) -> bytes:
    flags = 0x02 | (0x80 if user is not None else 0) | (0x40 if password is not None else 0)
    body = s("MQTT") + bytes([level, flags]) + keep_alive.to_bytes(2, "big")
    body += (b"\x00" if level == 5 else b"") + s(client_id)
    body += (s(user) if user is not None else b"") + (s(password) if password is not None else b"")
    return packet(0x10, body)


# --- on the committed cassette -----------------------------------------------------------------


def test_worker_connections_share_a_connect_key_but_not_a_client_id():
    connects = [f for f in recorded() if f["summary"]["packet"] == "CONNECT"]
    assert len(connects) == 2
    ids = {norm.client_id(f["summary"]) for f in connects}
    assert ids == {"rrlab-worker-rrlab.worker.1-sub", "rrlab-worker-rrlab.worker.1-pub"}
    keys = {norm.connect_key(f["summary"]) for f in connects}
    assert len(keys) == 1


def test_recorded_publishes_have_distinct_keys_and_ignore_their_packet_ids():
    pubs = [f for f in recorded() if f["dir"] == "c2s" and f["summary"]["packet"] == "PUBLISH"]
    keys = [key_of(f["bytes"]) for f in pubs]
    assert len(set(keys)) == len(pubs) >= 20  # payloads differ, so keys do
    for f, key in zip(pubs, keys, strict=True):
        assert key_of(with_packet_id(f["bytes"], 4242)) == key
        assert key_of(bytes([f["bytes"][0] | 0x08]) + f["bytes"][1:]) == key  # DUP set


def test_recorded_payload_change_is_named_in_the_diff():
    pub = next(f for f in recorded() if f["dir"] == "c2s" and f["summary"]["packet"] == "PUBLISH")
    rec_summary, rec_body = decode(pub["bytes"])
    envelope = json.loads(rec_body.payload)
    inner = json.loads(envelope["payload"])
    inner["amount"] += 1
    envelope["payload"] = json.dumps(inner, separators=(",", ":"), sort_keys=True)
    changed = json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()
    live_raw = publish(rec_summary["topic"], changed, pid=7)
    live_summary, live_body = decode(live_raw)
    assert norm.match_key(live_summary, live_body.payload) != key_of(pub["bytes"])
    lines = norm.diff(rec_summary, live_summary, rec_body.payload, live_body.payload)
    amount = inner["amount"]
    assert lines == [
        f"PUBLISH topic rrlab.worker.1 payload.payload.amount: recorded {amount - 1} live {amount}"
    ]
    # ignoring that field (a per-cassette rule: the diff line's path) makes them match again
    ignore = ("payload.payload.amount",)
    rules = norm.ignore_rules(ignore)
    assert norm.match_key(live_summary, live_body.payload, rules) == key_of(pub["bytes"], ignore)
    # a path without a part name starts in the payload: the same field
    rules = norm.ignore_rules(("payload.amount",))
    assert norm.match_key(live_summary, live_body.payload, rules) != key_of(pub["bytes"])


def test_client_acks_keep_their_server_chosen_packet_ids():
    acks = [f for f in recorded() if f["dir"] == "c2s" and f["summary"]["packet"] == "PUBACK"]
    assert len({key_of(f["bytes"]) for f in acks}) == len(acks) >= 20


# --- rules one by one ---------------------------------------------------------------------------


def test_connect_ignores_client_id_keep_alive_and_the_secret_but_not_the_user():
    base = norm.connect_key(decode(connect())[0])
    assert norm.connect_key(decode(connect(client_id="mosq-Zx81"))[0]) == base
    assert norm.connect_key(decode(connect(keep_alive=5))[0]) == base
    assert norm.connect_key(decode(connect(password=PLACEHOLDER))[0]) == base
    assert norm.connect_key(decode(connect(password=None))[0]) != base
    other = decode(connect(user="eve"))[0]
    assert norm.connect_key(other) != base
    assert norm.diff(decode(connect())[0], other) == ['CONNECT username: recorded "bob" live "eve"']
    assert norm.connect_key(decode(connect(level=5))[0]) != base


def test_publish_compares_topic_qos_retain_payload():
    base = key_of(publish("t", b'{"n":1}'))
    assert key_of(publish("u", b'{"n":1}')) != base
    assert key_of(publish("t", b'{"n":1}', qos=2)) != base
    assert key_of(publish("t", b'{"n":2}')) != base
    retained = bytes([publish("t", b'{"n":1}')[0] | 0x01]) + publish("t", b'{"n":1}')[1:]
    assert key_of(retained) != base


def test_v5_ack_without_reason_code_equals_success():
    bare = packet(0x40, b"\x00\x05")
    explicit = packet(0x40, b"\x00\x05\x00")
    failed = packet(0x40, b"\x00\x05\x10")
    assert key_of(bare, level=5) == key_of(explicit, level=5) != key_of(failed, level=5)


def test_subscribe_ignores_packet_id_not_filters():
    sub = packet(0x82, b"\x00\x01" + s("a/b") + b"\x01")
    assert key_of(with_packet_id(sub, 99)) == key_of(sub)
    other = packet(0x82, b"\x00\x01" + s("a/c") + b"\x01")
    assert key_of(other) != key_of(sub)
    lines = norm.diff(decode(sub)[0], decode(other)[0])
    assert lines == ['SUBSCRIBE subscriptions[0].topic: recorded "a/b" live "a/c"']


def test_expected_answers():
    assert norm.expected_answer({"packet": "CONNECT"}) == ("CONNACK", None)
    assert norm.expected_answer({"packet": "PUBLISH", "qos": 0}) is None
    assert norm.expected_answer({"packet": "PUBLISH", "qos": 1, "packet_id": 3}) == ("PUBACK", 3)
    assert norm.expected_answer({"packet": "PUBLISH", "qos": 2, "packet_id": 3}) == ("PUBREC", 3)
    assert norm.expected_answer({"packet": "PUBREL", "packet_id": 3}) == ("PUBCOMP", 3)
    assert norm.expected_answer({"packet": "PUBREC", "packet_id": 9}) == ("PUBREL", 9)
    assert norm.expected_answer({"packet": "SUBSCRIBE", "packet_id": 2}) == ("SUBACK", 2)
    assert norm.expected_answer({"packet": "PUBACK", "packet_id": 2}) is None


def test_payload_values_and_non_json_diffs():
    assert norm.view({"packet": "PUBLISH"}, b'{"a":"{\\"b\\":1}"}')["payload"] == {"a": {"b": 1}}
    assert norm.view({"packet": "PUBLISH"}, b"plain")["payload"] == "plain"
    assert norm.view({"packet": "PUBLISH"}, b"\xff")["payload"] == {"base64": "/w=="}
    lines = norm.diff(
        decode(publish("t", b"abc"))[0], decode(publish("t", b"abd"))[0], b"abc", b"abd"
    )
    assert lines == ['PUBLISH topic t payload: recorded "abc" live "abd"']
    same_json = norm.diff({"packet": "PUBLISH"}, {"packet": "PUBLISH"}, b'{"a":1}', b'{ "a": 1 }')
    assert same_json == ["PUBLISH payload: same value, different bytes"]


# --- packet builders ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        packet(0x40, b"\x00\x01"),  # PUBACK
        packet(0x50, b"\x00\x01"),  # PUBREC
        packet(0x70, b"\x00\x01"),  # PUBCOMP
        packet(0x90, b"\x00\x01\x01"),  # SUBACK
        packet(0xB0, b"\x00\x01"),  # UNSUBACK 3.1.1
        publish("rrlab.worker.1", b'{"x":1}', pid=1),
        publish("t", b"", pid=1, qos=2),
    ],
)
def test_with_packet_id_changes_only_the_id(raw):
    summary = decode(raw, S2C)[0]
    stamped = with_packet_id(raw, 0xBEEF)
    assert len(stamped) == len(raw)
    assert decode(stamped, S2C)[0] == {**summary, "packet_id": 0xBEEF}


def test_with_packet_id_leaves_packets_without_one():
    qos0 = publish("t", b"x", qos=0)
    assert packet_id_span(qos0) is None
    assert with_packet_id(qos0, 5) == qos0
    assert with_packet_id(b"\xd0\x00", 5) == b"\xd0\x00"


def test_disconnect_and_connack_builders_decode():
    assert encode_disconnect() == b"\xe0\x00"
    summary = decode(encode_disconnect(0x83, "miss: é" + "x" * 300), S2C, level=5)[0]
    assert summary["reason_code"] == 0x83
    assert summary["properties"]["reason_string"].startswith("miss: é")
    assert len(summary["properties"]["reason_string"].encode()) <= 200
    assert decode(encode_connack(3, v5=False), S2C)[0] == {
        "packet": "CONNACK",
        "return_code": 3,
        "session_present": False,
    }
    v5 = decode(encode_connack(0x83, v5=True, reason_string="no"), S2C, level=5)[0]
    assert v5["reason_code"] == 0x83 and v5["properties"] == {"reason_string": "no"}


def test_another_packet_type_is_one_line():
    lines = norm.diff({"packet": "PUBACK", "packet_id": 1}, {"packet": "DISCONNECT"})
    assert lines == ["packet: recorded PUBACK live DISCONNECT"]


def test_fast_key_agrees_with_match_key_on_the_hot_packets():
    """Pairs of recorded packets and variants of them (another packet id, DUP, another payload,
    retain, topic): equal under `fast_key` exactly when equal under `match_key`."""
    frames = [f["bytes"] for f in recorded() if f["dir"] == "c2s"]
    hot = [raw for raw in frames if norm.fast_key(raw, False) is not None]
    assert {raw[0] >> 4 for raw in hot} == {3, 4}  # PUBLISH and PUBACK; CONNECT etc. are not
    pub = next(raw for raw in hot if raw[0] >> 4 == 3)
    variants = [
        with_packet_id(pub, 999),
        bytes([pub[0] | 0x08]) + pub[1:],
        bytes([pub[0] | 0x01]) + pub[1:],
        pub[:-2] + b"x}",
        publish("other", b"{}"),
        publish("other", b"{}", qos=0),
        packet(0x40, b"\x00\x07"),
        packet(0x50, b"\x00\x07"),
    ]
    sample = hot[:40] + hot[-40:] + variants
    for a in sample:
        for b in sample:
            same_fast = norm.fast_key(a, False) == norm.fast_key(b, False)
            assert same_fast == (key_of(a) == key_of(b)), (a[:8], b[:8])
    assert norm.fast_key(pub, True) is None  # v5: properties, decode
    assert norm.fast_key(packet(0x62, b"\x00\x07"), False) is None  # PUBREL: its own lane
    assert norm.fast_key(packet(0x41, b"\x00\x07"), False) is None  # bad flags: decoded
    assert norm.fast_key(packet(0x40, b"\x00\x07\x00"), False) is None  # v5 reason code
    assert norm.fast_key(pub, False, norm.ignore_rules(["n"])) is None  # rules need the JSON


def test_v5_receive_maximum_is_flow_control_not_behaviour():
    def v5_connect(receive_maximum: int) -> dict:
        props = b"\x03\x21" + receive_maximum.to_bytes(2, "big")
        body = s("MQTT") + bytes([5, 0x02]) + (60).to_bytes(2, "big") + props + s("")
        return decode(packet(0x10, body), level=5)[0]

    assert v5_connect(20)["properties"] == {"receive_maximum": 20}
    assert norm.connect_key(v5_connect(20)) == norm.connect_key(v5_connect(1))


def _v5_publish(payload: bytes, props: bytes, topic: str = "t", pid: int = 1) -> bytes:
    """A v5 QoS 1 PUBLISH with the given encoded property list."""
    return packet(
        0x32,
        s(topic) + pid.to_bytes(2, "big") + encode_remaining_length(len(props)) + props + payload,
    )


def _user(name: str, value: str) -> bytes:
    return b"\x26" + s(name) + s(value)


def test_v5_properties_and_user_properties_are_reached_by_ignore_paths():
    """User properties are headers, by name in any order; other v5 properties by path."""
    corr_a, corr_b = b"\x09" + s(b"req-1"), b"\x09" + s(b"req-2")
    a = _v5_publish(b'{"n":1}', corr_a + _user("trace", "t-1") + _user("app", "x"))
    b = _v5_publish(b'{"n":1}', corr_b + _user("app", "x") + _user("trace", "t-2"))
    sa, sb = decode(a, level=5)[0], decode(b, level=5)[0]
    assert norm.diff(sa, sb, b'{"n":1}', b'{"n":1}') == [
        "PUBLISH topic t properties.correlation_data: recorded <5 bytes 7265712d31> "
        "live <5 bytes 7265712d32>",
        'PUBLISH topic t properties.user_property.trace: recorded "t-1" live "t-2"',
    ]
    both = norm.ignore_rules(["properties.correlation_data"], ["trace"])
    assert norm.match_key(sa, b'{"n":1}', both) == norm.match_key(sb, b'{"n":1}', both)
    same = norm.ignore_rules(["properties.correlation_data", "properties.user_property.trace"])
    assert norm.match_key(sa, b'{"n":1}', same) == norm.match_key(sb, b'{"n":1}', same)
    one_of = norm.ignore_rules(["properties.correlation_data"])
    assert norm.match_key(sa, b'{"n":1}', one_of) != norm.match_key(sb, b'{"n":1}', one_of)


def test_payload_lists_are_crossed_by_an_ignore_path():
    """`items.id` is the id of every element (rr.diff's list rule, as for Kafka and AMQP)."""
    rec = b'{"items":[{"id":1,"n":1},{"id":2,"n":2}]}'
    live = b'{"items":[{"id":7,"n":1},{"id":8,"n":3}]}'
    srec, slive = decode(publish("t", rec))[0], decode(publish("t", live))[0]
    rules = norm.ignore_rules(["items.id"])
    assert norm.diff(srec, slive, rec, live, rules) == [
        "PUBLISH topic t payload.items[1].n: recorded 2 live 3"
    ]
    fixed = live.replace(b'"n":3', b'"n":2')
    assert norm.match_key(srec, rec, rules) == norm.match_key(
        decode(publish("t", fixed))[0], fixed, rules
    )


def test_only_a_normal_disconnect_is_closing():
    assert norm.is_closing(decode(encode_disconnect())[0])  # 3.1.1: no reason code
    assert norm.is_closing(decode(encode_disconnect(0), level=5)[0])
    assert not norm.is_closing(decode(encode_disconnect(0x04), level=5)[0])  # send the will
    assert not norm.is_closing(decode(encode_disconnect(0x83), level=5)[0])
    assert not norm.is_closing({"packet": "PUBACK", "packet_id": 1})
