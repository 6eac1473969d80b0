"""MQTT driver (amqtt client, MQTT 3.1.1): subscribe, publish QoS 1 in concurrent chunks, collect.

MQTT 3.1.1 has no message headers (user properties arrived with MQTT 5, which amqtt does not
speak), so the message body is the whole envelope record: key, sorted headers and payload as
canonical JSON. The subscriber and the publisher are two connections with fixed client ids
(`rrlab-worker-<destination>-sub|-pub`, never amqtt's random ids) and clean sessions, so each
connection sends the same frames in the same order every run: the publisher's packet ids are
not perturbed by deliveries in flight, and its PUBLISHes never interleave with PUBACKs.
"""

from __future__ import annotations

import asyncio

from amqtt.client import MQTTClient
from amqtt.errors import AMQTTError, ClientError, ConnectError
from amqtt.mqtt.constants import QOS_1

from worker.drivers import DriverConfig, Transfer, redact_url
from worker.envelope import Envelope, from_record
from worker.errors import BrokerUnreachable, LoginRefused, RunFailed

CHUNK = 200


def _client(config: DriverConfig, role: str) -> MQTTClient:
    return MQTTClient(
        client_id=f"rrlab-worker-{config.destination}-{role}",
        config={
            "auto_reconnect": False,
            "connection_timeout": max(1, int(config.timeout)),
            "default_qos": QOS_1,
            "keep_alive": 60,
        },
    )


async def _collect(client: MQTTClient, config: DriverConfig, transfer: Transfer, want: int):
    """Take deliveries until `want` distinct envelopes arrived; a silent broker fails the run."""
    while len(transfer.consumed) < want:
        try:
            message = await client.deliver_message(timeout_duration=config.timeout)
        except TimeoutError as exc:
            raise RunFailed(
                f"mqtt topic {config.destination!r}: consumed {len(transfer.consumed)} of "
                f"{want} messages, then nothing for {config.timeout:g} s"
            ) from exc
        if message is not None and message.data is not None:
            transfer.take(from_record(bytes(message.data)))


async def _connect(config: DriverConfig, role: str) -> MQTTClient:
    """A connected client, or BrokerUnreachable within the timeout."""
    client = _client(config, role)
    try:
        await asyncio.wait_for(client.connect(config.address, cleansession=True), config.timeout)
    except (TimeoutError, ConnectError, OSError) as exc:
        code = getattr(exc, "return_code", None)
        if code in (4, 5):  # CONNACK: bad user name or password / not authorized
            what = "bad user name or password" if code == 4 else "not authorized"
            hint = "check the user and password in --mqtt-url or MQTT_URL"
            raise LoginRefused("mqtt", redact_url(config.address), what, hint) from exc
        silent = isinstance(exc, TimeoutError) or isinstance(exc.__cause__, asyncio.CancelledError)
        detail = f"no answer within {config.timeout:g} s" if silent else str(exc)
        raise BrokerUnreachable("mqtt", redact_url(config.address), detail) from exc
    return client


async def _publish(client: MQTTClient, config: DriverConfig, envelopes, transfer) -> None:
    """QoS 1 publishes, CHUNK at a time in flight, each chunk awaited before the next."""
    for start in range(0, len(envelopes), CHUNK):
        chunk = envelopes[start : start + CHUNK]
        for envelope in chunk:
            transfer.mark_sent(envelope.seq)
        sends = [client.publish(config.destination, e.record(), qos=QOS_1) for e in chunk]
        await asyncio.wait_for(asyncio.gather(*sends), config.timeout)
        transfer.produced += len(chunk)


async def _round_trip(config: DriverConfig, envelopes: list[Envelope]) -> Transfer:
    shown = redact_url(config.address)
    transfer = Transfer()
    subscriber = await _connect(config, "sub")
    try:
        await asyncio.wait_for(subscriber.subscribe([(config.destination, QOS_1)]), config.timeout)
        collector = asyncio.create_task(_collect(subscriber, config, transfer, len(envelopes)))
        publisher = await _connect(config, "pub")
        await _publish(publisher, config, envelopes, transfer)
        await publisher.disconnect()
        await collector
        await subscriber.disconnect()
    except TimeoutError as exc:
        raise RunFailed(
            f"mqtt broker at {shown}: no acknowledgement within {config.timeout:g} s"
        ) from exc
    except (AMQTTError, ClientError) as exc:
        raise RunFailed(f"mqtt broker at {shown}: {type(exc).__name__}: {exc}") from exc
    except asyncio.CancelledError as exc:  # amqtt cancels pending acks when the link drops
        raise RunFailed(
            f"mqtt broker at {shown}: the connection was closed while waiting for an "
            "acknowledgement"
        ) from exc
    return transfer


def run(config: DriverConfig, envelopes: list[Envelope]) -> Transfer:
    """Connect, subscribe, publish every envelope at QoS 1, and collect them back."""
    return asyncio.run(_round_trip(config, envelopes))
