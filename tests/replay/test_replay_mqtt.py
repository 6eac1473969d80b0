"""MQTT replay: unmodified clients against `rrlab serve`, no broker anywhere.

The worker (amqtt, two connections with fixed client ids), Mosquitto's command-line clients
(libmosquitto: empty or broker-assigned client ids, 3.1.1 and 5, QoS 1 and 2, a slow publisher
whose PINGREQs come at wall-clock times), a raw client that picks its own packet ids and opens its
connections in another order than recorded, and changed clients that must fail with a diff
naming the changed field. Run inside a network namespace (the recorded ports are fixed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from rrlab.replayer.report import ReplayReport
from rrlab.rr.cassette import CassetteReader
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import client_kind, decoder_for
from rrlab.rr.protocols.mqtt import session as mqtt_replay
from rrlab.rr.protocols.mqtt.codec import (
    PINGRESP_BYTES,
    MqttFramer,
    encode_disconnect,
    encode_remaining_length,
    with_packet_id,
)
from rrlab.rr.protocols.mqtt.session import Causes, Plan
from rrlab.rr.replay.recording import Recording
from rrlab.rr.replay.session import (
    Action,
    Listener,
    Pace,
    PortMap,
    ReplayContext,
    ReplayOptions,
    Schedule,
    Send,
)

from .client_scenarios import SCENARIOS as CLIENT_SCENARIOS
from .conftest import ROOT, assert_replays, fake_broker, run_client
from .scenarios import SCENARIOS

MQTT_CASSETTES = ROOT / "tests" / "replay" / "mqtt_cassettes"
ROUND_TRIP = str(ROOT / "tests" / "replay" / "mqtt_mosquitto_round_trip.sh")
WORKER = next(s for s in SCENARIOS if s.name == "worker-mqtt-amqtt")


@dataclass(frozen=True)
class Case:
    """A cassette, the command it recorded (with its environment) and the files it wrote."""

    name: str
    path: Path
    argv: list[str]
    artifacts: list[str]
    env: dict[str, str] = field(default_factory=dict)
    needs: list[str] = field(default_factory=list)


def recorded_frames(cassette: Path) -> list[dict]:
    """Every frame of `cassette` as its line's object with its bytes (`bytes`), in any format."""
    with CassetteReader.open(cassette) as reader:
        return [f.to_dict() | {"bytes": f.raw} for f in reader.frames()]


def _mosquitto(name: str, **env: str) -> Case:
    out = f"out/{name}/output.txt"
    return Case(name, MQTT_CASSETTES / name, [ROUND_TRIP, out], [out], env, ["mosquitto_sub"])


MOSQUITTO_V311 = _mosquitto("mosquitto-clients-v311-amqtt", MQTT_COUNT="20")
MOSQUITTO_V5 = _mosquitto("mosquitto-clients-v5-mosquitto", MQTT_COUNT="20", MQTT_VERSION="mqttv5")
QOS2 = _mosquitto("mosquitto-clients-qos2-mosquitto", MQTT_COUNT="20", MQTT_QOS="2", MQTT_WAIT="20")
SLOW = _mosquitto(
    "mosquitto-clients-slow-amqtt", MQTT_COUNT="3", MQTT_PAUSE="6", MQTT_KEEPALIVE="5"
)

WORKER_CASE = Case(WORKER.name, WORKER.path, WORKER.argv, WORKER.artifacts)
CASES = [
    *(Case(s.name, s.path, s.argv, s.artifacts) for s in SCENARIOS if "mqtt" in s.name),
    *(
        Case(s.name, s.path, s.argv, s.artifacts, needs=s.needs)
        for s in CLIENT_SCENARIOS
        if "mqtt" in s.name
    ),
    MOSQUITTO_V311,
    MOSQUITTO_V5,
    QOS2,
]


def _skip_unless_ready(case: Case) -> None:
    """(Named before it failed instead of skipping: a skipped replay proves nothing.)"""
    assert (case.path / "cassette.json").exists(), (
        f"cassette {case.path} is missing: record it (tools/record-cassettes, "
        "tools/client-cassettes) or restore it from git"
    )
    missing = [exe for exe in case.needs if not shutil.which(exe)]
    assert not missing, f"{case.name} needs {missing}: install them (tools/ensure-system-packages)"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_replays_byte_identical_three_times_and_in_lookup_mode(case, tmp_path):
    _skip_unless_ready(case)
    for mode in ("transcript", "transcript", "transcript", "lookup"):
        served = assert_replays(
            case.path, case.argv, case.artifacts, tmp_path, "--match", mode, env=case.env
        )
        assert served.report["totals"]["unused"] == 0, served.report["unused"]
        assert served.report["connections"]["bound"] == served.report["cassette"]["connections"]


@pytest.mark.parametrize("case", [MOSQUITTO_V311, QOS2], ids=lambda c: c.name)
def test_recorded_pace(case, tmp_path):
    """Answers and pushes keep their recorded delays after the packet that released them."""
    _skip_unless_ready(case)
    assert_replays(
        case.path, case.argv, case.artifacts, tmp_path, "--pace", "recorded", env=case.env
    )


class ClockLink:
    """A live connection without a socket: what the session sends, on a clock the test moves."""

    def __init__(self, live_id: int, clock: Clock) -> None:
        self.live_id = live_id
        self.clock = clock
        self.sent = bytearray()

    def act(self, action: Action) -> None:
        """The session's actions: bytes kept, timers on the test's clock, closes ignored."""
        if isinstance(action, Send):
            self.sent += action.data
        elif isinstance(action, Schedule):
            self.clock.callLater(action.delay, action.timer.fire)


def _served_all_at_once(case: Case, pace: Pace) -> dict[int, list[bytes]]:
    """Every recorded client packet fed at once, in recorded order (one live session per
    recorded connection, as a busy client's packets arrive in one read), the clock then run
    out: the recorded server packets each connection got, in the order it got them."""
    recording = Recording.open(case.path, classify=client_kind)
    ctx = ReplayContext(recording, ReplayOptions(pace=pace), ReplayReport(), PortMap())
    mqtt_replay.prepare(ctx)
    clock = Clock()
    links: dict[int, ClockLink] = {}
    sessions: dict[int, mqtt_replay.Session] = {}
    for frame in CassetteReader.open(case.path).frames():
        if frame.dir is not Direction.C2S:
            continue
        if frame.conn not in sessions:
            port = recording.conn(frame.conn).listen_port
            links[frame.conn] = ClockLink(ctx.next_live_id(), clock)
            listener = Listener(Proto.MQTT, port, port)
            sessions[frame.conn] = mqtt_replay.Session(ctx, listener, links[frame.conn])
        sessions[frame.conn].on_frame(frame.raw)
    clock.advance(3600)
    assert ctx.report.miss_count == 0, [m.line() for m in ctx.report.misses]
    served = {}
    for conn, link in links.items():
        packets = [f.raw for f in MqttFramer(Direction.S2C, 1 << 20).feed(bytes(link.sent))]
        served[conn] = [p for p in packets if p != PINGRESP_BYTES]  # liveness: synthesized
    return served


@pytest.mark.parametrize("case", [*CASES, SLOW], ids=lambda c: c.name)
def test_recorded_pace_delays_but_never_reorders(case):
    """`--pace recorded` only adds each server packet's recorded delay: a connection gets the
    same packets in the same order as without it. A packet answered sooner in the recording
    (PUBREL 2 74 us after its PUBREC, PUBREL 1 919 us after its own, in the QoS 2 cassette)
    still waits for the one handed over before it, as a broker's socket would: else the client
    acks in another order than recorded, misses, and reconnects into CONNACK 3."""
    _skip_unless_ready(case)
    fast = _served_all_at_once(case, Pace.FAST)
    assert _served_all_at_once(case, Pace.RECORDED) == fast
    assert sum(map(len, fast.values())) > 0


def test_slow_publisher_pings_are_answered_and_recorded_pings_not_missed(tmp_path):
    """Minutes of silence between messages: both clients PINGREQ on their own clock; the
    replayer answers each one itself and the recorded PINGREQs are not reported unused."""
    _skip_unless_ready(SLOW)
    recorded_pings = sum(
        1 for line in (SLOW.path / "frames.jsonl").read_bytes().splitlines() if b"PINGREQ" in line
    )
    assert recorded_pings >= 2
    served = assert_replays(SLOW.path, SLOW.argv, SLOW.artifacts, tmp_path, env=SLOW.env)
    pings = served.report["by_api"]["mqtt"]["PINGREQ"]
    assert pings["synthesized"] >= 2 and pings["unused"] == 0 and pings["matched"] == 0
    assert served.report["totals"]["unused"] == 0


# --- changed clients fail loudly ------------------------------------------------------------------


def _replay_expecting_miss(case: Case, tmp_path: Path, argv: list[str], env: dict[str, str]):
    cwd = tmp_path / "changed"
    cwd.mkdir()
    with fake_broker(case.path, tmp_path) as served:
        client = run_client(argv, cwd, env={**case.env, **env}, timeout=60)
    assert served.exit_code == 1, served.stdout + served.stderr
    assert served.report["verdict"] == "miss"
    assert "MISS mqtt" in served.stderr
    return client, served


def test_worker_with_another_seed_fails_naming_the_topic(tmp_path):
    _skip_unless_ready(WORKER_CASE)
    argv = list(WORKER.argv)
    argv[argv.index("--seed") + 1] = "2"
    argv += ["--timeout", "3"]
    client, served = _replay_expecting_miss(WORKER_CASE, tmp_path, argv, {})
    assert client.returncode != 0
    first = served.report["misses"][0]
    assert first["api"] == "SUBSCRIBE"
    assert first["diff"] == [
        'SUBSCRIBE subscriptions[0].topic: recorded "rrlab.worker.1" live "rrlab.worker.2"'
    ]


@pytest.mark.parametrize("case", [MOSQUITTO_V311, MOSQUITTO_V5], ids=lambda c: c.name)
def test_changed_payload_field_fails_naming_it(case, tmp_path):
    """One payload field changed (seed 1 -> 2): the first PUBLISH misses with a JSON diff."""
    _skip_unless_ready(case)
    client, served = _replay_expecting_miss(
        case, tmp_path, case.argv, {"MQTT_SEED": "2", "MQTT_WAIT": "3"}
    )
    assert client.returncode != 0
    publish = next(m for m in served.report["misses"] if m["api"] == "PUBLISH")
    assert publish["diff"] == [
        "PUBLISH topic rrlab/replay/mosquitto payload.seed: recorded 1 live 2"
    ]
    assert publish["live"]["payload"] == {"n": 0, "seed": 2, "sq": 0}
    assert publish["closest"]["payload"] == {"n": 0, "seed": 1, "sq": 0}


# --- a raw client: its own packet ids, connections in another order, pushes gated ---------------


class RawClient:
    """A bare MQTT connection: send packets, read whole packets back (with a deadline)."""

    def __init__(self, port: int = 11883) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.framer = MqttFramer(Direction.S2C, 1 << 20)
        self.decoder = decoder_for("mqtt")
        self.inbox: list[bytes] = []

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def read(self, n: int = 1, wait: float = 5.0) -> list[dict]:
        """The next `n` packets' summaries (fewer if none comes within `wait` seconds)."""
        deadline = time.monotonic() + wait
        while len(self.inbox) < n and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            self.inbox += [f.raw for f in self.framer.feed(data)]
        got, self.inbox = self.inbox[:n], self.inbox[n:]
        return [self.decoder.decode(Direction.S2C, raw).summary for raw in got]

    def close(self) -> None:
        self.sock.close()


def _worker_frames() -> dict[int, list[dict]]:
    by_conn: dict[int, list[dict]] = {}
    for frame in recorded_frames(WORKER.path):
        by_conn.setdefault(frame["conn"], []).append(frame)
    return by_conn


def _c2s(frames: list[dict], packet: str) -> list[bytes]:
    return [f["bytes"] for f in frames if f["dir"] == "c2s" and f["summary"]["packet"] == packet]


def test_raw_client_ids_order_and_gated_pushes(tmp_path):
    """Publisher connects first (recorded second), binds by client id; the subscriber's SUBSCRIBE
    and the publisher's PUBLISH carry packet ids of their own, echoed in SUBACK/PUBACK; no push
    reaches the subscriber before the publisher sent that message."""
    _skip_unless_ready(WORKER_CASE)
    frames = _worker_frames()
    sub_conn, pub_conn = (
        next(c for c, fs in frames.items() if fs[0]["summary"]["client_id"].endswith(role))
        for role in ("-sub", "-pub")
    )
    with fake_broker(WORKER.path, tmp_path) as served:
        pub, sub = RawClient(), RawClient()
        try:
            pub.send(_c2s(frames[pub_conn], "CONNECT")[0])
            assert pub.read()[0]["packet"] == "CONNACK"
            sub.send(_c2s(frames[sub_conn], "CONNECT")[0])
            assert sub.read()[0]["packet"] == "CONNACK"
            sub.send(with_packet_id(_c2s(frames[sub_conn], "SUBSCRIBE")[0], 777))
            suback = sub.read()[0]
            assert suback["packet"] == "SUBACK" and suback["packet_id"] == 777
            assert sub.read(wait=0.5) == []  # nothing published yet: no push
            first = _c2s(frames[pub_conn], "PUBLISH")[0]
            pub.send(with_packet_id(first, 4000))
            assert pub.read()[0] == {"packet": "PUBACK", "packet_id": 4000}
            push = sub.read()[0]
            sent = decoder_for("mqtt").decode(Direction.C2S, first).summary
            assert push["packet"] == "PUBLISH" and push["payload_size"] == sent["payload_size"]
            assert sub.read(wait=0.5) == []  # the next push waits for this one's PUBACK
            pub.send(b"\xc0\x00")  # PINGREQ: answered, never consumes the cassette
            assert pub.read() == [{"packet": "PINGRESP"}]
            pub.send(encode_disconnect())  # the recorded publisher went on publishing
            assert pub.read(wait=5) == []  # a graceful close: the fake broker closes too
        finally:
            pub.close()
            sub.close()
    (note,) = served.report["notes"]  # why the subscriber would have waited for its pushes
    assert "closed with" in note and "waits for the client PUBLISH seq" in note, note
    # closing early is no live miss; what it skipped is unused, its PUBLISHes never sent misses
    assert served.report["totals"]["missed"] == 0
    assert {m["api"] for m in served.report["misses"]} <= {"PUBLISH", "PUBACK"}
    mqtt = served.report["by_api"]["mqtt"]
    assert mqtt["DISCONNECT"]["synthesized"] == 1 and mqtt["PUBLISH"]["unused"] == 199
    assert mqtt["PINGREQ"]["synthesized"] == 1


def test_more_connections_than_recorded_are_refused(tmp_path):
    _skip_unless_ready(MOSQUITTO_V311)
    connect = next(
        f["bytes"]
        for f in recorded_frames(MOSQUITTO_V311.path)
        if f["summary"].get("packet") == "CONNECT"
    )
    with fake_broker(MOSQUITTO_V311.path, tmp_path) as served:
        clients = [RawClient() for _ in range(3)]
        answers = []
        for client in clients:
            client.send(connect)
            answers.append(client.read()[0])
        for client in clients:
            client.close()
    assert [a.get("return_code") for a in answers] == [0, 0, 3]  # 3: server unavailable
    assert served.exit_code == 1
    assert "more connections than recorded" in served.report["misses"][0]["reason"]


# --- the plan of a recorded connection (no sockets) ----------------------------------------------


ANSWERS = {1: "PUBACK", 2: "PUBREC"}  # what answers a client PUBLISH of that QoS


@pytest.mark.parametrize("case", [WORKER_CASE, MOSQUITTO_V5, QOS2, SLOW], ids=lambda c: c.name)
def test_plan_pairs_answers_by_packet_id_and_causes_cross_connections(case):
    """Every recorded server packet but PINGRESP goes out exactly once, as the answer to the
    client packet with its packet id (PUBLISH -> PUBACK/PUBREC, PUBREL -> PUBCOMP, a push's
    PUBREC -> PUBREL) or released after a client packet; each push has its cause."""
    _skip_unless_ready(case)
    recording = Recording.open(case.path, classify=client_kind)
    causes = Causes(recording)
    for rc in recording.conns:
        plan = Plan.build(rc, ())
        frames = rc.frames
        for index in plan.order:
            summary = frames[index].summary
            want = {"PUBREL": "PUBCOMP", "PUBREC": "PUBREL"}.get(summary["packet"])
            if summary["packet"] == "PUBLISH":
                want = ANSWERS.get(summary["qos"])
            if want is not None:
                (answer,) = plan.answers[index]
                assert frames[answer].summary["packet"] == want
                assert frames[answer].summary["packet_id"] == summary["packet_id"]
        served = [i for group in (*plan.answers.values(), *plan.releases.values()) for i in group]
        s2c = [f.index for f in frames if f.dir is Direction.S2C]
        pingresps = [i for i in s2c if frames[i].summary["packet"] == "PINGRESP"]
        assert sorted(served) == sorted(set(s2c) - set(pingresps))
        assert bool(pingresps) == (case is SLOW)
        for group in plan.releases.values():
            for i in group:
                if frames[i].summary["packet"] == "PUBLISH":
                    cause_conn, cause_index = causes.cause_of[(rc.id, i)]
                    cause = recording.conn(cause_conn).frames[cause_index]
                    assert cause.dir is Direction.C2S and cause.seq < frames[i].seq
                    assert cause.summary["topic"] == frames[i].summary["topic"]


@pytest.mark.parametrize("mode", ["transcript", "lookup"])
def test_look_alike_connections_opened_in_another_order(mode, tmp_path):
    """Mosquitto's clients send the same CONNECT (no client id): a publisher connecting first
    gets its CONNACK at once and is bound to the recorded publisher by its first PUBLISH."""
    _skip_unless_ready(MOSQUITTO_V311)
    frames: dict[int, list[dict]] = {}
    for frame in recorded_frames(MOSQUITTO_V311.path):
        frames.setdefault(frame["conn"], []).append(frame)
    (sub_conn,) = [c for c, fs in frames.items() if _c2s(fs, "SUBSCRIBE")]
    (pub_conn,) = [c for c, fs in frames.items() if _c2s(fs, "PUBLISH")]
    assert sub_conn < pub_conn  # recorded: subscriber first
    assert _c2s(frames[sub_conn], "CONNECT") == _c2s(frames[pub_conn], "CONNECT")
    with fake_broker(MOSQUITTO_V311.path, tmp_path, "--match", mode) as served:
        pub, sub = RawClient(), RawClient()
        try:
            for client in (pub, sub):
                client.send(_c2s(frames[pub_conn], "CONNECT")[0])
                assert client.read()[0]["packet"] == "CONNACK"
            pub.send(with_packet_id(_c2s(frames[pub_conn], "PUBLISH")[0], 9))
            assert pub.read() == [{"packet": "PUBACK", "packet_id": 9}]
            sub.send(_c2s(frames[sub_conn], "SUBSCRIBE")[0])
            suback, push = sub.read(2)
            assert suback["packet"] == "SUBACK" and push["packet"] == "PUBLISH"
        finally:
            pub.close()
            sub.close()
    # bound right: no live miss (what this short run never sent fails it: behaviour)
    assert served.report["totals"]["missed"] == 0, served.stderr
    assert served.report["connections"]["bound"] == 2


def test_v5_receive_maximum_and_disconnect_on_miss(tmp_path):
    """A v5 subscriber allowing one unacknowledged QoS 1 message at a time gets the second
    push only after its PUBACK for the first, although all three were published; a changed
    PUBLISH then gets DISCONNECT 0x83 whose reason string names the changed field."""
    _skip_unless_ready(MOSQUITTO_V5)
    frames: dict[int, list[dict]] = {}
    for frame in recorded_frames(MOSQUITTO_V5.path):
        frames.setdefault(frame["conn"], []).append(frame)
    (sub_conn,) = [c for c, fs in frames.items() if _c2s(fs, "SUBSCRIBE")]
    (pub_conn,) = [c for c, fs in frames.items() if _c2s(fs, "PUBLISH")]
    connect = _c2s(frames[sub_conn], "CONNECT")[0]
    assert connect.endswith(b"\x03\x21\x00\x14\x00\x00")  # properties: Receive Maximum 20
    one_at_a_time = connect[:-4] + b"\x00\x01\x00\x00"
    with fake_broker(MOSQUITTO_V5.path, tmp_path) as served:
        sub, pub = RawClient(), RawClient()
        sub.decoder.protocol_level = 5  # type: ignore[attr-defined]
        pub.decoder.protocol_level = 5  # type: ignore[attr-defined]
        try:
            sub.send(one_at_a_time)
            assert sub.read()[0]["packet"] == "CONNACK"
            sub.send(_c2s(frames[sub_conn], "SUBSCRIBE")[0])
            assert sub.read()[0]["packet"] == "SUBACK"
            pub.send(_c2s(frames[pub_conn], "CONNECT")[0])
            assert pub.read()[0]["packet"] == "CONNACK"
            for raw in _c2s(frames[pub_conn], "PUBLISH")[:3]:
                pub.send(raw)
            assert [p["packet"] for p in pub.read(3)] == ["PUBACK"] * 3
            (first,) = sub.read(5, wait=1.0)
            assert first["packet"] == "PUBLISH"
            sub.send(b"\x40\x02" + first["packet_id"].to_bytes(2, "big"))
            (second,) = sub.read(5, wait=1.0)
            assert second["packet"] == "PUBLISH" and second["packet_id"] != first["packet_id"]
            changed = _c2s(frames[pub_conn], "PUBLISH")[3].replace(b'"seed":1', b'"seed":7')
            pub.send(changed)  # a miss: a v5 client is told why before the close
            (disconnect,) = pub.read(2)
            assert disconnect["packet"] == "DISCONNECT" and disconnect["reason_code"] == 0x83
            reason = disconnect["properties"]["reason_string"]
            assert "PUBLISH" in reason and "payload.seed: recorded 1 live 7" in reason, reason
        finally:
            sub.close()
            pub.close()
    live = [m["api"] for m in served.report["misses"] if "never sent" not in m["reason"]]
    assert live == ["PUBLISH"]  # and what the changed publisher never sent after it


def test_side_by_side_replays_on_moved_ports(tmp_path):
    """Two fake brokers of one cassette at once (--port-offset), each client on its own port,
    both running at the same time."""
    case = MOSQUITTO_V311
    _skip_unless_ready(case)
    with contextlib.ExitStack() as stack:
        runs = []
        for offset in (1000, 2000):
            served = stack.enter_context(fake_broker(case.path, tmp_path, offset=offset))
            cwd = tmp_path / f"side-{offset}"
            cwd.mkdir()
            env = {**os.environ, **case.env, "MQTT_PORT": str(11883 + offset)}
            proc = subprocess.Popen(case.argv, cwd=cwd, env=env, stderr=subprocess.PIPE)
            runs.append((served, proc, cwd))
        for _served, proc, _cwd in runs:
            assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    recorded = (case.path / "artifacts" / case.artifacts[0]).read_bytes()
    for served, _proc, cwd in runs:
        assert served.exit_code == 0, served.stderr
        assert served.report["totals"]["missed"] == 0
        assert (cwd / case.artifacts[0]).read_bytes() == recorded
        assert f"listening mqtt 127.0.0.1:{11883 + served.offset}" in served.stdout


def test_ignore_field_lets_a_changed_payload_field_pass(tmp_path):
    """`--ignore-field seed` (a user's own nondeterministic field): the seed-2 publisher now
    matches the seed-1 recording; everything else in the payload still compares. Subscribers
    get the recorded messages (seed 1): the fake broker serves the cassette."""
    case = MOSQUITTO_V311
    _skip_unless_ready(case)
    cwd = tmp_path / "ignored"
    cwd.mkdir()
    env = {**case.env, "MQTT_SEED": "2", "MQTT_WAIT": "10"}
    with fake_broker(case.path, tmp_path, "--ignore-field", "seed") as served:
        client = run_client(case.argv, cwd, env=env, timeout=60)
    assert client.returncode == 0, client.stderr
    assert served.exit_code == 0 and served.report["totals"]["missed"] == 0, served.stderr
    recorded = (case.path / "artifacts" / case.artifacts[0]).read_bytes()
    assert (cwd / case.artifacts[0]).read_bytes() == recorded


def _connect_311(client_id: str, keep_alive: int = 59) -> bytes:
    def text(value: str) -> bytes:
        return len(value.encode()).to_bytes(2, "big") + value.encode()

    body = text("MQTT") + bytes([4, 0x02]) + keep_alive.to_bytes(2, "big") + text(client_id)
    return bytes([0x10]) + encode_remaining_length(len(body)) + body


def test_random_client_ids_bind_by_what_the_connection_does(tmp_path):
    """The worker's two connections replayed with random client ids (and another keep-alive),
    publisher first: neither id matches, so each binds by its first packet."""
    _skip_unless_ready(WORKER_CASE)
    frames = _worker_frames()
    sub_conn, pub_conn = (
        next(c for c, fs in frames.items() if fs[0]["summary"]["client_id"].endswith(role))
        for role in ("-sub", "-pub")
    )
    with fake_broker(WORKER.path, tmp_path) as served:
        pub, sub = RawClient(), RawClient()
        try:
            pub.send(_connect_311("mosq-Q1x8Zr", keep_alive=10))
            sub.send(_connect_311("mosq-7LpA0c", keep_alive=10))
            assert pub.read()[0]["packet"] == sub.read()[0]["packet"] == "CONNACK"
            first = _c2s(frames[pub_conn], "PUBLISH")[0]
            pub.send(first)
            assert pub.read()[0]["packet"] == "PUBACK"
            sub.send(_c2s(frames[sub_conn], "SUBSCRIBE")[0])
            suback, push = sub.read(2)
            assert suback["packet"] == "SUBACK" and push["packet"] == "PUBLISH"
        finally:
            pub.close()
            sub.close()
    assert served.report["totals"]["missed"] == 0, served.report["misses"]
    assert served.report["connections"]["bound"] == 2
