"""The committed client cassettes (cassettes/client-*): clients of other families, not written by
us, each recorded from a real broker through the proxy with its own output as the artifact.

They prove that replay is not shaped around our worker: Apache Kafka's Java client (AdminClient,
idempotent producer, classic consumer group), rabbitmq-c's amqp-tools and Mosquitto's
command-line clients. One list, read by both sides so they cannot drift:
`tools/clients/record-cassettes` records each `argv` (and its `prepare` step) with `rrlab record`
(printing it with `python tests/replay/client_scenarios.py NAME`), which stores both in the
cassette for `rrlab replay --all`; replay tests run the same `argv` in a fresh working directory
against the fake broker and compare each of `artifacts` byte-for-byte with the copy stored in
the cassette. The clients talk to the worker-facing default ports (Kafka
19092, AMQP 15673, MQTT 11883), so no address appears here. The kafka-python batching cassettes
(our own test client) ride along in SCENARIOS so that `make client-cassettes` re-records them;
FOREIGN holds the clients of other families only.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:  # imported as part of the test package
    from .scenarios import Scenario, print_scenario
except ImportError:  # run as a script, or imported with tests/replay on sys.path (tools/)
    from scenarios import Scenario, print_scenario

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "cassettes"
CLIENTS = ROOT / "tools" / "clients"


def _client(
    name: str,
    script: str,
    needs: list[str],
    broker: list[str],
    *extra: str,
    prepare: bool = False,
) -> Scenario:
    """`script [EXTRA...] OUT`; with `prepare`, `script --prepare` fetches and builds what it
    needs first."""
    out = f"out/{name}/output.txt"
    first = [str(CLIENTS / script), "--prepare"] if prepare else []
    argv = [str(CLIENTS / script), *extra, out]
    return Scenario(name, name, argv, [out], needs=needs, broker=broker, prepare=first)


JAVA = ["java", "javac"]
AMQP_TOOLS = ["amqp-declare-queue", "amqp-publish", "amqp-consume", "amqp-delete-queue"]
MOSQUITTO = ["mosquitto_sub", "mosquitto_pub", "stdbuf"]

SCENARIOS: list[Scenario] = [
    _client(
        "client-kafka-java-apache",
        "kafka-java.sh",
        JAVA,
        ["kafka", "--kafka-impl", "apache"],
        prepare=True,  # Apache Kafka's jars (Maven) and the compiled client
    ),
    _client(
        "client-kafka-java-tansu",
        "kafka-java.sh",
        JAVA,
        ["kafka", "--kafka-impl", "tansu"],
        prepare=True,
    ),
    _client("client-amqp-tools-rabbitmq", "amqp-tools.sh", AMQP_TOOLS, ["amqp"]),
    _client(
        "client-mqtt-mosquitto-clients-amqtt",
        "mosquitto-clients.sh",
        MOSQUITTO,
        ["mqtt", "--mqtt-impl", "amqtt"],
    ),
    _client(
        "client-mqtt-mosquitto-clients-mosquitto",
        "mosquitto-clients.sh",
        MOSQUITTO,
        ["mqtt", "--mqtt-impl", "mosquitto"],
    ),
    # MQTT 3.1 (protocol name MQIsdp, level 3); amqtt's broker refuses that level
    _client(
        "client-mqtt-mosquitto-clients-v31-mosquitto",
        "mosquitto-clients.sh",
        MOSQUITTO,
        ["mqtt", "--mqtt-impl", "mosquitto"],
        *("-V", "mqttv31"),
    ),
]


def _batching(name: str, broker: list[str], *extra: str) -> Scenario:
    """kafka-python with its batching and pace set from the command line (replays of it use
    other batch sizes and a slow consumer: tests/replay/test_replay_kafka.py)."""
    out = f"out/{name.replace('-tansu', '').replace('-apache', '')}/records.txt"
    script = str(ROOT / "tests" / "replay" / "kafka_batching_client.py")
    argv = [sys.executable, script, "--count", "200", *extra, "--out", out]
    return Scenario(name, name, argv, [out], broker=broker)


SCENARIOS += [
    _batching("kafka-batching-tansu", ["kafka", "--kafka-impl", "tansu"]),
    _batching(
        "kafka-batching-apache-group",
        ["kafka", "--kafka-impl", "apache"],
        *("--group", "rrlab-batching", "--topic", "rrlab.batching.group"),
    ),
]
SCENARIOS += [
    # kafka-python pinned to Kafka 0.11's protocol: Produce v3, Fetch v5, Metadata v4, ...
    _batching(
        "kafka-batching-pinned-0.11-apache",
        ["kafka", "--kafka-impl", "apache"],
        *("--api-version", "0.11", "--group", "rrlab-pinned", "--topic", "rrlab.batching.pinned"),
    ),
    # a raw-socket client opening with ApiVersions v5 (newer than kio), as current clients do
    Scenario(
        "kafka-raw-api-versions-apache",
        "kafka-raw-api-versions-apache",
        [
            sys.executable,
            str(ROOT / "tests" / "replay" / "kafka_raw_api_versions_client.py"),
            "--out",
            "out/kafka-raw-api-versions/raw.txt",
        ],
        ["out/kafka-raw-api-versions/raw.txt"],
        broker=["kafka", "--kafka-impl", "apache"],
    ),  # fmt: skip
]
BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}
#: The clients of other families, not written by us (tools/clients/, cassettes/client-*).
FOREIGN: list[Scenario] = [s for s in SCENARIOS if s.cassette.startswith("client-")]


def main(argv: list[str]) -> int:
    """`client_scenarios.py [--artifacts|--broker|--prepare] NAME` (see
    scenarios.print_scenario)."""
    return print_scenario(BY_NAME, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
