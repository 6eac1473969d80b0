"""A pika client for the AMQP replay tests, written the ordinary way (pika's random consumer
tag): publishes COUNT JSON messages with confirms to an exclusive queue, then consumes them
(prefetch PREFETCH), spending DELAY seconds on each while pika keeps the connection alive
(heartbeat interval HEARTBEAT: a slow consumer spans several heartbeats each way), acking every
ACK_EVERY-th delivery with multiple=True (1: each one on its own), and writes the bodies it got
to OUT, one per line. With --get it polls Basic.Get instead of consuming; --empty-polls N polls
the still empty queue N times before publishing (a client polling more often than recorded).
--ack-reversed N acks each group of N deliveries in reverse order (a pool finishing its tasks
in another order than they came).
--message-props sets what most pika services set on each message: message_id=uuid4() and
timestamp=now. --abrupt exits without closing the channel or the connection (the process ends,
the socket closes), as a client killed after its work does.

Usage: python tests/replay/amqp_pika_client.py OUT [--count N] [--delay S] [--heartbeat S]
       [--prefetch N] [--ack-every K] [--ack-reversed N] [--get] [--empty-polls N] [--url URL]
       [--queue NAME] [--extra TEXT] [--message-props] [--abrupt]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

import pika

URL = "amqp://rrlab:rrlab-secret-pw@127.0.0.1:15673/rrlab"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, default=4)
    p.add_argument("--delay", type=float, default=1.5)
    p.add_argument("--heartbeat", type=int, default=1)
    p.add_argument("--url", default=URL)
    p.add_argument("--queue", default="rrlab.slow")
    p.add_argument("--prefetch", type=int, default=1)
    p.add_argument("--ack-every", type=int, default=1)
    p.add_argument(
        "--ack-reversed",
        type=int,
        default=0,
        help="ack (single acks) in groups of N deliveries, each group in reverse (a pool's order)",
    )
    p.add_argument("--empty-polls", type=int, default=0, help="Basic.Get polls before publishing")
    p.add_argument("--get", action="store_true", help="poll with Basic.Get instead of consuming")
    p.add_argument("--extra", default="", help="a field appended to every body (changed runs)")
    p.add_argument("--message-props", action="store_true", help="message_id=uuid4, timestamp=now")
    p.add_argument("--abrupt", action="store_true", help="exit without closing anything")
    args = p.parse_args(argv)

    params = pika.URLParameters(args.url)
    params.heartbeat = args.heartbeat
    params.connection_attempts = 1
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(args.queue, exclusive=True, auto_delete=True)
    for _ in range(args.empty_polls):
        method, _props, _body = channel.basic_get(args.queue)
        assert method is None, "the fresh queue has a message"
    for n in range(args.count):
        body = {"n": n, "square": n * n}
        if args.extra:
            body["extra"] = args.extra
        props = pika.BasicProperties(content_type="application/json", headers={"n": n})
        if args.message_props:
            props.message_id, props.timestamp = str(uuid.uuid4()), int(time.time())
        channel.basic_publish("", args.queue, json.dumps(body, sort_keys=True).encode(), props)
    channel.basic_qos(prefetch_count=args.prefetch)
    got: list[str] = []
    unacked: list[int] = []

    def on_message(ch, method, _properties, body: bytes) -> None:
        if args.delay:
            connection.sleep(args.delay)  # processing: pika still does heartbeats meanwhile
        got.append(body.decode())
        if args.ack_reversed:
            unacked.append(method.delivery_tag)
            if len(unacked) == args.ack_reversed or len(got) == args.count:
                for delivery_tag in reversed(unacked):
                    ch.basic_ack(delivery_tag=delivery_tag)
                unacked.clear()
        elif len(got) % args.ack_every == 0 or len(got) == args.count:
            ch.basic_ack(delivery_tag=method.delivery_tag, multiple=args.ack_every > 1)

    if args.get:
        while len(got) < args.count:
            method, properties, body = channel.basic_get(args.queue)
            if method is not None:
                on_message(channel, method, properties, body)
    else:
        tag = channel.basic_consume(args.queue, on_message)
        while len(got) < args.count:
            connection.process_data_events(time_limit=0.2)
        channel.basic_cancel(tag)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{line}\n" for line in got))
    if args.abrupt:
        os._exit(0)  # no Channel.Close, no Connection.Close: the socket just closes
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
