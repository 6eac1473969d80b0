"""`rrlab proxy` with clients that never read: bounded, and the others unaffected?

One probe per protocol, each through its own `rrlab proxy` to a real broker (started here:
Tansu, RabbitMQ, Mosquitto or amqtt), and one row each: the proxy's RSS before, at its peak
and after the reader left (psutil), how much was pushed at the reader, and a neighbour's round
trip through the same proxy before and during.

- amqp: a pika consumer (auto-ack, no prefetch limit) stops reading while a publisher sends
  COUNT messages of 1 KiB to its queue;
- mqtt: a QoS 0 subscriber never reads while a publisher sends COUNT messages of 1 KiB;
- kafka: a consumer (kafka-python, fetch up to 48 MiB) polls once and never again while its
  Fetch of a 40 MB log is answered.

    .venv/bin/python bench/bench_proxy_faults.py [--count 100000] [--probes amqp mqtt kafka]

Run it in a network namespace (`unshare -n`): the brokers listen on their usual ports.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RRLAB = [sys.executable, "-m", "rrlab"]  # run in ROOT: this tree's code
AMQP_URL = "amqp://rrlab:rrlab-secret-pw@127.0.0.1:{port}/rrlab"
MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    def __init__(self, proto: str, upstream: str, work: Path) -> None:
        self.port = free_port()
        argv = [*RRLAB, "proxy", f"--{proto}", f"{self.port}={upstream}",
                "--cassette", str(work / f"cassette-{proto}"), "--write-root", str(work),
                "--allow-upstream", upstream, "--kafka-node-base-port", str(free_port()),
                "--max-cassette-bytes", str(4 << 30), "--max-frames", str(10**8),
                "--log-file", str(work / f"{proto}.log")]  # fmt: skip
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if " listening " in line:
                break
        else:
            raise SystemExit(f"proxy exited: rc={self.proc.wait()}")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self.ps = psutil.Process(self.proc.pid)
        self.peak = self.rss()
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def rss(self) -> float:
        return self.ps.memory_info().rss / 1e6

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.rss())
            except psutil.NoSuchProcess:
                return

    def stop(self) -> None:
        self._stop.set()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms" if samples else "failed"


# -- neighbours ---------------------------------------------------------------------------------


def kafka_rtt(port: int, n: int = 20) -> list[float]:
    """ApiVersions v0 round trips on one fresh connection."""
    body = struct.pack(">hhih", 18, 0, 0, 5) + b"bench"
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for i in range(n):
            req = struct.pack(">i", len(body)) + body[:4] + struct.pack(">i", i) + body[8:]
            t0 = time.perf_counter()
            s.sendall(req)
            (size,) = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))
            s.recv(size, socket.MSG_WAITALL)
            out.append(time.perf_counter() - t0)
    return out


def amqp_rtt(port: int, n: int = 20) -> list[float]:
    """Publishes with publisher confirms on a fresh connection."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL.format(port=port)))
    ch = conn.channel()
    ch.queue_declare(f"bench.rtt.{port}", auto_delete=True)
    ch.confirm_delivery()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        ch.basic_publish("", f"bench.rtt.{port}", b"x")
        out.append(time.perf_counter() - t0)
    conn.close()
    return out


def mqtt_connect(client_id: bytes) -> bytes:
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    return bytes([0x10, len(body)]) + body


def mqtt_rtt(port: int, n: int = 20) -> list[float]:
    """CONNECT / CONNACK on fresh connections."""
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(mqtt_connect(b"nb%d" % i))
            assert s.recv(4, socket.MSG_WAITALL)[:2] == b"\x20\x02"
            s.sendall(b"\xe0\x00")
        out.append(time.perf_counter() - t0)
    return out


# -- the readers that never read -----------------------------------------------------------------


def amqp_probe(port: int, count: int) -> tuple[str, Callable[[], None]]:
    import pika

    queue = f"bench.never.{port}"
    reader = pika.BlockingConnection(pika.URLParameters(AMQP_URL.format(port=port)))
    ch = reader.channel()
    ch.queue_declare(queue, auto_delete=False)
    ch.queue_purge(queue)
    ch.basic_consume(queue, lambda *a: None, auto_ack=True)
    reader.process_data_events(0)  # ConsumeOk; from here on nothing is read
    pub = pika.BlockingConnection(pika.URLParameters(AMQP_URL.format(port=port)))
    pch = pub.channel()
    payload = b"m" * 1024
    for _ in range(count):
        pch.basic_publish("", queue, payload)
    pub.process_data_events(0)

    def close() -> None:
        pch.queue_delete(queue)
        pub.close()
        reader._impl._transport._sock.close()  # noqa: SLF001 (leave without reading)

    return f"{count * 1024 / 1e6:.0f} MB published to its queue", close


def mqtt_probe(port: int, count: int) -> tuple[str, Callable[[], None]]:
    reader = socket.create_connection(("127.0.0.1", port))
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.sendall(mqtt_connect(b"never"))
    assert reader.recv(4)[:2] == b"\x20\x02"
    reader.sendall(b"\x82\x0a\x00\x01\x00\x05never\x00")  # SUBSCRIBE "never" QoS 0
    assert reader.recv(5)[:1] == b"\x90"
    body = b"\x00\x05never" + b"m" * 1024
    publish = bytes([0x30, len(body) & 0x7F | 0x80, len(body) >> 7]) + body
    with socket.create_connection(("127.0.0.1", port)) as pub:
        pub.sendall(mqtt_connect(b"pub"))
        assert pub.recv(4)[:2] == b"\x20\x02"
        pub.settimeout(30)
        sent = 0
        try:
            for _ in range(count // 100):
                pub.sendall(publish * 100)
                sent += 100
        except OSError:
            pass
    return f"{sent * len(publish) / 1e6:.0f} MB published on its topic", reader.close


def kafka_probe(port: int, count: int) -> tuple[str, Callable[[], None]]:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    bootstrap = f"127.0.0.1:{port}"
    topic = f"bench-never-{port}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20)
    payload = b"k" * 1024
    for _ in range(40_000):
        producer.send(topic, payload, partition=0)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_bytes=48 * MiB,
        max_partition_fetch_bytes=48 * MiB,
        receive_buffer_bytes=4096,
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    consumer.poll(timeout_ms=200)  # the Fetch goes out; its answer is never read
    return "a Fetch of 40 MB", consumer.close


PROBES = {
    "amqp": ("amqp", "127.0.0.1:5672", amqp_probe, amqp_rtt),
    "mqtt": ("mqtt", "127.0.0.1:1883", mqtt_probe, mqtt_rtt),
    "kafka": ("kafka", "127.0.0.1:9092", kafka_probe, kafka_rtt),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--probes", nargs="+", default=list(PROBES), choices=list(PROBES))
    args = ap.parse_args()
    from rrlab.brokers import control

    mqtt_impl = "mosquitto" if shutil.which("mosquitto") else "amqtt"
    started = control.up(args.probes, kafka_impl="tansu", mqtt_impl=mqtt_impl, out=None)
    work = Path(tempfile.mkdtemp(prefix="rrlab-proxy-faults-"))
    rows = []
    try:
        for name in args.probes:
            proto, upstream, probe, rtt = PROBES[name]
            proxy = Proxy(proto, upstream, work)
            before = proxy.rss()
            calm = rtt(proxy.port)
            pushed, close = probe(proxy.port, args.count)
            time.sleep(2.0)  # whatever the proxy still takes in, it takes now
            during = rtt(proxy.port)
            held = proxy.peak
            close()
            time.sleep(2.0)
            after = proxy.rss()
            proxy.stop()
            impl = started[name]["impl"]
            rows.append(
                [f"{name} ({impl})", pushed, f"{before:.0f}", f"{held:.0f}", f"{after:.0f}",
                 f"{median_ms(calm)} -> {median_ms(during)}"]
            )  # fmt: skip
    finally:
        control.down([n for n in args.probes if started.get(n, {}).get("started")], out=None)
        shutil.rmtree(work, ignore_errors=True)
    header = ["probe", "pushed at the reader", "RSS before", "peak", "after", "neighbour"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("\nrrlab proxy with a client that never reads (RSS in MB)")
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
