"""Serving an MQTT cassette builds each recorded connection's plan and the pushes' causes at open
in one read of the recording (`rr.protocols.mqtt.plan`): each connection's frames are read once,
and a 3.1.1 PUBLISH, ack or ping is keyed from its bytes, neither decoded nor its recorded
summary parsed. `rrlab serve` of a generated 1 GB MQTT cassette took 107 s and 2.07 GB to start
(issue M): every PUBLISH decoded, every summary parsed, the recording read twice. What the plan
and the causes hold is what they held when built from the summaries and decoded packets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from replay_playbook import CASSETTES, count_reads

from rrlab.rr.cassette import CassetteWriter
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.policy import Budgets
from rrlab.rr.protocols import client_kind, protocol_for
from rrlab.rr.protocols.mqtt import plan as mqtt_plan
from rrlab.rr.protocols.mqtt.codec import MqttDecoder
from rrlab.rr.replay import recording as rec_module
from rrlab.rr.replay.recording import Recording
from rrlab.rr.replay.session import PortMap, ReplayContext, ReplayOptions

C2S, S2C = Direction.C2S, Direction.S2C
REPLAY_CASSETTES = Path(__file__).resolve().parents[1] / "replay" / "mqtt_cassettes"
MQTT_CASSETTES = [
    *(p for p in sorted(CASSETTES.iterdir()) if "mqtt" in p.name),
    *sorted(p for p in REPLAY_CASSETTES.iterdir() if (p / "cassette.json").exists()),
]
CONNECT = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04gen1"
CONNACK = b"\x20\x02\x00\x00"


def publish(topic: bytes, payload: bytes, flags: int = 0, pid: int | None = None) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + (pid.to_bytes(2, "big") if pid else b"")
    body += payload
    return bytes([0x30 | flags, len(body)]) + body


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3.1.1 cassette as `bench_serve_faults` makes them (and a subscriber): two publishers
    of QoS 0 and QoS 1 PUBLISHes, and a subscriber pushed some of them."""
    from rrlab.rr.protocols import protocol_for as proto_of

    path = tmp_path_factory.mktemp("gen") / "c"
    route = ("mqtt", "127.0.0.1:11883", "127.0.0.1:1883")
    writer = CassetteWriter.create(path, budgets=Budgets(), meta={"recorder": "test"})
    writer.add_route(*route)

    def frames(*pairs: tuple[Direction, bytes]) -> None:
        cid = writer.open_connection(*route)
        pipeline = proto_of("mqtt").connection(max_frame_bytes=1 << 20, redact=True)
        for direction, raw in pairs:
            batch: list[Any] = []
            pipeline.process(direction, [raw], batch)
            writer.write_frames(cid, direction, "mqtt", batch)
        writer.close_connection(cid, "client closed")

    sub = b"\x82\x08\x00\x01\x00\x03t/#\x01"
    suback = b"\x90\x03\x00\x01\x01"
    frames(
        (C2S, CONNECT),
        (S2C, CONNACK),
        *[(C2S, publish(b"t/a", b"m%d" % (n % 3))) for n in range(30)],
        (C2S, b"\xe0\x00"),
    )
    frames(
        (C2S, CONNECT),
        (S2C, CONNACK),
        (C2S, sub),
        (S2C, suback),
        *[
            pair
            for n in range(1, 20)
            for pair in (
                (C2S, publish(b"t/b", b"q%d" % n, flags=0b0010, pid=n)),
                (S2C, b"\x40\x02" + n.to_bytes(2, "big")),
                (S2C, publish(b"t/b", b"q%d" % n, flags=0b0010, pid=100 + n)),
                (C2S, b"\x40\x02" + (100 + n).to_bytes(2, "big")),
            )
        ],
        (C2S, b"\xc0\x00"),
        (S2C, b"\xd0\x00"),
    )
    writer.finalize()
    return path


def prepared(path: Path) -> ReplayContext:
    recording = Recording.open(path, classify=client_kind)
    ports = PortMap({port: port for _proto, port in recording.listeners()})
    ctx = ReplayContext(recording, ReplayOptions(), None, ports)  # type: ignore[arg-type]
    protocol_for(Proto.MQTT).prepare(ctx)
    return ctx


@pytest.mark.parametrize("cassette", MQTT_CASSETTES, ids=lambda p: p.name)
def test_prepare_reads_each_connection_once(cassette: Path, monkeypatch: pytest.MonkeyPatch):
    reads = count_reads(monkeypatch)
    ctx = prepared(cassette)
    mqtt = [rc.id for rc in ctx.recording.conns if rc.proto is Proto.MQTT]
    assert mqtt
    assert reads == Counter(mqtt)  # main: twice each (the causes, then the plan)


def test_a_311_publish_is_neither_decoded_nor_its_summary_parsed(generated, monkeypatch):
    decoded: Counter[int] = Counter()
    parsed: Counter[str] = Counter()
    decode, parse = MqttDecoder.decode, rec_module.parse_summary

    def counted_decode(self: MqttDecoder, direction: Direction, raw: bytes) -> Any:
        decoded[raw[0] >> 4] += 1
        return decode(self, direction, raw)

    def counted_parse(text: bytes) -> dict[str, Any]:
        summary = parse(text)
        parsed[summary["packet"]] += 1
        return summary

    monkeypatch.setattr(MqttDecoder, "decode", counted_decode)
    monkeypatch.setattr(rec_module, "parse_summary", counted_parse)
    ctx = prepared(generated)
    # CONNECT (the protocol level), SUBSCRIBE and DISCONNECT (their keys); main: PUBLISH too
    assert set(decoded) == {1, 8, 14}
    assert set(parsed) == {"CONNECT", "CONNACK", "SUBSCRIBE", "SUBACK", "DISCONNECT"}
    plans = ctx.shared[Proto.MQTT].plans
    assert sum(len(p.order) for p in plans.values()) == 30 + 1 + 19 * 2 + 1  # no PINGREQ


def facts_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build plans and causes the long way: every packet from its recorded summary."""
    monkeypatch.setattr(mqtt_plan, "_facts", lambda raw: None)


def snapshot(ctx: ReplayContext) -> dict[str, Any]:
    causes = ctx.shared[Proto.MQTT]
    plans = {}
    for conn, p in causes.plans.items():
        plans[conn] = {
            "connect": None if p.connect is None else p.connect.index,
            "v5": p.v5,
            "connect_key": p.connect_key,
            "frames": [(f.index, f.seq, f.dir, f.t_us, f.raw, f.summary) for f in p.frames],
            **{
                name: getattr(p, name)
                for name in ("order", "lanes", "keys", "answers", "releases", "by_key")
            },
            **{name: getattr(p, name) for name in ("ack_of", "recorded_acks", "tail")},
        }
    return {"plans": plans, "cause_of": causes.cause_of}


@pytest.mark.parametrize("cassette", [*MQTT_CASSETTES, None], ids=lambda p: p and p.name)
def test_plans_and_causes_equal_those_built_from_the_summaries(
    cassette: Path | None, generated: Path, monkeypatch: pytest.MonkeyPatch
):
    path = cassette or generated
    fast = snapshot(prepared(path))
    with monkeypatch.context() as patch:
        facts_off(patch)
        slow = snapshot(prepared(path))
    assert fast == slow
    if cassette is None:  # the subscriber's pushes, each caused by the publisher's PUBLISH
        assert len(fast["cause_of"]) == 19


def reference_causes(recording: Recording) -> dict[Any, Any]:
    """Causes derived as main did: every PUBLISH decoded, all sorted by seq."""
    publishes = []
    for rc in recording.conns:
        decoder = MqttDecoder()
        for frame in rc.stream():
            if frame.summary.get("packet") not in ("CONNECT", "PUBLISH"):
                continue
            got = decoder.decode(frame.dir, frame.raw)
            if frame.summary.get("packet") == "PUBLISH" and got.body is not None:
                what = hash((frame.summary.get("topic"), got.body.payload))
                publishes.append((frame.seq, frame.dir, what, (rc.id, frame.index)))
    latest: dict[int, Any] = {}
    cause_of = {}
    for _seq, direction, what, ref in sorted(publishes, key=lambda p: p[0]):
        if direction is C2S:
            latest[what] = ref
        elif what in latest:
            cause_of[ref] = latest[what]
    return cause_of


@pytest.mark.parametrize("cassette", [*MQTT_CASSETTES, None], ids=lambda p: p and p.name)
def test_causes_equal_mains(cassette: Path | None, generated: Path):
    path = cassette or generated
    ctx = prepared(path)
    assert ctx.shared[Proto.MQTT].cause_of == reference_causes(ctx.recording)


EDGE_PACKETS = [
    publish(b"t", b"p"),
    publish(b"t", b"", flags=0b1011, pid=7),  # QoS 1, DUP, retain, empty payload
    publish(b"", b"x", flags=0b0100, pid=65535),  # QoS 2, empty topic
    publish(b"\xff\xfe", b"x"),  # topic not UTF-8: the decoder refuses it
    publish(b"t", b"x", flags=0b0110),  # QoS 3
    b"\x32\x03\x00\x01t",  # QoS 1 without its packet id
    b"\x30\x01\x00",  # topic length cut short
    b"\x30\x80\x01" + b"\x00\x01t" + b"p" * 125,  # a two-byte remaining length
    b"\x40\x02\x00\x09",
    b"\x50\x02\x01\x00",
    b"\x62\x02\x00\x01",
    b"\x60\x02\x00\x01",  # PUBREL with flags 0: refused
    b"\x70\x02\x00\x01",
    b"\x41\x02\x00\x01",  # PUBACK with a flag: refused
    b"\x40\x03\x00\x01",  # remaining length says 3, 2 bytes follow: decodes, not a fact
    b"\xc0\x00",
    b"\xd0\x00",
    b"\xc1\x00",  # PINGREQ with a flag: refused
    b"\xe0\x00",
    CONNECT,
    CONNACK,
]


def test_facts_agree_with_the_decoder():
    """Every packet of the MQTT cassettes (3.1.1 connections) and the edge cases above: where
    `_facts` reads one, the decoder reads it too, to the same fields and payload."""
    raws = list(EDGE_PACKETS)
    for path in MQTT_CASSETTES:
        recording = Recording.open(path, classify=client_kind)
        for rc in recording.conns:
            decoder = MqttDecoder()
            for frame in rc.stream():
                decoder.decode(frame.dir, frame.raw)
                if decoder.protocol_level != 5:  # type: ignore[attr-defined]
                    raws.append(frame.raw)
    read = 0
    for raw in raws:
        facts = mqtt_plan._facts(raw)
        got = MqttDecoder().decode(C2S, raw)
        if facts is None:
            continue
        read += 1
        fields, body = facts
        assert "error" not in got.summary, raw
        assert {k: got.summary.get(k) for k in fields} == fields, raw
        if fields["packet"] == "PUBLISH":
            assert got.body is not None and raw[body:] == got.body.payload
    assert read > 500
