"""A pika client whose runs differ: every message carries a header `stamp` with a random integer
(as a request id or a sampling seed would). With --more-each-run STATE it publishes one message
more than the run before (counted in the file STATE, as a client that works through a backlog
would): two runs are not the same conversation. It publishes to an
exclusive queue, consumes what it published and writes the bodies (never the stamps) to OUT.

Usage: python amqp_stamp_client.py OUT [--count N] [--more-each-run STATE] [--url URL]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import pika

URL = "amqp://rrlab:rrlab-secret-pw@127.0.0.1:15673/rrlab"
QUEUE = "rrlab.stamped"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--more-each-run", metavar="STATE", help="one message more than last run")
    p.add_argument("--url", default=URL)
    args = p.parse_args(argv)
    count = args.count
    if args.more_each_run:
        state = Path(args.more_each_run)
        count = (int(state.read_text()) if state.exists() else 0) + 1
        state.write_text(str(count))
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.queue_declare(QUEUE, exclusive=True, auto_delete=True)
    for n in range(count):
        headers = {"stamp": random.randrange(1, 1 << 30)}
        body = json.dumps({"n": n}).encode()
        props = pika.BasicProperties(content_type="application/json", headers=headers)
        channel.basic_publish("", QUEUE, body, props)
    bodies = []
    for method, _props, body in channel.consume(QUEUE, inactivity_timeout=10):
        if method is None:
            break
        channel.basic_ack(method.delivery_tag)
        bodies.append(body.decode())
        if len(bodies) == count:
            break
    channel.cancel()
    connection.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(f"{b}\n" for b in bodies))
    return 0 if len(bodies) == count else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
