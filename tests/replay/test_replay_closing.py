"""Closing handshakes are not behaviour: a client's close races the recording proxy, so a
recording may lack a graceful close the live client sends, or hold one it skips. Either way the
replay passes, under the strict profile too (`--strict`: unused recorded client frames fail).

The cassettes come from real brokers through `rrlab record`: each client run once with `--abrupt`
(it exits without closing: no DISCONNECT, no Channel/Connection.Close, no LeaveGroup) and once
without, so each side of the race is a real recording:

    rrlab record --amqp 15673=127.0.0.1:5672 --cassette tests/replay/amqp_cassettes/pika-abrupt \
      --write-root tests/replay --artifact out/bodies.txt -- \
      python tests/replay/amqp_pika_client.py out/bodies.txt --count 20 --delay 0 \
      --prefetch 100 --abrupt                                          (RabbitMQ 3.10)
    rrlab record --mqtt 11883=127.0.0.1:1883 \
      --cassette tests/replay/mqtt_cassettes/amqtt-{graceful,abrupt}-amqtt ... -- \
      python tests/replay/mqtt_amqtt_client.py out/close/payloads.txt --count 20 [--abrupt]
                                                                       (amqtt's broker)
    rrlab record --kafka 19092=127.0.0.1:9092 \
      --cassette tests/replay/kafka_cassettes/kafka-group-abrupt-apache ... -- \
      python tests/replay/kafka_batching_client.py --count 50 --group rrlab-close \
      --topic rrlab.close.group --out out/kafka-close/records.txt --abrupt (Apache Kafka 4.1)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .conftest import ROOT, assert_replays, fake_broker
from .test_replay_mqtt import RawClient, recorded_frames

REPLAY = ROOT / "tests" / "replay"
AMQP = REPLAY / "amqp_cassettes"
MQTT = REPLAY / "mqtt_cassettes"
KAFKA_CASSETTES = REPLAY / "kafka_cassettes"

PIKA = [sys.executable, str(REPLAY / "amqp_pika_client.py"), "out/bodies.txt"]
PIKA_ARGS = ["--count", "20", "--delay", "0", "--prefetch", "100"]
AMQTT = [sys.executable, str(REPLAY / "mqtt_amqtt_client.py"), "out/close/payloads.txt"]
AMQTT_ARGS = ["--count", "20"]
KAFKA_CLIENT = [sys.executable, str(REPLAY / "kafka_batching_client.py")]


def _closes(cassette: Path) -> list[str]:
    names = []
    for line in (cassette / "frames.jsonl").read_bytes().splitlines():
        frame = json.loads(line)
        summary = frame["summary"]
        name = summary.get("method") or summary.get("packet") or summary.get("api")
        if frame["dir"] != "c2s":
            continue
        if name in ("Channel.Close", "Connection.Close", "DISCONNECT", "LeaveGroup"):
            names.append(name)
    return names


# --- AMQP: Channel.Close / Connection.Close ----------------------------------------------------


def test_amqp_unrecorded_channel_and_connection_close_get_their_close_ok(tmp_path):
    """Recorded: pika exits without closing. Live: pika closes its channel, then the
    connection, each waiting for the broker's CloseOk (a miss, Close 541, before)."""
    assert _closes(AMQP / "pika-abrupt") == []
    for mode in ("transcript", "lookup"):
        served = assert_replays(
            AMQP / "pika-abrupt",
            [*PIKA, *PIKA_ARGS],
            ["out/bodies.txt"],
            tmp_path,
            "--strict",
            "--match",
            mode,
        )
        amqp = served.report["by_api"]["amqp"]
        assert amqp["Channel.Close"]["synthesized"] == 1
        assert amqp["Connection.Close"]["synthesized"] == 1
        assert served.report["totals"]["unused"] == 0


def test_amqp_recorded_closes_the_client_skipped_are_not_unused(tmp_path):
    """Recorded: pika closes gracefully (pika-acks). Live: pika exits without closing; the
    recorded Channel.Close and Connection.Close are not unused (strict passes)."""
    assert _closes(AMQP / "pika-acks") == ["Channel.Close", "Connection.Close"]
    served = assert_replays(
        AMQP / "pika-acks",
        [*PIKA, *PIKA_ARGS, "--abrupt"],
        ["out/bodies.txt"],
        tmp_path,
        "--strict",
    )
    assert served.report["totals"]["unused"] == 0, served.report["unused"]
    assert "Connection.Close" not in served.report["by_api"]["amqp"]


# --- MQTT: DISCONNECT and the acks racing the close ---------------------------------------------


def test_mqtt_unrecorded_disconnect_just_closes(tmp_path):
    """Recorded: amqtt's clients exit without DISCONNECT. Live: both disconnect."""
    assert _closes(MQTT / "amqtt-abrupt-amqtt") == []
    for mode in ("transcript", "lookup"):
        served = assert_replays(
            MQTT / "amqtt-abrupt-amqtt",
            [*AMQTT, *AMQTT_ARGS],
            ["out/close/payloads.txt"],
            tmp_path,
            "--strict",
            "--match",
            mode,
        )
        assert served.report["by_api"]["mqtt"]["DISCONNECT"]["synthesized"] == 2
        assert served.report["totals"]["unused"] == 0


def test_mqtt_recorded_disconnects_the_client_skipped_are_not_unused(tmp_path):
    """Recorded: both connections DISCONNECT. Live: the clients exit without it."""
    assert _closes(MQTT / "amqtt-graceful-amqtt") == ["DISCONNECT", "DISCONNECT"]
    served = assert_replays(
        MQTT / "amqtt-graceful-amqtt",
        [*AMQTT, *AMQTT_ARGS, "--abrupt"],
        ["out/close/payloads.txt"],
        tmp_path,
        "--strict",
    )
    assert served.report["totals"]["unused"] == 0, served.report["unused"]


def _frames(cassette: Path) -> dict[int, list[dict]]:
    by_conn: dict[int, list[dict]] = {}
    for frame in recorded_frames(cassette):
        by_conn.setdefault(frame["conn"], []).append(frame)
    return by_conn


def _c2s(frames: list[dict], packet: str) -> list[bytes]:
    return [f["bytes"] for f in frames if f["dir"] == "c2s" and f["summary"]["packet"] == packet]


def _raw_round_trip(tmp_path: Path, published: int, acked: list[int], mode: str) -> dict:
    """The graceful recording replayed by raw clients: the publisher sends its first
    `published` PUBLISHes, the subscriber acks the pushes at positions `acked`, then both
    close their sockets without DISCONNECT. The strict report."""
    cassette = MQTT / "amqtt-graceful-amqtt"
    frames = _frames(cassette)
    sub_conn, pub_conn = sorted(frames)
    with fake_broker(cassette, tmp_path, "--strict", "--match", mode) as served:
        sub, pub = RawClient(), RawClient()
        try:
            sub.send(_c2s(frames[sub_conn], "CONNECT")[0])
            sub.send(_c2s(frames[sub_conn], "SUBSCRIBE")[0])
            assert [p["packet"] for p in sub.read(2)] == ["CONNACK", "SUBACK"]
            pub.send(_c2s(frames[pub_conn], "CONNECT")[0])
            assert pub.read()[0]["packet"] == "CONNACK"
            for raw in _c2s(frames[pub_conn], "PUBLISH")[:published]:
                pub.send(raw)
                assert pub.read()[0]["packet"] == "PUBACK"
            pushes = sub.read(published)
            assert len(pushes) == published
            for i in acked:
                sub.send(b"\x40\x02" + pushes[i]["packet_id"].to_bytes(2, "big"))
            sub.send(b"\xc0\x00")  # PINGREQ: its answer proves the acks before it were read
            assert sub.read()[0]["packet"] == "PINGRESP"
        finally:
            pub.close()
            sub.close()
    return served.report


def test_mqtt_final_acks_the_client_closed_before_sending_are_not_unused(tmp_path):
    """All 20 messages delivered; the subscriber acks 18 and closes its socket: the last two
    acks raced the close (as DISCONNECT did), so strict passes."""
    for mode in ("transcript", "lookup"):
        report = _raw_round_trip(tmp_path / mode, 20, list(range(18)), mode)
        assert report["verdict"] == "ok", report["unused"]
        assert report["totals"]["unused"] == 0 and report["totals"]["missed"] == 0


def test_mqtt_a_skipped_ack_that_is_not_the_close_is_still_unused(tmp_path):
    """Narrow: an ack skipped while a later push was acked (lookup: in transcript order that
    is a miss), and the acks of pushes never sent (the publisher stopped after 10), stay unused
    and, being behaviour, are misses in every profile."""
    report = _raw_round_trip(tmp_path, 20, [*range(18), 19], "lookup")
    assert report["verdict"] == "miss" and report["never_sent"] == 1
    assert [(u["api"], u["summary"]["packet_id"]) for u in report["unused"]] == [("PUBACK", 19)]
    report = _raw_round_trip(tmp_path / "ten", 10, list(range(10)), "transcript")
    unused = [(u["api"], u["recorded_conn"]) for u in report["unused"]]
    assert unused.count(("PUBACK", 1)) == 10  # the subscriber's, of the 10 pushes never sent
    assert unused.count(("PUBLISH", 2)) == 10  # the publisher's own, not closing at all
    assert len(unused) == 20


# --- Kafka: LeaveGroup --------------------------------------------------------------------------


def test_kafka_unrecorded_leave_group_is_answered_without_error(tmp_path):
    """Recorded: a kafka-python group consumer exits without closing (no LeaveGroup). Live: it
    closes, committing and leaving its group; LeaveGroup gets a no-error answer (a miss with
    UNKNOWN_SERVER_ERROR before)."""
    cassette = KAFKA_CASSETTES / "kafka-group-abrupt-apache"
    assert _closes(cassette) == []
    argv = [*KAFKA_CLIENT, "--count", "50", "--group", "rrlab-close"]
    argv += ["--topic", "rrlab.close.group", "--out", "out/kafka-close/records.txt"]
    served = assert_replays(cassette, argv, ["out/kafka-close/records.txt"], tmp_path, "--strict")
    assert served.report["by_api"]["kafka"]["LeaveGroup"]["synthesized"] == 1
    assert served.report["totals"]["unused"] == 0


def test_kafka_recorded_leave_group_the_client_skipped_is_not_unused(tmp_path):
    """Recorded: the consumer leaves its group (kafka-batching-apache-group). Live: it exits
    without closing; the recorded LeaveGroup is not unused."""
    cassette = ROOT / "cassettes" / "kafka-batching-apache-group"
    assert _closes(cassette) == ["LeaveGroup"]
    argv = [*KAFKA_CLIENT, "--count", "200", "--group", "rrlab-batching"]
    argv += ["--topic", "rrlab.batching.group", "--out", "out/kafka-batching-group/records.txt"]
    served = assert_replays(
        cassette,
        [*argv, "--abrupt"],
        ["out/kafka-batching-group/records.txt"],
        tmp_path,
        "--strict",
    )
    assert served.report["totals"]["unused"] == 0, served.report["unused"]
