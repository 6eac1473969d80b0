"""Two pika connections open at once, for the AMQP replay tests: a consumer connection declares
the queue and consumes, a publisher connection publishes COUNT messages with confirms. Both
connections are opened (and their channels too) before either does anything else, in the order
--order names; the bodies consumed go to OUT, one per line.

Recorded with one order and replayed with the other, each live connection first binds to the
recorded connection of the other role (their openings are alike) and must move.

--publish late starts the consumer before anything is published and waits --early seconds for
deliveries first: a delivery then is one whose message was never published, and the client
exits 4. --publish never publishes nothing: the consumer waits --wait seconds, writes what it
got and exits 3 (the replay tests' publisher that never came).

Usage: python tests/replay/amqp_two_connections.py OUT [--order consumer-first|publisher-first]
       [--count N] [--url URL] [--queue NAME] [--publish first|late|never] [--early S] [--wait S]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pika

URL = "amqp://rrlab:rrlab-secret-pw@127.0.0.1:15673/rrlab"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument(
        "--order", choices=("consumer-first", "publisher-first"), default="consumer-first"
    )
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--url", default=URL)
    p.add_argument("--queue", default="rrlab.two")
    p.add_argument("--publish", choices=("first", "late", "never"), default="first")
    p.add_argument("--early", type=float, default=1.0)
    p.add_argument("--wait", type=float, default=5.0)
    args = p.parse_args(argv)

    def connect() -> tuple[pika.BlockingConnection, object]:
        params = pika.URLParameters(args.url)
        params.connection_attempts = 1
        connection = pika.BlockingConnection(params)
        return connection, connection.channel()

    if args.order == "consumer-first":
        (con, con_ch), (pub, pub_ch) = connect(), connect()
    else:
        (pub, pub_ch), (con, con_ch) = connect(), connect()
    con_ch.queue_declare(args.queue, exclusive=False, auto_delete=False)
    pub_ch.confirm_delivery()

    def publish() -> None:
        for n in range(args.count):
            pub_ch.basic_publish("", args.queue, f"message {n}".encode())

    if args.publish == "first":
        publish()
    got: list[str] = []

    def on_message(ch, method, _properties, body: bytes) -> None:
        got.append(body.decode())
        ch.basic_ack(delivery_tag=method.delivery_tag)

    con_ch.basic_qos(prefetch_count=args.count)
    tag = con_ch.basic_consume(args.queue, on_message)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.publish == "late":
        con.process_data_events(time_limit=args.early)
        if got:
            print(f"{len(got)} deliveries before anything was published", file=sys.stderr)
            return 4
        publish()
    deadline = time.monotonic() + args.wait
    while len(got) < args.count:
        con.process_data_events(time_limit=0.2)
        if args.publish == "never" and time.monotonic() > deadline:
            out.write_text("".join(f"{line}\n" for line in got))
            print(f"{len(got)} deliveries in {args.wait:g} s, nothing published", file=sys.stderr)
            return 3
    con_ch.basic_cancel(tag)
    con_ch.queue_delete(args.queue)
    pub.close()
    con.close()
    out.write_text("".join(f"{line}\n" for line in got))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
