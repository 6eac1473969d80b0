"""The committed client cassettes (cassettes/client-*): clients of other families, not written by
us, each recorded from a real broker through the proxy with its own output as the artifact.

They prove that replay is not shaped around our worker: Apache Kafka's Java client (AdminClient,
idempotent producer, classic consumer group), rabbitmq-c's amqp-tools and Mosquitto's
command-line clients. One list, read by both sides so they cannot drift:
`tools/clients/record-cassettes` records each `argv` with `rrlab record` (printing it with
`python tests/replay/client_scenarios.py NAME`), and replay tests run the same `argv` in a fresh
working directory against the fake broker and compare each of `artifacts` byte-for-byte with
the copy stored in the cassette. The clients talk to the worker-facing default ports (Kafka
19092, AMQP 15673, MQTT 11883), so no address appears here. The kafka-python batching cassettes
(our own test client) ride along in SCENARIOS so that `make client-cassettes` re-records them;
FOREIGN holds the clients of other families only.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "cassettes"
CLIENTS = ROOT / "tools" / "clients"


@dataclass(frozen=True)
class Scenario:
    """A cassette and the client command whose run it holds."""

    name: str
    cassette: str  # directory name under cassettes/
    argv: list[str]  # run in an empty temp cwd; writes its artifacts relative to it
    artifacts: list[str]  # relative paths compared byte-for-byte with the recorded copies
    timing_artifacts: list[str] = field(default_factory=list)  # checked for shape only
    needs: list[str] = field(default_factory=list)  # executables the command runs
    broker: list[str] = field(default_factory=list)  # `rrlab brokers up` args it was recorded on

    @property
    def path(self) -> Path:
        """The cassette directory in this checkout."""
        return CASSETTES / self.cassette

    def missing(self) -> list[str]:
        """The executables in `needs` that are not on PATH (a replay test skips on these)."""
        return [exe for exe in self.needs if shutil.which(exe) is None]


def _client(name: str, script: str, needs: list[str], broker: list[str]) -> Scenario:
    out = f"out/{name}/output.txt"
    return Scenario(name, name, [str(CLIENTS / script), out], [out], needs=needs, broker=broker)


JAVA = ["java", "javac"]
AMQP_TOOLS = ["amqp-declare-queue", "amqp-publish", "amqp-consume", "amqp-delete-queue"]
MOSQUITTO = ["mosquitto_sub", "mosquitto_pub", "stdbuf"]

SCENARIOS: list[Scenario] = [
    _client("client-kafka-java-apache", "kafka-java.sh", JAVA, ["kafka", "--kafka-impl", "apache"]),
    _client("client-kafka-java-tansu", "kafka-java.sh", JAVA, ["kafka", "--kafka-impl", "tansu"]),
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
BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}
#: The clients of other families, not written by us (tools/clients/, cassettes/client-*).
FOREIGN: list[Scenario] = [s for s in SCENARIOS if s.cassette.startswith("client-")]


def main(argv: list[str]) -> int:
    """`client_scenarios.py [--artifacts|--broker] NAME`: NAME's argv (or artifacts, or broker
    args), NUL-separated for `mapfile -d ''`; with no NAME, the names one per line."""
    what = argv[0] if argv[:1] in (["--artifacts"], ["--broker"]) else ""
    argv = argv[1:] if what else argv
    if not argv:
        print("\n".join(BY_NAME))
        return 0
    scenario = BY_NAME.get(argv[0])
    if scenario is None:
        print(f"unknown scenario {argv[0]!r}; known: {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    items = {"--artifacts": scenario.artifacts, "--broker": scenario.broker}.get(
        what, scenario.argv
    )
    sys.stdout.write("".join(f"{item}\0" for item in items))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
