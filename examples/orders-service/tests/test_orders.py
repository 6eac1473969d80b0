"""The service against its brokers: recorded once from real ones, replayed offline after.

`rrlab` (the fixture of rrlab's pytest plugin) gives each broker's address for this test; the
marker names the real broker it stands in for when recording.
"""

from __future__ import annotations

import pytest
from orders_service import Order, bill_order, ensure_orders_topic, log_order, read_order, show_order

#: the login of `rrlab brokers up`'s RabbitMQ (it never reaches a cassette)
AMQP_LOGIN = "rrlab:rrlab-secret-pw"
AMQP_VHOST = "rrlab"

ORDER = Order(order_id="A-1001", sku="espresso-beans", quantity=2, amount_cents=2400)


@pytest.mark.rrlab(kafka="127.0.0.1:9092")
def test_order_is_logged_on_kafka(rrlab):
    ensure_orders_topic(rrlab.kafka)
    offset = log_order(rrlab.kafka, ORDER)
    assert read_order(rrlab.kafka, offset) == ORDER


@pytest.mark.rrlab(amqp="127.0.0.1:5672")
def test_order_is_billed_over_amqp(rrlab):
    url = f"amqp://{AMQP_LOGIN}@{rrlab.amqp}/{AMQP_VHOST}"
    assert bill_order(url, ORDER) == ORDER


@pytest.mark.rrlab(mqtt="127.0.0.1:1883")
def test_order_is_shown_over_mqtt(rrlab):
    assert show_order(rrlab.mqtt, ORDER) == ORDER
