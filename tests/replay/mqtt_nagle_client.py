"""An amqtt client with Nagle's algorithm on, as most client sockets are (libmosquitto, paho,
Java's): one connection subscribes to its topic at QoS 1 and publishes COUNT messages to it at
QoS 1, one at a time: each publish waits for its PUBACK and for its own copy, which amqtt
acknowledges with a PUBACK of its own, a small write the next PUBLISH (another small write)
then follows. asyncio turns Nagle off on every socket it opens; this client turns it back on.

Writes the received payloads to OUT (deterministic) and, with --stats, a JSON object to STATS
(not an artifact): how many delayed ACKs the network namespace sent during the run (Linux's
TcpExt counter: a count, not a timing), how many round trips (publish sent -> PUBACK and copy
in) took STALL_MS or longer (a delayed ACK holding the next small write back: Linux delays an
ACK up to 40 ms), the slowest round trips and the run's wall time.

Usage: python tests/replay/mqtt_nagle_client.py OUT [--count N] [--url URL] [--stats STATS]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from pathlib import Path

from amqtt.client import MQTTClient
from amqtt.mqtt.constants import QOS_1

URL = "mqtt://127.0.0.1:11883"
TOPIC = "rrlab/nagle"
#: a round trip this long on loopback is a stall (a delayed ACK is 40 ms; one is ~1 ms)
STALL_MS = 30.0


async def run(args: argparse.Namespace) -> int:
    client = MQTTClient(client_id="rrlab-nagle", config={"auto_reconnect": False, "keep_alive": 60})
    await client.connect(args.url, cleansession=True)
    # amqtt's StreamWriterAdapter over asyncio's StreamWriter (no public way to the socket)
    sock = client._handler.writer._writer.get_extra_info("socket")  # type: ignore[union-attr]
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    await client.subscribe([(TOPIC, QOS_1)])
    received: list[str] = []
    round_trips: list[float] = []
    acks_before = delayed_acks()
    start = time.perf_counter()
    for i in range(args.count):
        sent = time.perf_counter()
        payload = json.dumps({"n": i, "sq": i * i}).encode()
        await client.publish(TOPIC, payload, qos=QOS_1)
        message = await client.deliver_message(timeout_duration=30)
        round_trips.append((time.perf_counter() - sent) * 1000)
        received.append(bytes(message.data).decode())
    wall = time.perf_counter() - start
    acks_after = delayed_acks()
    await client.disconnect()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{line}\n" for line in received))
    if args.stats:
        stats = {
            "count": args.count,
            "delayed_acks": None if acks_before is None else acks_after - acks_before,
            "wall_s": round(wall, 4),
            "stalls": sum(ms >= STALL_MS for ms in round_trips),
            "slowest_ms": [round(ms, 2) for ms in sorted(round_trips)[-5:]],
        }
        Path(args.stats).write_text(json.dumps(stats, sort_keys=True) + "\n")
    return 0


def delayed_acks() -> int | None:
    """Delayed ACKs this network namespace has sent so far (Linux TcpExt DelayedACKs: the
    timer fired with an ACK still owed), or None where there is no such counter."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table["DelayedACKs"]) if "DelayedACKs" in table else None
    return None


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--url", default=URL)
    p.add_argument("--stats", help="write timings here (JSON)")
    return asyncio.run(run(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
