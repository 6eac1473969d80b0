"""Two pika connections open at once, for the AMQP replay tests: a consumer connection declares
the queue and consumes, a publisher connection publishes COUNT messages with confirms. Both
connections are opened (and their channels too) before either does anything else, in the order
--order names; the bodies consumed go to OUT, one per line.

Recorded with one order and replayed with the other, each live connection first binds to the
recorded connection of the other role (their openings are alike) and must move.

Usage: python tests/replay/amqp_two_connections.py OUT [--order consumer-first|publisher-first]
       [--count N] [--url URL] [--queue NAME]
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
    p.add_argument(
        "--order", choices=("consumer-first", "publisher-first"), default="consumer-first"
    )
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--url", default=URL)
    p.add_argument("--queue", default="rrlab.two")
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
    for n in range(args.count):
        pub_ch.basic_publish("", args.queue, f"message {n}".encode())
    got: list[str] = []

    def on_message(ch, method, _properties, body: bytes) -> None:
        got.append(body.decode())
        ch.basic_ack(delivery_tag=method.delivery_tag)

    con_ch.basic_qos(prefetch_count=args.count)
    tag = con_ch.basic_consume(args.queue, on_message)
    while len(got) < args.count:
        con.process_data_events(time_limit=0.2)
    con_ch.basic_cancel(tag)
    con_ch.queue_delete(args.queue)
    pub.close()
    con.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{line}\n" for line in got))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
