"""The committed reference cassettes and the exact worker command each one recorded.

The recording side's list: `tools/record-cassettes` records each `argv` with `rrlab record`
(printing it with `python tests/replay/scenarios.py NAME`) from the repository root, and `rrlab
record` stores that command in the cassette (argv, working directory, prepare step). Replaying
the committed cassettes needs no list: `make ci` / `make replay` (tools/replay-cassettes) run
`rrlab replay --all cassettes`, each cassette with the command it stored. The replay tests still
use `argv` and `artifacts` here to run the same command (and variations of it) in a fresh
working directory against the fake broker. The worker talks to its default worker-facing ports
(Kafka 19092, AMQP 15673, MQTT 11883), so no address appears here.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"
COUNT = 200
SEED = 1


@dataclass(frozen=True)
class Scenario:
    """A cassette and the command whose run it holds."""

    name: str
    cassette: str  # directory name under cassettes/
    argv: list[str]  # run in an empty temp cwd; writes its artifacts relative to it
    artifacts: list[str]  # relative paths compared byte-for-byte with the recorded copies
    timing_artifacts: list[str] = field(default_factory=list)  # checked for shape only
    needs: list[str] = field(default_factory=list)  # executables the command runs
    broker: list[str] = field(default_factory=list)  # `rrlab brokers up` args it was recorded on
    #: run first, outside any sandbox: fetches or builds what `argv` needs (jars, a compiled
    #: client), since `rrlab replay` runs `argv` where no network is reachable; recorded with
    #: `rrlab record --prepare`, so the cassette stores it and `replay --all` runs it first
    prepare: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        """The cassette directory in this checkout."""
        return CASSETTES / self.cassette

    def missing(self) -> list[str]:
        """The executables in `needs` that are not on PATH."""
        return [exe for exe in self.needs if shutil.which(exe) is None]


def _worker(name: str, driver: str, *extra: str) -> Scenario:
    out = f"out/{name}"
    argv = [sys.executable, "-m", "worker", "--driver", driver, "--count", str(COUNT)]
    argv += ["--seed", str(SEED), "--out", out, *extra]
    return Scenario(name, name, argv, [f"{out}/aggregate.json"])


def _lab(name: str) -> Scenario:
    """The two-driver lab: one recorded run in which the worker talks Kafka and AMQP at the same
    time (two worker processes started together), both protocols in one cassette."""
    kafka, amqp = (
        [sys.executable, "-m", "worker", "--driver", d, "--count", str(COUNT), "--seed", str(SEED),
         "--out", f"out/{name}/{d}"]
        for d in ("kafka", "amqp")
    )  # fmt: skip
    argv = ["bash", "-c", _LAB_SCRIPT, "lab", str(len(kafka)), *kafka, *amqp]
    return Scenario(name, name, argv, [f"out/{name}/kafka/aggregate.json",
                                       f"out/{name}/amqp/aggregate.json"])  # fmt: skip


#: run two commands at once ($1 = length of the first), fail if either fails
_LAB_SCRIPT = (
    'n=$1; shift; first=("${@:1:$n}"); second=("${@:$((n + 1))}"); '
    '"${first[@]}" & a=$!; "${second[@]}" & b=$!; wait "$a"; ra=$?; wait "$b"; rb=$?; '
    "exit $(( ra != 0 ? ra : rb ))"
)


SCENARIOS: list[Scenario] = [
    _worker("worker-kafka-tansu", "kafka"),
    _worker("worker-kafka-apache-group", "kafka", "--kafka-group", "rrlab-worker"),
    _worker("worker-amqp-rabbitmq", "amqp"),
    _worker("worker-mqtt-amqtt", "mqtt"),
    _worker("worker-mqtt-mosquitto", "mqtt"),
    _lab("worker-lab-kafka-amqp"),
]
BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}


def print_scenario(by_name: dict[str, Scenario], argv: list[str]) -> int:
    """`[--artifacts|--broker|--prepare] NAME`: NAME's argv (or artifacts, broker args, prepare
    step), NUL-separated for `mapfile -d ''`; with no NAME, the names one per line."""
    what = argv[0] if argv[:1] in (["--artifacts"], ["--broker"], ["--prepare"]) else ""
    argv = argv[1:] if what else argv
    if not argv:
        print("\n".join(by_name))
        return 0
    scenario = by_name.get(argv[0])
    if scenario is None:
        print(f"unknown scenario {argv[0]!r}; known: {', '.join(by_name)}", file=sys.stderr)
        return 2
    items = {
        "--artifacts": scenario.artifacts,
        "--broker": scenario.broker,
        "--prepare": scenario.prepare,
    }.get(what, scenario.argv)
    sys.stdout.write("".join(f"{item}\0" for item in items))
    return 0


def main(argv: list[str]) -> int:
    """`scenarios.py [--artifacts|--broker|--prepare] NAME` (see print_scenario)."""
    return print_scenario(BY_NAME, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
