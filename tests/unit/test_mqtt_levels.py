"""MQTT 3.1 (`MQIsdp`, level 3), 3.1.1 (level 4) and 5 through every stage, in the spirit of the
Kafka version matrix: one session of each level (CONNECT with a password, SUBSCRIBE, PUBLISH
at QoS 1, PINGREQ, UNSUBSCRIBE, DISCONNECT and the broker's answers) recorded the way the proxy
records (summary, redaction), read back from the cassette and served to a live client over a
`Link` without sockets: every answer carries the live packet ids, nothing misses.
The live test with real clients (mosquitto_pub/sub -V mqttv31 against Mosquitto):
tests/live/test_mqtt_levels_live.py.
"""

from __future__ import annotations

import struct

import pytest
from replay_playbook import run_at_once

from rrlab.replayer.report import ReplayReport
from rrlab.rr.cassette import CassetteWriter
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import client_kind
from rrlab.rr.protocols.mqtt import session as mqtt_replay
from rrlab.rr.protocols.mqtt.codec import encode_remaining_length
from rrlab.rr.record import recorder_for
from rrlab.rr.replay.recording import Recording
from rrlab.rr.replay.session import Listener, PortMap, ReplayContext, ReplayOptions

C2S, S2C = Direction.C2S, Direction.S2C
LEVELS = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}
SECRET = b"mqtt-secret-pw"


def _str(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def _packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([ptype << 4 | flags]) + encode_remaining_length(len(body)) + body


def _props(level: int) -> bytes:
    return b"\x00" if level == 5 else b""  # an empty v5 property list


def session(level: int, pid: int, client_id: str) -> list[tuple[Direction, bytes]]:
    """One client session of protocol `level`; `pid` is the client's first packet id."""
    p = _props(level)
    connect = _packet(
        1,
        0,
        _str(LEVELS[level]) + bytes([level, 0xC2]) + struct.pack(">H", 30) + p
        + _str(client_id) + _str("user") + struct.pack(">H", len(SECRET)) + SECRET,
    )  # fmt: skip
    connack = _packet(2, 0, b"\x00\x00" + p)
    sub = _packet(8, 2, struct.pack(">H", pid) + p + _str("t/levels") + b"\x01")
    suback = _packet(9, 0, struct.pack(">H", pid) + p + b"\x01")
    publish = _packet(3, 2, _str("t/out") + struct.pack(">H", pid + 1) + p + b'{"n":1}')
    puback = _packet(4, 0, struct.pack(">H", pid + 1))
    unsub = _packet(10, 2, struct.pack(">H", pid + 2) + p + _str("t/levels"))
    unsuback = _packet(11, 0, struct.pack(">H", pid + 2) + (p + b"\x00" if level == 5 else b""))
    return [
        (C2S, connect), (S2C, connack), (C2S, sub), (S2C, suback), (C2S, publish),
        (S2C, puback), (C2S, b"\xc0\x00"), (S2C, b"\xd0\x00"), (C2S, unsub), (S2C, unsuback),
        (C2S, b"\xe0\x00"),
    ]  # fmt: skip


class Link:
    def __init__(self, live_id: int) -> None:
        self.live_id = live_id
        self.sent = bytearray()
        self.closed = False

    act = run_at_once  # the session's actions (rr.replay.session)

    def send(self, data: bytes) -> None:
        self.sent += data

    def close(self) -> None:
        self.closed = True

    def call_later(self, delay, fn):
        fn()

    def take(self) -> bytes:
        data = bytes(self.sent)
        self.sent.clear()
        return data


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Recording:
    path = tmp_path_factory.mktemp("mqtt-levels") / "cassette"
    writer = CassetteWriter.create(path)
    writer.add_route(Proto.MQTT, "127.0.0.1:11883", "127.0.0.1:1883")
    for level in LEVELS:
        conn = writer.open_connection(Proto.MQTT, "127.0.0.1:11883", "127.0.0.1:1883")
        recorder = recorder_for(writer, conn, Proto.MQTT)
        for direction, raw in session(level, 1, f"recorded-{level}"):
            recorder.feed(direction, raw)
        recorder.close("client closed")
    writer.finalize()
    return Recording.open(path, classify=client_kind)


@pytest.mark.parametrize("level", list(LEVELS))
def test_each_level_is_summarised_and_redacted(recording, level):
    conn = recording.conns[list(LEVELS).index(level)]
    frames = conn.frames
    connect = frames[0].summary
    assert (connect["protocol_name"], connect["protocol_level"]) == (LEVELS[level], level)
    assert connect["redacted"] == ["CONNECT.password"] and SECRET not in frames[0].raw
    names = [f.summary["packet"] for f in frames]
    assert names == ["CONNECT", "CONNACK", "SUBSCRIBE", "SUBACK", "PUBLISH", "PUBACK",
                     "PINGREQ", "PINGRESP", "UNSUBSCRIBE", "UNSUBACK", "DISCONNECT"]  # fmt: skip
    assert not [f.summary for f in frames if "error" in f.summary]


@pytest.mark.parametrize("level", list(LEVELS))
def test_each_level_replays_with_the_live_packet_ids(recording, level):
    ctx = ReplayContext(recording, ReplayOptions(), ReplayReport(), PortMap({11883: 11883}))
    mqtt_replay.prepare(ctx)
    link = Link(ctx.next_live_id())
    live = mqtt_replay.Session(ctx, Listener(Proto.MQTT, 11883, 11883), link)
    frames = session(level, 40, f"recorded-{level}")  # the live client's own packet ids
    for i, (direction, raw) in enumerate(frames):
        if direction is S2C:
            continue
        if raw[0] >> 4 == 1:  # the CONNECT, with another password: any is accepted
            raw = raw.replace(SECRET, b"x" * len(SECRET))
        live.on_frame(raw)
        after = frames[i + 1] if i + 1 < len(frames) else None
        want = after[1] if after is not None and after[0] is S2C else b""
        assert link.take() == want, (level, i)
    assert ctx.report.miss_count == 0, [m.line() for m in ctx.report.misses]
    assert not link.closed


def test_the_committed_mqtt_3_1_cassette_was_recorded_at_level_3():
    """cassettes/client-mqtt-mosquitto-clients-v31-mosquitto: mosquitto_pub/sub -V mqttv31
    against Mosquitto (amqtt's broker refuses level 3); `make ci` replays it."""
    from replay.client_scenarios import BY_NAME

    from rrlab.rr.cassette import CassetteReader

    scenario = BY_NAME["client-mqtt-mosquitto-clients-v31-mosquitto"]
    connects = [
        f.summary
        for f in CassetteReader.open(scenario.path).frames()
        if f.summary.get("packet") == "CONNECT"
    ]
    assert len(connects) == 2
    assert all((c["protocol_name"], c["protocol_level"]) == ("MQIsdp", 3) for c in connects)
