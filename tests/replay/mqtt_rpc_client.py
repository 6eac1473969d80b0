"""An amqtt request/reply pair for the binding tests, written the ordinary way: the requester
connects with a random client id (`svc-` + 8 hex, new each run), subscribes to its own response
topic `reply/<client id>` and publishes a request naming that topic; the responder (its own
random client id) answers on the topic the request names. Writes `x squared = y` to OUT.

Usage: python tests/replay/mqtt_rpc_client.py OUT [--x N] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from pathlib import Path

from amqtt.client import MQTTClient
from amqtt.mqtt.constants import QOS_1

URL = "mqtt://127.0.0.1:11883"
REQUESTS = "rpc/square"


def _client() -> MQTTClient:
    config = {"auto_reconnect": False, "keep_alive": 60, "default_qos": QOS_1}
    return MQTTClient(client_id=f"svc-{secrets.token_hex(4)}", config=config)


async def run(args: argparse.Namespace) -> int:
    responder, requester = _client(), _client()
    await responder.connect(args.url, cleansession=True)
    await responder.subscribe([(REQUESTS, QOS_1)])
    await requester.connect(args.url, cleansession=True)
    response_topic = f"reply/{requester.session.client_id}"
    await requester.subscribe([(response_topic, QOS_1)])
    request = {"reply_to": response_topic, "x": args.x}
    await requester.publish(REQUESTS, json.dumps(request, sort_keys=True).encode(), qos=QOS_1)

    asked = json.loads(bytes((await responder.deliver_message(timeout_duration=20)).data))
    answer = json.dumps({"y": asked["x"] ** 2}).encode()
    await responder.publish(asked["reply_to"], answer, qos=QOS_1)

    message = await requester.deliver_message(timeout_duration=20)
    assert message.topic == response_topic, message.topic
    result = json.loads(bytes(message.data))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"{args.x} squared = {result['y']}\n")
    await requester.disconnect()
    await responder.disconnect()
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--x", type=int, default=7)
    p.add_argument("--url", default=URL)
    return asyncio.run(run(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
