"""docker-compose.yml cannot run here (no Docker engine): check what it promises instead."""

from __future__ import annotations

from pathlib import Path

import yaml

from rrlab import brokers

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _ports(service: str) -> list[str]:
    return SERVICES[service]["ports"]


def test_three_brokers():
    assert set(SERVICES) == {"redpanda", "rabbitmq", "mosquitto"}
    assert SERVICES["rabbitmq"]["image"].startswith("rabbitmq:3.13")
    assert SERVICES["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert SERVICES["redpanda"]["image"].startswith("redpandadata/redpanda:")


def test_ports_are_published_on_loopback_only():
    published = {}
    for name, service in SERVICES.items():
        for mapping in service["ports"]:
            assert isinstance(mapping, str), f"{name}: use the 'HOST_IP:HOST:CONTAINER' form"
            host_ip, host_port, container_port = mapping.split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {mapping} beyond loopback"
            published[name] = (int(host_port), int(container_port))
    assert published == {
        "redpanda": (9092, 9092),
        "rabbitmq": (5672, 5672),
        "mosquitto": (1883, 1883),
    }


def test_redpanda_advertises_the_published_address():
    command = SERVICES["redpanda"]["command"]
    assert "--advertise-kafka-addr=PLAINTEXT://127.0.0.1:9092" in command
    assert brokers.KAFKA_BOOTSTRAP == "127.0.0.1:9092"


def test_rabbitmq_fixture_matches_the_python_constants():
    env = SERVICES["rabbitmq"]["environment"]
    user, password, vhost = (
        env["RABBITMQ_DEFAULT_USER"],
        env["RABBITMQ_DEFAULT_PASS"],
        env["RABBITMQ_DEFAULT_VHOST"],
    )
    assert f"amqp://{user}:{password}@127.0.0.1:5672/{vhost}" == brokers.AMQP_URL


def test_mosquitto_config_is_mounted_and_anonymous_on_1883():
    (mount,) = SERVICES["mosquitto"]["configs"]
    assert mount["target"] == "/mosquitto/config/mosquitto.conf"
    lines = COMPOSE["configs"][mount["source"]]["content"].splitlines()
    assert "listener 1883 0.0.0.0" in lines
    assert "allow_anonymous true" in lines


def test_no_registry_address_is_named():
    for name, service in SERVICES.items():
        image = service["image"]
        first = image.split("/")[0] if "/" in image else ""
        assert "://" not in image and "." not in first and ":" not in first, f"{name}: {image}"
