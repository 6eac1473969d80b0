"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rrlab.brokers import BrokerError
from rrlab.brokers.session import LiveBrokers

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """A pytest-xdist worker in a network namespace of its own (tools/netns-python sets
    RRLAB_OWN_NETNS) starts its own brokers on the default ports there, so it also keeps their
    state apart: two workers sharing one .rrlab/brokers would each take the other's records for
    brokers of its own. The Kafka jar cache stays shared (kafka.libs_dir: read-only once filled)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and os.environ.get("RRLAB_OWN_NETNS") and "RRLAB_STATE_DIR" not in os.environ:
        os.environ["RRLAB_STATE_DIR"] = str(ROOT / ".rrlab" / "xdist" / worker)


@pytest.fixture(scope="session")
def live_brokers():
    """Factory that ensures real brokers run on their default 127.0.0.1 ports.

        addrs = live_brokers("kafka", "amqp", kafka_impl="tansu")   # names default to all three
        addrs["kafka"]  -> "127.0.0.1:9092"       (bootstrap_servers)
        addrs["amqp"]   -> "amqp://rrlab:rrlab-secret-pw@127.0.0.1:5672/rrlab"
        addrs["mqtt"]   -> "127.0.0.1:1883"       (mqtt_impl="amqtt" | "mosquitto")

    Brokers already running (e.g. from `rrlab brokers up`) are reused and left running; those
    this session started are stopped when the session ends (set RRLAB_KEEP_BROKERS=1 to keep
    them). Asking for the other Kafka/MQTT impl stops the running one first (same port) and
    restores it at session end. A broker that cannot start fails the test, with its log path.
    """
    session = LiveBrokers()

    def ensure(*names: str, kafka_impl: str = "tansu", mqtt_impl: str = "amqtt") -> dict:
        try:
            return session(*names, kafka_impl=kafka_impl, mqtt_impl=mqtt_impl)
        except BrokerError as exc:
            pytest.fail(f"live brokers: {exc}", pytrace=False)

    yield ensure
    session.close()
