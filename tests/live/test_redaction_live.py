"""Real pika, real RabbitMQ, the fixture password on the wire: redaction must remove it.

A capture relay (tools/capture_golden.py) records what pika sends; the stream is framed,
decoded and redacted frame by frame. The password must appear nowhere in the redacted output
(frames or summaries), the StartOk must still decode, and the user name must survive.
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pika
import pytest

from rrlab import brokers
from rrlab.rr.canonical import dumps
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import decoder_for, framer_for, redact
from rrlab.rr.redact import PLACEHOLDER

pytestmark = [pytest.mark.live, pytest.mark.timeout(120)]

TOOL = Path(__file__).resolve().parents[2] / "tools" / "capture_golden.py"


def load_relay():
    spec = importlib.util.spec_from_file_location("capture_golden", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Relay


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pika_password_never_leaves_redaction(live_brokers):
    live_brokers("amqp")
    secret = brokers.AMQP_PASSWORD.encode()
    relay = load_relay()(free_port(), ("127.0.0.1", 5672))
    port = relay.server.getsockname()[1]
    try:
        params = pika.ConnectionParameters(
            host="127.0.0.1",
            port=port,
            virtual_host=brokers.AMQP_VHOST,
            credentials=pika.PlainCredentials(brokers.AMQP_USER, brokers.AMQP_PASSWORD),
            heartbeat=0,
        )
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("rr-redaction-live", auto_delete=True)
        ch.basic_publish("", "rr-redaction-live", b"hello")
        conn.close()
    finally:
        streams = relay.stop()

    assert len(streams) == 1
    redacted_out = bytearray()
    fields = []
    for direction in (Direction.C2S, Direction.S2C):
        raw_stream = bytes(streams[0][direction.value])
        if direction is Direction.C2S:
            assert secret in raw_stream  # pika really sent it through the relay
        decoder = decoder_for(Proto.AMQP)
        for frame in framer_for(Proto.AMQP, direction).feed(raw_stream):
            decoded = decoder.decode(direction, frame.raw)
            new, red = redact(Proto.AMQP, direction, frame.raw, decoded)
            redacted_out += new + dumps(red.summary) + repr(red.body).encode()
            if red.redacted:
                fields += red.summary["redacted"]
                again = decoder_for(Proto.AMQP).decode(direction, new)
                assert again.summary["method"] == "Connection.StartOk"
                assert "error" not in again.summary
                response = again.body.response
                response = response.encode() if isinstance(response, str) else response
                assert response == b"\x00" + brokers.AMQP_USER.encode() + b"\x00" + PLACEHOLDER
    assert fields == ["Connection.StartOk.response (PLAIN password)"]
    assert secret not in redacted_out
