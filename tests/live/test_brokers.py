"""Real brokers through `brokers.up/down/status`, on side ports and a private state dir.

The shared brokers on 9092/5672/1883 belong to everyone working in this tree, so these tests
never touch them: RRLAB_STATE_DIR points to a temp dir and every broker runs on a 2xxxx port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika
import pytest

from rrlab import brokers
from rrlab.brokers import BrokerError, control, probes, process, state
from rrlab.brokers.session import LiveBrokers

pytestmark = pytest.mark.live

PORTS = {"kafka": 29392, "amqp": 25873, "mqtt": 21893}


@pytest.fixture
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("RRLAB_STATE_DIR", str(tmp_path / "rrlab"))
    yield tmp_path / "rrlab"
    control.down(out=None)  # whatever a failing test left behind, in this private dir only


def _family_pids(names) -> list[int]:
    pids = []
    for name in names:
        for proc in state.load(name)["procs"].values():
            pids += process.family(proc["pid"])
    return pids


def _port_closed(port: int) -> bool:
    return not probes.port_open("127.0.0.1", port)


@pytest.mark.timeout(180)
def test_up_status_idempotent_down(private_state, capsys):
    first = control.up(ports=PORTS, kafka_impl="tansu", timeout=90)
    assert set(first) == {"kafka", "amqp", "mqtt"}
    assert all(info["started"] and info["ready_s"] > 0 for info in first.values())
    assert (first["kafka"]["impl"], first["amqp"]["impl"], first["mqtt"]["impl"]) == (
        "tansu",
        "rabbitmq",
        "amqtt",
    )
    printed = capsys.readouterr().out
    assert "kafka (tansu) ready on 127.0.0.1:29392 in" in printed

    rows = {row["broker"]: row for row in control.status()}
    assert {name: row["state"] for name, row in rows.items()} == dict.fromkeys(PORTS, "ready")
    assert all(os.path.exists(row["log"]) for row in rows.values())

    cli = _rrlab("brokers", "status")
    assert cli.returncode == 0, cli.stderr
    assert [line.split()[4] for line in cli.stdout.splitlines()[1:]] == ["ready"] * 3

    again = control.up(ports=PORTS)  # kafka_impl auto: takes the running Tansu as it is
    assert not any(info["started"] for info in again.values())
    assert {n: i["pid"] for n, i in again.items()} == {n: i["pid"] for n, i in first.items()}
    assert again["kafka"]["impl"] == "tansu"
    printed = capsys.readouterr().out
    assert "kafka (tansu) already running" in printed and "auto chose" not in printed

    # the AMQP fixture credentials and vhost work end to end
    url = first["amqp"]["address"]
    assert url.startswith("amqp://rrlab:rrlab-secret-pw@127.0.0.1:25873/rrlab")
    conn = pika.BlockingConnection(pika.URLParameters(url))
    channel = conn.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"hello")
    assert channel.basic_get(queue, auto_ack=True)[2] == b"hello"
    conn.close()

    pids = _family_pids(PORTS)
    assert len(pids) >= 4  # tansu, rabbitmq-server + beam (+ erl_child_setup), amqtt
    assert sorted(control.down()) == ["amqp", "kafka", "mqtt"]
    assert [pid for pid in pids if process.alive(pid)] == []
    assert all(_port_closed(port) for port in PORTS.values())
    kept = [p for p in (private_state / "brokers").rglob("*") if p.is_file() and p.name != ".lock"]
    assert sorted(map(str, kept)) == sorted(first[n]["log"] for n in first)  # logs only, until up
    # down here; a broker's default port may still be held by the session's live brokers
    # (tests/conftest.py live_brokers), which status names as "down; port taken by ..."
    assert [row["state"].split(";")[0] for row in control.status()] == ["down"] * 3


@pytest.mark.timeout(60)
def test_wrong_impl_and_foreign_port_are_refused(private_state):
    control.up(["kafka"], kafka_impl="tansu", ports=PORTS, out=None)
    with pytest.raises(BrokerError, match="running as tansu.*rrlab brokers down kafka"):
        control.up(["kafka"], kafka_impl="apache", ports=PORTS, out=None)
    kept = control.up(["kafka"], kafka_impl="auto", ports=PORTS, out=None)["kafka"]
    assert (kept["impl"], kept["started"]) == ("tansu", False)  # auto: whichever rrlab runs
    with socket.create_server(("127.0.0.1", PORTS["mqtt"])):
        # the holder is this process: named by its pid (its command line is not `pytest...`
        # under a pytest-xdist worker)
        with pytest.raises(
            BrokerError, match=rf"127.0.0.1:21893 for mqtt is taken by pid {os.getpid()} \("
        ):
            control.up(["mqtt"], ports=PORTS, out=None)
    assert state.load("mqtt") is None
    with pytest.raises(BrokerError, match="unknown broker 'redis'"):
        control.up(["redis"])


@pytest.mark.timeout(60)
def test_timeout_names_the_log_and_stops_the_broker(private_state):
    with pytest.raises(BrokerError, match=r"amqp \(rabbitmq\) not ready after .*rabbitmq\.log"):
        control.up(["amqp"], ports=PORTS, timeout=0.2, out=None)
    record = state.load("amqp")
    assert os.path.exists(record["log"])
    assert not control._running(record)
    assert [row["state"] for row in control.status(["amqp"])] == ["down"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("impl", ["amqtt", "mosquitto"])
def test_mqtt_password_mode(private_state, impl):
    control.up(["mqtt"], mqtt_impl=impl, ports=PORTS, mqtt_users={"alice": "pw-1"}, out=None)
    port = PORTS["mqtt"]
    assert "refused" in probes.mqtt("127.0.0.1", port)
    assert "refused" in probes.mqtt("127.0.0.1", port, "alice", "wrong")
    assert probes.mqtt("127.0.0.1", port, "alice", "pw-1") is None
    assert control.down(["mqtt"], out=None) == ["mqtt"]


@pytest.mark.timeout(120)
def test_session_stops_only_what_it_started(private_state, monkeypatch):
    monkeypatch.delenv("RRLAB_KEEP_BROKERS", raising=False)  # this test is about stopping
    control.up(["mqtt"], ports=PORTS, out=None)  # "someone else's" broker
    session = LiveBrokers(ports=PORTS)
    addrs = session("kafka", "mqtt")
    assert addrs == {"kafka": "127.0.0.1:29392", "mqtt": "127.0.0.1:21893"}
    addrs = session("mqtt", mqtt_impl="mosquitto")  # switch: stops amqtt first
    assert state.load("mqtt")["impl"] == "mosquitto"
    session.close()
    assert state.load("kafka") is None  # started by the session: stopped
    assert state.load("mqtt")["impl"] == "amqtt"  # replaced: restored
    assert probes.mqtt("127.0.0.1", PORTS["mqtt"]) is None


@pytest.mark.apache
@pytest.mark.timeout(300)
def test_apache_kafka_roundtrip(private_state):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    info = control.up(["kafka"], kafka_impl="apache", ports=PORTS, timeout=240)["kafka"]
    assert info["impl"] == "apache" and info["started"]
    bootstrap = f"127.0.0.1:{PORTS['kafka']}"
    topic = f"rrlab-rt-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(5):
        producer.send(topic, key=b"k%d" % i, value=b"v%d" % i)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, 0)])
    got, deadline = [], time.monotonic() + 30
    while len(got) < 5 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got += [(r.key, r.value) for r in records]
    consumer.close()
    assert got == [(b"k%d" % i, b"v%d" % i) for i in range(5)]
    pids = _family_pids(["kafka"])
    assert control.down(["kafka"], out=None) == ["kafka"]
    assert [pid for pid in pids if process.alive(pid)] == []
    assert _port_closed(PORTS["kafka"]) and _port_closed(PORTS["kafka"] + 1)


@pytest.mark.apache
@pytest.mark.timeout(300)
def test_default_kafka_here_is_apache_and_a_group_joins_at_once(private_state, capsys):
    """`up` with no impl on this machine (java and mvn installed): Apache Kafka, so a
    kafka-python consumer group (its default 45 s session timeout, as the worker's
    --kafka-group) joins at once rather than after Tansu's ~23 s. The join time is printed,
    not asserted (a loaded machine)."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    info = control.up(["kafka"], ports=PORTS, timeout=240)["kafka"]
    assert (info["impl"], info["started"]) == ("apache", True)
    assert "kafka: auto chose apache (java and mvn found;" in capsys.readouterr().out
    assert [row["impl"] for row in control.status(["kafka"])] == ["apache"]
    bootstrap = f"127.0.0.1:{PORTS['kafka']}"
    topic = f"rrlab-group-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, b"v0")
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id="rrlab-join", auto_offset_reset="earliest"
    )
    began, got = time.monotonic(), []
    while not got and time.monotonic() - began < 120:
        for records in consumer.poll(timeout_ms=500).values():
            got += [r.value for r in records]
    joined_s = time.monotonic() - began
    consumer.close()
    with capsys.disabled():
        print(f"\n[kafka-python group joined and read on the default Kafka in {joined_s:.1f} s]")
    assert got == [b"v0"]


@pytest.mark.timeout(60)
def test_start_kafka_advertises_another_port(tmp_path):
    from kio.schema.metadata.v1.request import MetadataRequest

    record = brokers.start_kafka(tmp_path / "tansu", port=29492, advertised_port=29493)
    try:
        assert record["ready_s"] is not None and record["impl"] == "tansu"
        meta = probes.kafka_call("127.0.0.1", 29492, MetadataRequest(topics=()))
        assert [(b.host, b.port) for b in meta.brokers] == [("127.0.0.1", 29493)]
    finally:
        assert brokers.stop(record)
    assert _port_closed(29492)


def _rrlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "rrlab"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ,
    )


def test_cli_usage_errors_exit_2(private_state):
    bad = _rrlab("brokers", "up", "redis")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert bad.stderr.strip() == (
        "rrlab brokers: unknown broker 'redis': choose from kafka, amqp, mqtt"
    )
    impl = _rrlab("brokers", "up", "--kafka-impl", "zookeeper")
    assert impl.returncode == 2, impl.stdout + impl.stderr
    down = _rrlab("brokers", "down")
    assert down.returncode == 0 and "kafka: not started by rrlab" in down.stdout, down.stderr


@pytest.mark.timeout(60)
def test_rabbitmq_brings_and_takes_its_own_epmd(private_state, monkeypatch):
    """On a fresh machine no epmd runs: we start one on loopback and `down` stops it too."""
    from rrlab.brokers import rabbitmq

    monkeypatch.setattr(rabbitmq, "EPMD_PORT", 24469)
    assert _port_closed(24469)
    control.up(["amqp"], ports=PORTS, out=None)
    epmd = state.load("amqp")["procs"]["epmd"]
    assert process.alive(epmd["pid"], epmd["start"])
    pids = _family_pids(["amqp"])
    assert control.down(["amqp"], out=None) == ["amqp"]
    assert [pid for pid in pids if process.alive(pid)] == []
    assert _port_closed(24469) and _port_closed(PORTS["amqp"])
