"""MQTT driver (amqtt client, MQTT 3.1.1): subscribe, publish QoS 1 in concurrent chunks, collect.

MQTT 3.1.1 has no message headers (user properties arrived with MQTT 5, which amqtt does not
speak), so the message body is the whole envelope record: key, sorted headers and payload as
canonical JSON. The client id is fixed per destination (no random id) and the session is clean,
so the same seed sends the same CONNECT and SUBSCRIBE every run.
"""

from __future__ import annotations

import asyncio

from amqtt.client import MQTTClient
from amqtt.errors import AMQTTError, ClientError, ConnectError
from amqtt.mqtt.constants import QOS_1

from worker.drivers import DriverConfig, Transfer, redact_url
from worker.envelope import Envelope, from_record
from worker.errors import BrokerUnreachable, RunFailed

CHUNK = 200


def _client(config: DriverConfig) -> MQTTClient:
    return MQTTClient(
        client_id=f"rrlab-worker-{config.destination}",
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


async def _round_trip(config: DriverConfig, envelopes: list[Envelope]) -> Transfer:
    shown = redact_url(config.address)
    transfer = Transfer()
    client = _client(config)
    try:
        await asyncio.wait_for(client.connect(config.address, cleansession=True), config.timeout)
    except (TimeoutError, ConnectError, OSError) as exc:
        silent = isinstance(exc, TimeoutError) or isinstance(exc.__cause__, asyncio.CancelledError)
        detail = f"no answer within {config.timeout:g} s" if silent else str(exc)
        raise BrokerUnreachable("mqtt", shown, detail) from exc
    try:
        await asyncio.wait_for(client.subscribe([(config.destination, QOS_1)]), config.timeout)
        collector = asyncio.create_task(_collect(client, config, transfer, len(envelopes)))
        for start in range(0, len(envelopes), CHUNK):
            chunk = envelopes[start : start + CHUNK]
            for envelope in chunk:
                transfer.mark_sent(envelope.seq)
            sends = [client.publish(config.destination, e.record(), qos=QOS_1) for e in chunk]
            await asyncio.wait_for(asyncio.gather(*sends), config.timeout)
            transfer.produced += len(chunk)
        await collector
        await client.disconnect()
    except TimeoutError as exc:
        raise RunFailed(
            f"mqtt broker at {shown}: no acknowledgement within {config.timeout:g} s"
        ) from exc
    except (AMQTTError, ClientError) as exc:
        raise RunFailed(f"mqtt broker at {shown}: {type(exc).__name__}: {exc}") from exc
    return transfer


def run(config: DriverConfig, envelopes: list[Envelope]) -> Transfer:
    """Connect, subscribe, publish every envelope at QoS 1, and collect them back."""
    return asyncio.run(_round_trip(config, envelopes))
