"""Kafka replay of a client family we did not write: Apache Kafka's Java client (AdminClient,
idempotent producer, classic consumer group), recorded on Apache Kafka and on Tansu."""

from __future__ import annotations

import subprocess

import pytest

from .client_scenarios import SCENARIOS
from .conftest import assert_replays

JAVA = [s for s in SCENARIOS if s.name.startswith("client-kafka-java")]


@pytest.mark.parametrize("scenario", JAVA, ids=lambda s: s.name)
def test_java_client_replays_byte_identical(scenario, tmp_path):
    missing = scenario.missing()
    assert not missing, f"{scenario.name} needs {missing} (tools/ensure-system-packages)"
    ready = subprocess.run(scenario.prepare, capture_output=True, text=True, timeout=1800)
    assert ready.returncode == 0, (
        f"{' '.join(scenario.prepare)} (fetches the Kafka jars with Maven: run it once where "
        f"the network is reachable, e.g. `make prepare`): {ready.stderr}"
    )
    for mode in ("transcript", "transcript", "lookup"):
        served = assert_replays(
            scenario.path, scenario.argv, scenario.artifacts, tmp_path, "--match", mode
        )
        kafka = served.report["by_api"]["kafka"]
        assert kafka["Produce"]["matched"] >= 1 and kafka["Fetch"]["matched"] >= 1
