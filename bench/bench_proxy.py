"""Recording proxy overhead, measured in one run: direct vs `rrlab proxy` vs socat (plain relay)
vs the floor relay (bench/floor_relay.py: the proxy's relay, framing and writing before forwarding,
nothing else).

Load runs go round-robin across the paths (direct, proxy, socat, direct, ...) and each path
reports the median of its runs, so slow drift of a shared machine biases no path.

For Kafka and AMQP: COUNT messages of SIZE bytes produced then consumed (kafka-python / pika, the
same load loop for all three paths), and the added latency of single round trips (Kafka
ApiVersions, which the proxy holds and rewrites - its worst case; AMQP basic.publish with
publisher confirms). The proxy's RSS is sampled during its runs.

Kafka runs against private Tansu brokers so each relay sees every connection: one advertises
itself (direct and proxy paths; the proxy rewrites the address), one socat's port, one the floor
relay's.

The proxy's targets (issue M) are printed beside its figures: each leg (produce, consume) at
least 0.95 of direct, CPU at most 15 us per message moved while the loads run (start-up and the
round-trip loops are not messages), and at most +0.2 ms of added p50 round-trip latency. Beside
them: socat's figure (a relay in C that records nothing) and the floor relay's (the least a
recorder in Python that writes each frame before forwarding it pays on this machine).

    .venv/bin/python bench/bench_proxy.py [--count 50000] [--size 1024] [--rtt 2000]
        [--repeat 3] [--baseline CMD]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RRLAB = ROOT / ".venv" / "bin" / "rrlab"
#: how the bench starts the proxy (RRLAB_BENCH_PROXY overrides, for experiments)
PROXY_CMD = (os.environ.get("RRLAB_BENCH_PROXY") or str(RRLAB)).split()
AMQP_URL = "amqp://rrlab:rrlab-secret-pw@127.0.0.1:{port}/rrlab"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_block(n: int) -> int:
    for _ in range(500):
        base = random.randrange(33000, 38900 - n)
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free ports")


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


# --- relays ----------------------------------------------------------------------------------


@dataclass
class Relay:
    proc: subprocess.Popen | None = None
    rss_mb: list[float] = field(default_factory=list)
    cpu_s: float | None = None  # the relay process's CPU time (user + system) at stop
    load_cpu: list[float] = field(default_factory=lambda: [0.0, 0.0])  # user, system in loads
    cpu_exact: bool = True  # False: a child outlived a load (its CPU may be missing)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample_rss(self) -> None:
        assert self.proc is not None
        ps = psutil.Process(self.proc.pid)

        def loop() -> None:
            while not self._stop.wait(0.5):
                try:
                    self.rss_mb.append(ps.memory_info().rss / 1e6)
                except psutil.NoSuchProcess:
                    return

        threading.Thread(target=loop, daemon=True).start()

    def cpu(self) -> tuple[float, float]:
        """(user, system) seconds so far, its reaped children's included (socat forks one per
        connection): call it when `settle` found no child left."""
        assert self.proc is not None
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.children_user, t.system + t.children_system

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until the relay has no child process left (socat's per-connection children
        exit about 0.5 s after their connection closes, and their CPU joins the parent's
        children times only once it reaps them); False if some were still there at `timeout`.

        Reading a live child's times beside the parent's was racy: a child reaped between the
        two reads was in neither, so its CPU fell into no load (0.0 printed for socat)."""
        assert self.proc is not None
        proc = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + timeout
        while proc.children(recursive=True):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def timed_load(self, load: Callable[[], tuple[float, float]]) -> tuple[float, float]:
        """Run `load`, adding the relay's CPU time during it to `load_cpu`: between two points
        where no child of the relay is alive, so every child of the load is counted, once."""
        self.cpu_exact &= self.settle()
        user0, sys0 = self.cpu()
        result = load()
        self.cpu_exact &= self.settle()
        user1, sys1 = self.cpu()
        self.load_cpu[0] += user1 - user0
        self.load_cpu[1] += sys1 - sys0
        return result

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            try:  # the machine is shared: CPU per message is the steadier figure
                cpu = psutil.Process(self.proc.pid).cpu_times()
                self.cpu_s = cpu.user + cpu.system
            except psutil.NoSuchProcess:
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_proxy(
    proto: str,
    listen: int,
    upstream: str,
    workdir: Path,
    node_base: int,
    cmd: list[str] = PROXY_CMD,
    name: str = "proxy",
) -> Relay:
    cassette = workdir / f"cassette-{proto}" if name == "proxy" else workdir / f"{name}-{proto}"
    argv = [*cmd, "proxy", f"--{proto}", f"{listen}={upstream}", "--cassette",
            str(cassette), "--write-root", str(workdir), "--allow-upstream", upstream,
            "--kafka-node-base-port", str(node_base), "--max-cassette-bytes", str(8 << 30),
            "--max-frames", str(50_000_000),
            "--log-file", str(workdir / f"{name}-{proto}.log")]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"proxy exited: rc={proc.wait()}")
        if " listening " in line:
            break
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    relay = Relay(proc)
    relay.sample_rss()
    return relay


def start_floor(proto: str, listen: int, upstream: str, workdir: Path) -> Relay:
    """The floor relay (bench/floor_relay.py) on `listen`, writing under `workdir`."""
    argv = [sys.executable, str(ROOT / "bench" / "floor_relay.py"), "--proto", proto,
            "--listen", str(listen), "--upstream", upstream, "--dir", str(workdir)]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if " listening " not in proc.stdout.readline():
        raise RuntimeError(f"floor relay exited: rc={proc.wait()}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    relay = Relay(proc)
    relay.sample_rss()
    return relay


def start_socat(listen: int, upstream: str) -> Relay:
    proc = subprocess.Popen(
        [
            "socat",
            f"TCP-LISTEN:{listen},bind=127.0.0.1,reuseaddr,fork,nodelay",
            f"TCP:{upstream},nodelay",
        ]
    )
    wait_port(listen)
    return Relay(proc)


# --- loads ------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def kafka_load(bootstrap: str, topic: str, count: int, size: int) -> tuple[float, float]:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    payload = os.urandom(size)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=16 << 20,
    )
    t0 = time.perf_counter()
    for i in range(count):
        producer.send(topic, value=payload, key=str(i).encode(), partition=0)
    producer.flush()
    produce_s = time.perf_counter() - t0
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_bytes=32 << 20,
        max_partition_fetch_bytes=8 << 20,
        max_poll_records=10_000,
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = 0
    t0 = time.perf_counter()
    while got < count:
        for records in consumer.poll(timeout_ms=1000).values():
            got += len(records)
    consume_s = time.perf_counter() - t0
    consumer.close()
    return produce_s, consume_s


def kafka_trips(port: int) -> Iterator[float]:
    """Round trips on one connection, one per `next` (seconds each); `close` ends it."""
    body = struct.pack(">hhih", 18, 0, 0, 5) + b"bench"
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in itertools.count():
            req = struct.pack(">i", len(body)) + body[:4] + struct.pack(">i", i) + body[8:]
            t0 = time.perf_counter()
            s.sendall(req)
            head = s.recv(4, socket.MSG_WAITALL)
            (size,) = struct.unpack(">i", head)
            s.recv(size, socket.MSG_WAITALL)
            yield time.perf_counter() - t0


def amqp_load(port: int, queue: str, count: int, size: int) -> tuple[float, float]:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL.format(port=port)))
    ch = conn.channel()
    ch.queue_declare(queue, auto_delete=False)
    ch.queue_purge(queue)
    payload = os.urandom(size)
    t0 = time.perf_counter()
    for _ in range(count):
        ch.basic_publish("", queue, payload)
    conn.process_data_events(0)
    produce_s = time.perf_counter() - t0
    ch.basic_qos(prefetch_count=2000)
    got = 0
    t0 = time.perf_counter()
    for _method, _props, _body in ch.consume(queue, auto_ack=True):
        got += 1
        if got >= count:
            break
    consume_s = time.perf_counter() - t0
    ch.cancel()
    ch.queue_delete(queue)
    conn.close()
    return produce_s, consume_s


def amqp_trips(port: int) -> Iterator[float]:
    """Confirmed publishes on one connection, one per `next` (seconds each); `close` ends it."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL.format(port=port)))
    ch = conn.channel()
    q = f"bench.rtt.{port}"
    ch.queue_declare(q, auto_delete=True)
    ch.confirm_delivery()
    try:
        while True:
            t0 = time.perf_counter()
            ch.basic_publish("", q, b"x")
            yield time.perf_counter() - t0
    finally:
        ch.queue_delete(q)
        conn.close()


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Row:
    proto: str
    path: str
    runs: list[tuple[float, float]]  # (produce_s, consume_s) of each load run, in run order
    rtt: list[float]
    rss: list[float]
    cpu_s: float | None = None
    load_cpu: tuple[float, float] | None = None  # relay (user, system) seconds in the loads
    cpu_exact: bool = True  # False: a lower bound (a relay's child outlived a load)

    @property
    def produce_s(self) -> float:
        return median([p for p, _ in self.runs])

    @property
    def consume_s(self) -> float:
        return median([c for _, c in self.runs])

    @property
    def total_s(self) -> float:
        return median([p + c for p, c in self.runs])

    @property
    def best_s(self) -> float:
        return min(p + c for p, c in self.runs)


def median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class Route:
    """One way to reach the broker: its port, load and round-trip loops, and relay (if any)."""

    name: str
    port: int
    load: Callable[[int, int], tuple[float, float]]
    rtt: Callable[[int], Iterator[float]]  # port -> one round trip's seconds per `next`
    relay: Relay | None = None


def run_paths(proto: str, paths: list[Route], repeat: int, rtt: int) -> list[Row]:
    """Load runs round-robin across the paths (direct, proxy, socat, direct, ...) so machine
    drift hits every path alike, then `rtt` round trips per path, one path's trip after the
    other's (each path its own connection), so the added p50 compares trips taken within
    milliseconds of each other; relays stop at the end. The trips' order is shuffled each time
    (seeded: the same order every run): turned in a fixed order, a path always followed the
    same one, and an A/A run (one rrlab as two paths) put the one after `direct` 0.01-0.02 ms
    lower."""
    runs: dict[str, list[tuple[float, float]]] = {p.name: [] for p in paths}
    lats: dict[str, list[float]] = {p.name: [] for p in paths}
    try:
        for i in range(repeat):
            for p in paths:
                relay = p.relay
                if relay is None:
                    runs[p.name].append(p.load(p.port, i))
                else:
                    runs[p.name].append(relay.timed_load(lambda p=p, i=i: p.load(p.port, i)))
        trips = {p.name: p.rtt(p.port) for p in paths}
        order = list(paths)
        shuffle = random.Random(len(paths)).shuffle
        try:
            for _ in range(rtt):
                shuffle(order)
                for p in order:
                    lats[p.name].append(next(trips[p.name]))
        finally:
            for t in trips.values():
                t.close()
    finally:
        for p in paths:
            if p.relay is not None:
                p.relay.stop()
    return [
        Row(proto, p.name, runs[p.name], lats[p.name], p.relay.rss_mb if p.relay else [],
            p.relay.cpu_s if p.relay else None,
            tuple(p.relay.load_cpu) if p.relay else None,
            p.relay.cpu_exact if p.relay else True)
        for p in paths
    ]  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rtt", type=int, default=2000, help="round trips for the latency figures")
    ap.add_argument("--protocols", default="kafka,amqp")
    ap.add_argument(
        "--repeat", type=int, default=3, help="load runs per path, round-robin; medians count"
    )
    ap.add_argument(
        "--baseline",
        metavar="CMD",
        help="also run a second proxy started by CMD (e.g. another checkout's rrlab), as path "
        "'base', to compare before and after in one run",
    )
    args = ap.parse_args()
    baseline = args.baseline.split() if args.baseline else None
    if shutil.which("socat") is None:
        print("bench: socat not found; run tools/ensure-system-packages", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="rrlab-bench-"))
    rows: list[Row] = []
    cleanup: list[Callable[[], None]] = []
    run_id = os.getpid()
    try:
        protos = args.protocols.split(",")
        if "kafka" in protos:
            from rrlab.brokers import kafka, process

            base = free_block(10)
            plain, via_socat, socat_port = base, base + 1, base + 2
            proxy_port, node_base = base + 3, base + 4
            via_floor, floor_port = base + 7, base + 8
            brokers = [
                kafka.start(work / "tansu-a", impl="tansu", port=plain),
                kafka.start(
                    work / "tansu-b", impl="tansu", port=via_socat, advertised_port=socat_port
                ),
                kafka.start(
                    work / "tansu-c", impl="tansu", port=via_floor, advertised_port=floor_port
                ),
            ]
            for rec in brokers:
                cleanup.append(lambda rec=rec: process.stop(rec["procs"]["broker"]))
            for rec in brokers:
                deadline = time.monotonic() + 60
                while kafka.probe(rec) is not None:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"Tansu did not start: {rec['log']}")
                    time.sleep(0.2)

            def kload(tag: str) -> Callable[[int, int], tuple[float, float]]:
                def load(port: int, i: int) -> tuple[float, float]:
                    topic = f"bench.{run_id}.{tag}.{i}"
                    return kafka_load(f"127.0.0.1:{port}", topic, args.count, args.size)

                return load

            paths = [Route("direct", plain, kload("direct"), kafka_trips)]
            relay = start_proxy("kafka", proxy_port, f"127.0.0.1:{plain}", work, node_base)
            paths.append(Route("proxy", proxy_port, kload("proxy"), kafka_trips, relay))
            relay = start_socat(socat_port, f"127.0.0.1:{via_socat}")
            paths.append(Route("socat", socat_port, kload("socat"), kafka_trips, relay))
            relay = start_floor("kafka", floor_port, f"127.0.0.1:{via_floor}", work)
            paths.append(Route("floor", floor_port, kload("floor"), kafka_trips, relay))
            if baseline:
                relay = start_proxy("kafka", base + 5, f"127.0.0.1:{plain}", work, base + 6,
                                    baseline, "base")  # fmt: skip
                paths.append(Route("base", base + 5, kload("base"), kafka_trips, relay))
            rows += run_paths("kafka", paths, args.repeat, args.rtt)
        if "amqp" in protos:
            from rrlab.brokers import control

            if control.up(["amqp"], out=None)["amqp"]["started"]:  # ours: stop it at the end
                cleanup.append(lambda: control.down(["amqp"], out=None))
            base = free_block(4)

            def aload(port: int, i: int) -> tuple[float, float]:
                return amqp_load(port, f"bench.{run_id}.{port}.{i}", args.count, args.size)

            paths = [Route("direct", 5672, aload, amqp_trips)]
            relay = start_proxy("amqp", base, "127.0.0.1:5672", work, base + 10)
            paths.append(Route("proxy", base, aload, amqp_trips, relay))
            relay = start_socat(base + 1, "127.0.0.1:5672")
            paths.append(Route("socat", base + 1, aload, amqp_trips, relay))
            relay = start_floor("amqp", base + 3, "127.0.0.1:5672", work)
            paths.append(Route("floor", base + 3, aload, amqp_trips, relay))
            if baseline:
                relay = start_proxy("amqp", base + 2, "127.0.0.1:5672", work, base + 11,
                                    baseline, "base")  # fmt: skip
                paths.append(Route("base", base + 2, aload, amqp_trips, relay))
            rows += run_paths("amqp", paths, args.repeat, args.rtt)
    finally:
        for fn in reversed(cleanup):
            fn()
    print_table(rows, args)
    cassettes = sorted(work.glob("cassette-*"))
    for c in cassettes:
        entry = json.loads((c / "cassette.json").read_bytes())["frames_file"]
        size = entry.get("plain", entry)["bytes"] / 1e6  # a compacted cassette: its plain size
        print(f"cassette {c.name}: frames.jsonl {size:.0f} MB ({entry['name']})")
    shutil.rmtree(work, ignore_errors=True)
    return 0


#: the proxy's targets (issue M): (figure, target, whether higher is better)
TARGETS = {
    "produce leg vs direct": (0.95, True),
    "consume leg vs direct": (0.95, True),
    "CPU us per message moved": (15.0, False),
    "added p50 latency ms": (0.2, False),
}


def load_cpu_us(r: Row, count: int) -> tuple[float, float] | None:
    """The relay's (user, system) CPU in microseconds per message moved during the load runs."""
    if r.load_cpu is None:
        return None
    moved = count * len(r.runs)
    return r.load_cpu[0] / moved * 1e6, r.load_cpu[1] / moved * 1e6


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\n{args.count} x {args.size} B messages (produce, then consume); {args.rtt} round trips "
        f"per path, interleaved; "
        f"{args.repeat} load runs per path, round-robin across paths"
    )
    head = (
        f"{'proto':5} {'path':6} {'produce/s':>10} {'consume/s':>10} {'total/s':>9} "
        f"{'best/s':>9} {'vs direct':>9} {'vs socat':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'+p50':>6} {'+p99':>6} {'RSS MB min/max/end':>20} {'CPU us/msg usr+sys':>18}"
    )
    print(head)
    print("-" * len(head))
    by = {(r.proto, r.path): r for r in rows}
    for r in rows:
        rate = args.count / r.total_s
        direct = by.get((r.proto, "direct"))
        socat = by.get((r.proto, "socat"))
        d_rate = args.count / direct.total_s if direct else rate
        s_rate = args.count / socat.total_s if socat else rate
        p50, p99 = percentile(r.rtt, 50) * 1e3, percentile(r.rtt, 99) * 1e3
        dp50 = p50 - percentile(direct.rtt, 50) * 1e3 if direct else 0.0
        dp99 = p99 - percentile(direct.rtt, 99) * 1e3 if direct else 0.0
        rss = f"{min(r.rss):.0f}/{max(r.rss):.0f}/{r.rss[-1]:.0f}" if r.rss else "-"
        us = load_cpu_us(r, args.count)
        cpu = f"{us[0] + us[1]:.1f} = {us[0]:.1f}+{us[1]:.1f}" if us else "-"
        if us and not r.cpu_exact:
            cpu = ">=" + cpu
        print(
            f"{r.proto:5} {r.path:6} {args.count / r.produce_s:10.0f} "
            f"{args.count / r.consume_s:10.0f} {rate:9.0f} {args.count / r.best_s:9.0f} "
            f"{rate / d_rate:9.2f} {rate / s_rate:8.2f} {p50:7.3f} {p99:7.3f} {dp50:6.3f} "
            f"{dp99:6.3f} {rss:>20} {cpu:>18}"
        )
    print(
        "produce/s, consume/s, total/s: medians over the load runs (total from the median run "
        "time); best/s: the fastest run; vs direct / vs socat: ratios of the median total/s"
    )
    print(
        "CPU us/msg: the relay's CPU time (user + system; socat's forked children included, "
        "each load measured from and to a moment when none is alive) during the load runs, "
        "per message moved (start-up and round trips excluded); >=: a child outlived a load"
    )
    print_targets(rows, args)


def path_figures(path: Row, direct: Row, count: int) -> dict[str, float]:
    """The figures issue M sets targets for, of one path against the direct one."""
    us = load_cpu_us(path, count)
    return {
        "produce leg vs direct": direct.produce_s / path.produce_s,
        "consume leg vs direct": direct.consume_s / path.consume_s,
        "CPU us per message moved": us[0] + us[1] if us else float("nan"),
        "added p50 latency ms": (percentile(path.rtt, 50) - percentile(direct.rtt, 50)) * 1e3,
    }


def print_targets(rows: list[Row], args: argparse.Namespace) -> None:
    """The proxy's figures beside their targets (issue M), one line each, with the same figure
    of socat and of the floor relay for scale."""
    by = {(r.proto, r.path): r for r in rows}
    print(f"\n{'proto':5} {'path':5} {'figure':26} {'value':>8} {'target':>8}  ok   socat  floor")
    for proto, path in dict.fromkeys((r.proto, r.path) for r in rows):
        proxy, direct = by[(proto, path)], by.get((proto, "direct"))
        if path not in ("proxy", "base") or direct is None:
            continue
        scale = {
            other: path_figures(by[(proto, other)], direct, args.count)
            for other in ("socat", "floor")
            if (proto, other) in by
        }
        for name, value in path_figures(proxy, direct, args.count).items():
            target, higher = TARGETS[name]
            ok = value >= target if higher else value <= target
            sign = ">=" if higher else "<="
            verdict = "yes" if ok else "NO "
            line = f"{proto:5} {path:5} {name:26} {value:8.2f} {sign}{target:6.2f}  {verdict}"
            for other in ("socat", "floor"):
                figure = scale.get(other, {}).get(name)
                exact = other not in scale or by[(proto, other)].cpu_exact
                bound = ">=" if name.startswith("CPU") and not exact else ""
                line += f" {bound + format(figure, '.2f') if figure is not None else '-':>6}"
            print(line)
    print(
        "socat: a relay in C that records nothing; floor: bench/floor_relay.py, the proxy's "
        "relay that frames and writes each chunk's frames (two write(2)) before forwarding it, "
        "nothing else - what a write-before-forward recorder in Python costs at least here"
    )


if __name__ == "__main__":
    sys.exit(main())
