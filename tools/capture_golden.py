"""Capture golden wire streams from real brokers for the codec tests (a dev tool, not product).

A tiny threaded TCP relay sits between a real client and a real broker and saves each
connection's bytes, per direction, as tests/fixtures/golden/<name>/conn-N.{c2s,s2c}.bin
(N in accept order). Scenarios drive real clients through it:

    kafka  kafka-python: create topic, produce (acks=1 and acks=0), consume by assignment.
           A private Tansu listens on 39192 and advertises the relay (39195), so the relay
           sees every connection, not only bootstrap. `kafka-apache`: the same against a
           private Apache Kafka (KRaft, jars from the brokers cache).
    amqp   pika: publish with confirms and consume, with the broker fixture's credentials.
    mqtt   amqtt: QoS 1 subscribe + publish, against a private password-protected amqtt
           broker (31884), so CONNECT carries a password the redaction tests must remove.

Usage: .venv/bin/python tools/capture_golden.py [kafka] [amqp] [mqtt] [--out DIR]
Needs `rrlab brokers up amqp` for amqp; kafka and mqtt start (and stop) their own brokers.
The streams hold fixture credentials only (never a real secret): the golden tests check that
redaction removes them.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
GOLDEN = ROOT / "tests" / "fixtures" / "golden"
KAFKA_BROKER_PORT, KAFKA_RELAY_PORT = 39192, 39195
AMQP_RELAY_PORT = 35673
MQTT_BROKER_PORT, MQTT_RELAY_PORT = 31884, 31883
MQTT_USER, MQTT_PASSWORD = "rrlab", "rrlab-mqtt-pw"  # fixture credentials of the private broker


class Relay:
    """Forwards loopback connections to one upstream and keeps every byte, per direction."""

    def __init__(self, listen_port: int, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.server = socket.create_server((HOST, listen_port))
        self.streams: list[dict[str, bytearray]] = []
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed by stop()
            upstream = socket.create_connection(self.upstream)
            stream = {"c2s": bytearray(), "s2c": bytearray()}
            self.streams.append(stream)
            for src, dst, key in ((client, upstream, "c2s"), (upstream, client, "s2c")):
                t = threading.Thread(target=_pump, args=(src, dst, stream[key]), daemon=True)
                t.start()
                self._threads.append(t)

    def stop(self, grace: float = 5.0) -> list[dict[str, bytearray]]:
        """Stop accepting and wait for the open connections to finish."""
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self.server.close()
        self._accepting.join(grace)
        deadline = time.monotonic() + grace
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return self.streams


def _pump(src: socket.socket, dst: socket.socket, sink: bytearray) -> None:
    try:
        while data := src.recv(65536):
            sink += data
            dst.sendall(data)
    except OSError:
        pass
    for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
        try:
            sock.shutdown(how)
        except OSError:
            pass


def save(name: str, streams: list[dict[str, bytearray]], out: Path) -> None:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("conn-*.bin"):
        old.unlink()
    for n, stream in enumerate(streams):
        for direction, data in stream.items():
            (folder / f"conn-{n}.{direction}.bin").write_bytes(bytes(data))
    sizes = [len(s["c2s"]) + len(s["s2c"]) for s in streams]
    print(f"{name}: {len(streams)} connections, {sum(sizes)} bytes -> {folder}")


def capture_kafka(out: Path, impl: str = "tansu") -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    from rrlab import brokers

    _wait_port_free(KAFKA_BROKER_PORT, timeout=1)  # refuse to test against a stray broker
    with tempfile.TemporaryDirectory(prefix="rrlab-golden-kafka-") as home:
        record = brokers.start_kafka(
            Path(home),
            port=KAFKA_BROKER_PORT,
            advertised_port=KAFKA_RELAY_PORT,
            impl=impl,
            timeout=180,
        )
        relay = Relay(KAFKA_RELAY_PORT, (HOST, KAFKA_BROKER_PORT))
        try:
            bootstrap = f"{HOST}:{KAFKA_RELAY_PORT}"
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="golden-admin")
            admin.create_topics([NewTopic("golden", num_partitions=1, replication_factor=1)])
            admin.close()
            producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="golden-p", acks=1)
            for i in range(3):
                producer.send(
                    "golden",
                    key=f"k{i}".encode(),
                    value=f'{{"n":{i}}}'.encode(),
                    headers=[("h", f"v{i}".encode())],
                    partition=0,
                )
            producer.flush()
            producer.close()
            fire = KafkaProducer(bootstrap_servers=bootstrap, client_id="golden-p0", acks=0)
            fire.send("golden", key=b"k3", value=b'{"n":3}', partition=0)
            fire.flush()
            fire.close()
            consumer = KafkaConsumer(
                bootstrap_servers=bootstrap, client_id="golden-c", enable_auto_commit=False
            )
            tp = TopicPartition("golden", 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            got, deadline = 0, time.monotonic() + 30
            while got < 4 and time.monotonic() < deadline:
                got += sum(len(v) for v in consumer.poll(timeout_ms=500).values())
            consumer.close()
            if got < 4:
                raise SystemExit(f"kafka: consumed {got} of 4 records")
        finally:
            streams = relay.stop()
            brokers.stop(record)
            _wait_port_free(KAFKA_BROKER_PORT)
    save(f"kafka-{impl}", streams, out)


def _wait_port_free(port: int, timeout: float = 60.0) -> None:
    """A stopped JVM may hold its port a while; the next scenario must not find it there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) != 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"port {port} still answers {timeout:.0f}s after its broker was stopped")


def capture_amqp(out: Path) -> None:
    import pika

    from rrlab import brokers

    relay = Relay(AMQP_RELAY_PORT, (HOST, 5672))
    try:
        params = pika.ConnectionParameters(
            host=HOST,
            port=AMQP_RELAY_PORT,
            virtual_host=brokers.AMQP_VHOST,
            credentials=pika.PlainCredentials(brokers.AMQP_USER, brokers.AMQP_PASSWORD),
            heartbeat=0,
        )
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("golden", durable=False, auto_delete=False)
        ch.queue_purge("golden")
        for i in range(3):
            ch.basic_publish(
                "",
                "golden",
                f'{{"n":{i}}}'.encode(),
                pika.BasicProperties(
                    content_type="application/json", delivery_mode=2, headers={"i": i}
                ),
            )
        got = []
        for method, _props, body in ch.consume("golden", inactivity_timeout=5):
            if method is None:
                break
            got.append(body)
            ch.basic_ack(method.delivery_tag)
            if len(got) == 3:
                break
        ch.cancel()
        ch.queue_delete("golden")
        conn.close()
        if len(got) != 3:
            raise SystemExit(f"amqp: consumed {len(got)} of 3 messages")
    finally:
        streams = relay.stop()
    save("amqp-rabbitmq", streams, out)


def capture_mqtt(out: Path) -> None:
    import rrlab.brokers.mqtt as mqtt_broker
    from rrlab.brokers import stop

    with tempfile.TemporaryDirectory(prefix="rrlab-golden-mqtt-") as home:
        record = mqtt_broker.start(
            Path(home), port=MQTT_BROKER_PORT, users={MQTT_USER: MQTT_PASSWORD}
        )
        try:
            deadline = time.monotonic() + 30
            while mqtt_broker.probe(record) is not None:
                if time.monotonic() > deadline:
                    raise SystemExit("mqtt: private amqtt broker did not come up")
                time.sleep(0.2)
            relay = Relay(MQTT_RELAY_PORT, (HOST, MQTT_BROKER_PORT))
            try:
                asyncio.run(_mqtt_clients())
            finally:
                streams = relay.stop()
        finally:
            stop(record)
    save("mqtt-amqtt", streams, out)


async def _mqtt_clients() -> None:
    from amqtt.client import MQTTClient
    from amqtt.mqtt.constants import QOS_1

    url = f"mqtt://{MQTT_USER}:{MQTT_PASSWORD}@{HOST}:{MQTT_RELAY_PORT}/"
    config = {"auto_reconnect": False, "keep_alive": 60}
    sub = MQTTClient(client_id="golden-sub", config=config)
    await sub.connect(url)
    await sub.subscribe([("golden/#", QOS_1)])
    pub = MQTTClient(client_id="golden-pub", config=config)
    await pub.connect(url)
    for i in range(3):
        await pub.publish(f"golden/{i}", f'{{"n":{i}}}'.encode(), qos=QOS_1)
    for _ in range(3):
        await asyncio.wait_for(sub.deliver_message(), timeout=10)
    await pub.disconnect()
    await sub.unsubscribe(["golden/#"])
    await sub.disconnect()


def capture_kafka_apache(out: Path) -> None:
    capture_kafka(out, impl="apache")


SCENARIOS = {
    "kafka": capture_kafka,
    "kafka-apache": capture_kafka_apache,
    "amqp": capture_amqp,
    "mqtt": capture_mqtt,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--out", type=Path, default=GOLDEN)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    for name in args.names or list(SCENARIOS):
        SCENARIOS[name](args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
