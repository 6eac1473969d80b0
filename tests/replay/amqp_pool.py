"""A pool of two pika connections that open alike and do the same work for a long while before
they differ, for the AMQP replay tests: both open a channel and publish SAME identical messages
(a framework's periodic event, say) and set their QoS (a round trip: the broker has read every
publish before anything else happens), then member "a" declares the queue rrlab.pool.a and member
"b" rrlab.pool.b. The queue names the broker confirmed go to OUT, one line per member.

--first names the member that connects first. Recorded with one and replayed with the other,
each live connection first binds to the recording of the other member (their openings are
alike) and only the declaration, after more steps than a fixed rebind window, tells them apart.

Usage: python tests/replay/amqp_pool.py OUT [--first a|b] [--same N] [--url URL]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pika

URL = "amqp://rrlab:rrlab-secret-pw@127.0.0.1:15673/rrlab"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--first", choices=("a", "b"), default="a")
    p.add_argument("--same", type=int, default=80)
    p.add_argument("--url", default=URL)
    args = p.parse_args(argv)

    def connect() -> tuple[pika.BlockingConnection, object]:
        params = pika.URLParameters(args.url)
        params.connection_attempts = 1
        connection = pika.BlockingConnection(params)
        return connection, connection.channel()

    members = {}
    for name in (args.first, "b" if args.first == "a" else "a"):
        members[name] = connect()
    for n in range(args.same):
        for _connection, channel in members.values():
            channel.basic_publish("", "rrlab.pool.nowhere", f"tick {n}".encode())
    for _connection, channel in members.values():  # a round trip: every publish was read
        channel.basic_qos(prefetch_count=1)
    lines = []
    for name in ("a", "b"):
        _connection, channel = members[name]
        ok = channel.queue_declare(f"rrlab.pool.{name}", exclusive=True, auto_delete=True)
        lines.append(f"{name}: {ok.method.queue}\n")
    for connection, _channel in members.values():
        connection.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
