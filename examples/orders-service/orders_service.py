"""orders-service: a tiny service that announces each placed order on three brokers.

Kafka (kafka-python) keeps the order log, RabbitMQ (pika) feeds the billing queue, MQTT (amqtt)
tells the shop floor's displays. Nothing here knows about rrlab: the tests hand it the
addresses of the brokers, real or recorded.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass

import pika
from amqtt.client import MQTTClient
from amqtt.mqtt.constants import QOS_1
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError

ORDERS_TOPIC = "orders.placed"
DISPLAY_TOPIC = "shop/orders"
#: exclusive: RabbitMQ deletes it when this connection closes
BILLING_QUEUE = "orders.billing"
#: every wait on a broker, in seconds
TIMEOUT = 20


@dataclass(frozen=True)
class Order:
    order_id: str
    sku: str
    quantity: int
    amount_cents: int

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Order:
        return cls(**json.loads(data))


# -- Kafka: the order log -------------------------------------------------------------------------


def ensure_orders_topic(bootstrap: str) -> None:
    """One partition, so the log keeps the order of orders."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        admin.create_topics({ORDERS_TOPIC: {"num_partitions": 1, "replication_factor": 1}})
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def log_order(bootstrap: str, order: Order) -> int:
    """Append the order to the log; its offset."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        future = producer.send(
            ORDERS_TOPIC, key=order.order_id.encode(), value=order.to_json(), partition=0
        )
        return future.get(timeout=TIMEOUT).offset
    finally:
        producer.close()


def read_order(bootstrap: str, offset: int) -> Order:
    """The order logged at `offset`."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partition = TopicPartition(ORDERS_TOPIC, 0)
        consumer.assign([partition])
        consumer.seek(partition, offset)
        for records in consumer.poll(timeout_ms=TIMEOUT * 1000, max_records=1).values():
            return Order.from_json(records[0].value)
        raise TimeoutError(f"no order at offset {offset} of {ORDERS_TOPIC}")
    finally:
        consumer.close()


# -- AMQP: the billing queue ----------------------------------------------------------------------


def bill_order(url: str, order: Order) -> Order:
    """Queue the order for billing and take it back off the queue, as billing would."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        queue = channel.queue_declare(BILLING_QUEUE, exclusive=True).method.queue
        channel.basic_publish(
            "",
            queue,
            order.to_json(),
            pika.BasicProperties(content_type="application/json", delivery_mode=2),
        )
        method, _properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            raise LookupError(f"billing queue {queue} is empty")
        return Order.from_json(body)
    finally:
        connection.close()


# -- MQTT: the shop floor's displays ---------------------------------------------------------------


async def _display(address: str, order: Order) -> Order:
    config = {"auto_reconnect": False, "keep_alive": 60, "default_qos": QOS_1}
    display = MQTTClient(client_id="orders-display", config=config)
    service = MQTTClient(client_id="orders-service", config=config)
    await display.connect(f"mqtt://{address}/", cleansession=True)
    await display.subscribe([(DISPLAY_TOPIC, QOS_1)])
    await service.connect(f"mqtt://{address}/", cleansession=True)
    await service.publish(DISPLAY_TOPIC, order.to_json(), qos=QOS_1)
    message = await display.deliver_message(timeout_duration=TIMEOUT)
    await service.disconnect()
    await display.disconnect()
    return Order.from_json(bytes(message.data))


def show_order(address: str, order: Order) -> Order:
    """Announce the order to the displays; what a display received."""
    return asyncio.run(_display(address, order))
