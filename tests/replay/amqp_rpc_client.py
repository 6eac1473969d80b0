"""A pika request/reply pair for the binding tests, written the ordinary way: the caller declares
a reply queue named by a fresh uuid4 and publishes a request to `rrlab.rpc` with that queue in
reply_to and a uuid4 correlation_id (also in the body); the responder, on a second connection,
gets the request and publishes the answer to reply_to with the request's correlation_id; the
caller consumes its reply queue and accepts only an answer carrying its own correlation id.
Writes `x squared = y` to OUT.

Usage: python tests/replay/amqp_rpc_client.py OUT [--x N] [--url URL]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import pika

URL = "amqp://rrlab:rrlab-secret-pw@127.0.0.1:15673/rrlab"
REQUESTS = "rrlab.rpc"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--x", type=int, default=7)
    p.add_argument("--url", default=URL)
    args = p.parse_args(argv)
    params = pika.URLParameters(args.url)
    params.connection_attempts = 1

    caller = pika.BlockingConnection(params).channel()
    reply_queue = f"reply-{uuid.uuid4()}"
    correlation_id = str(uuid.uuid4())
    caller.queue_declare(reply_queue, exclusive=True, auto_delete=True)
    caller.queue_declare(REQUESTS, auto_delete=False)
    props = pika.BasicProperties(
        reply_to=reply_queue, correlation_id=correlation_id, content_type="application/json"
    )
    request = {"request_id": correlation_id, "x": args.x}
    caller.basic_publish("", REQUESTS, json.dumps(request, sort_keys=True).encode(), props)

    responder = pika.BlockingConnection(params).channel()
    deadline = time.monotonic() + 20
    while True:
        method, req_props, body = responder.basic_get(REQUESTS)
        if method is not None:
            break
        assert time.monotonic() < deadline, "no request arrived"
        time.sleep(0.05)
    asked = json.loads(body)
    answer = {"request_id": asked["request_id"], "y": asked["x"] ** 2}
    reply_props = pika.BasicProperties(correlation_id=req_props.correlation_id)
    responder.basic_publish("", req_props.reply_to, json.dumps(answer).encode(), reply_props)
    responder.basic_ack(method.delivery_tag)
    responder.connection.close()

    answer_body = b""
    for method, got_props, got in caller.consume(reply_queue, inactivity_timeout=20):
        assert method is not None, "no answer on the reply queue"
        caller.basic_ack(method.delivery_tag)
        if got_props.correlation_id == correlation_id:
            answer_body = got
            break
    caller.cancel()
    caller.connection.close()
    result = json.loads(answer_body)
    assert result["request_id"] == correlation_id, result
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(f"{args.x} squared = {result['y']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
