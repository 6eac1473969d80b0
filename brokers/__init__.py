"""Real brokers on 127.0.0.1 without Docker: Kafka :9092, AMQP 0-9-1 :5672, MQTT :1883.

Python API (the CLI `rrlab brokers` is a thin layer over it):
    up(["kafka", "amqp"]) -> {name: {"address", "impl", "port", "pid", "ready_s", ...}}
        (kafka_impl "auto": Apache Kafka where java runs, else Tansu; or "tansu" / "apache")
    down(["kafka"]) -> names stopped          status() -> rows (broker, impl, port, pid, state, log)
    start_kafka(home, port, advertised_port=...) -> record; stop(record)   (untracked, e.g. bench)
"""

from rrlab.brokers.control import NAMES, BrokerError, down, start_kafka, status, stop, up
from rrlab.brokers.rabbitmq import PASSWORD as AMQP_PASSWORD
from rrlab.brokers.rabbitmq import URL as AMQP_URL
from rrlab.brokers.rabbitmq import USER as AMQP_USER
from rrlab.brokers.rabbitmq import VHOST as AMQP_VHOST

KAFKA_BOOTSTRAP = "127.0.0.1:9092"
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883

__all__ = [
    "AMQP_PASSWORD",
    "AMQP_URL",
    "AMQP_USER",
    "AMQP_VHOST",
    "KAFKA_BOOTSTRAP",
    "MQTT_HOST",
    "MQTT_PORT",
    "NAMES",
    "BrokerError",
    "down",
    "start_kafka",
    "status",
    "stop",
    "up",
]
