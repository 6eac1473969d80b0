"""An amqtt client pair for the MQTT replay tests, written the ordinary way: a subscriber (QoS 1)
and a publisher of COUNT QoS 1 JSON messages, two connections with fixed client ids; the
subscriber writes the payloads it got to OUT, one per line, then both disconnect. --abrupt exits
without DISCONNECT (the process ends, the sockets close), as a client killed after its work does.

Usage: python tests/replay/mqtt_amqtt_client.py OUT [--count N] [--url URL] [--topic T]
       [--abrupt]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from amqtt.client import MQTTClient
from amqtt.mqtt.constants import QOS_1

URL = "mqtt://127.0.0.1:11883"


def _client(role: str) -> MQTTClient:
    config = {"auto_reconnect": False, "keep_alive": 60, "default_qos": QOS_1}
    return MQTTClient(client_id=f"rrlab-close-{role}", config=config)


async def run(args: argparse.Namespace) -> int:
    sub, pub = _client("sub"), _client("pub")
    await sub.connect(args.url, cleansession=True)
    await sub.subscribe([(args.topic, QOS_1)])
    await pub.connect(args.url, cleansession=True)
    for n in range(args.count):
        body = json.dumps({"n": n, "sq": n * n}, sort_keys=True).encode()
        await pub.publish(args.topic, body, qos=QOS_1)
    got: list[str] = []
    while len(got) < args.count:
        message = await sub.deliver_message(timeout_duration=20)
        got.append(bytes(message.data).decode())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{line}\n" for line in got))
    if args.abrupt:
        os._exit(0)  # no DISCONNECT: the sockets just close
    await pub.disconnect()
    await sub.disconnect()
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--url", default=URL)
    p.add_argument("--topic", default="rrlab/close")
    p.add_argument("--abrupt", action="store_true", help="exit without DISCONNECT")
    return asyncio.run(run(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
