"""AMQP 0-9-1 driver (pika BlockingConnection): confirmed publishes, then a manual-ack consume.

Written the ordinary way: the queue is the destination name, declared exclusive (the broker
deletes it when the connection closes, so a rerun starts from an empty queue), and the consumer
tag is pika's own random one. The envelope key travels in the `key` header; the other envelope
headers are AMQP table entries beside it, sorted.
"""

from __future__ import annotations

import contextlib
import time

import pika
import pika.exceptions as pex
from pika.adapters.utils.connection_workflow import (
    AMQPConnectorException,
    AMQPConnectorStackTimeout,
)
from pika.spec import Basic, BasicProperties

from worker.drivers import DriverConfig, Transfer, redact_url
from worker.envelope import Envelope, EnvelopeError, from_parts
from worker.errors import BrokerUnreachable, LoginRefused, RunFailed

KEY_HEADER = "key"
PREFETCH = 1000
POLL_SECONDS = 0.2


def _parameters(config: DriverConfig) -> pika.URLParameters:
    """Parse the URL and bound connecting and blocking by --timeout, with a single attempt."""
    params = pika.URLParameters(config.address)
    params.connection_attempts = 1
    params.socket_timeout = config.timeout
    params.stack_timeout = config.timeout
    params.blocked_connection_timeout = config.timeout
    return params


def _reason(exc: Exception, timeout: float) -> str:
    """The innermost useful words of a pika connection error (pika nests them)."""
    inner: object = exc.args[0] if exc.args else exc
    if isinstance(exc, AMQPConnectorStackTimeout) or isinstance(inner, AMQPConnectorStackTimeout):
        return f"no AMQP handshake within {timeout:g} s"
    cause = getattr(inner, "exception", None)  # pika's connector errors wrap the socket error
    if isinstance(cause, OSError):
        return cause.strerror or str(cause)
    return str(inner) or type(exc).__name__


def _properties(envelope: Envelope) -> BasicProperties:
    headers = {name: value for name, value in envelope.headers}
    headers[KEY_HEADER] = envelope.key
    content_type = dict(envelope.headers).get("content-type")
    return BasicProperties(
        content_type=content_type, delivery_mode=1, headers=dict(sorted(headers.items()))
    )


def _decode(properties: BasicProperties, body: bytes) -> Envelope:
    """Envelope from a delivery: key and envelope headers come from the headers table."""
    table = dict(properties.headers or {})
    key = table.pop(KEY_HEADER, None)
    if key is None:
        raise EnvelopeError("AMQP delivery has no 'key' header")
    as_text = [(n, v.decode() if isinstance(v, bytes) else str(v)) for n, v in table.items()]
    return from_parts(key.decode() if isinstance(key, bytes) else str(key), as_text, body)


def _consume(connection, channel, config: DriverConfig, transfer: Transfer) -> None:
    """Consume until every published seq came back; fail if the broker stalls."""
    last_progress = time.monotonic()

    def on_message(ch, method: Basic.Deliver, properties: BasicProperties, body: bytes) -> None:
        nonlocal last_progress
        transfer.take(_decode(properties, body))
        ch.basic_ack(delivery_tag=method.delivery_tag)
        last_progress = time.monotonic()

    channel.basic_qos(prefetch_count=PREFETCH)
    tag = channel.basic_consume(config.destination, on_message, auto_ack=False)
    while len(transfer.consumed) < transfer.produced:
        connection.process_data_events(time_limit=POLL_SECONDS)
        if time.monotonic() - last_progress > config.timeout:
            raise RunFailed(
                f"amqp queue {config.destination!r}: consumed {len(transfer.consumed)} of "
                f"{transfer.produced} messages, then nothing for {config.timeout:g} s"
            )
    channel.basic_cancel(tag)


def run(config: DriverConfig, envelopes: list[Envelope]) -> Transfer:
    """Declare the queue, publish with confirms, consume everything back with manual acks."""
    shown = redact_url(config.address)
    transfer = Transfer()
    try:
        connection = pika.BlockingConnection(_parameters(config))
    except (pex.ProbableAuthenticationError, pex.ProbableAccessDeniedError) as exc:
        hint = "check user, password and vhost in --amqp-url or AMQP_URL"
        raise LoginRefused("amqp", shown, _reason(exc, config.timeout), hint) from exc
    except (pex.AMQPConnectionError, AMQPConnectorException) as exc:
        raise BrokerUnreachable("amqp", shown, _reason(exc, config.timeout)) from exc
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(config.destination, exclusive=True, auto_delete=True)
        for envelope in envelopes:
            transfer.mark_sent(envelope.seq)
            channel.basic_publish(
                "", config.destination, envelope.payload, _properties(envelope), mandatory=True
            )
            transfer.produced += 1
        if transfer.produced:
            _consume(connection, channel, config, transfer)
        connection.close()
    except pex.AMQPError as exc:
        raise RunFailed(f"amqp broker at {shown}: {type(exc).__name__}: {exc}") from exc
    finally:
        if connection.is_open:
            with contextlib.suppress(pex.AMQPError):
                connection.close()
    return transfer
