"""Clients we did not write (Apache Kafka's Java client, amqp-tools, mosquitto_pub/sub) recorded
through `rrlab record` from real brokers, twice: each run's own output is byte-identical, is
the artifact stored in its cassette, and the cassette verifies and holds the client's traffic.

The same scenarios (tests/replay/client_scenarios.py) as the committed cassettes/client-*, on
free listen ports and fresh topic/queue names per run, so the shared brokers are reused.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from proxy_harness import RRLAB, free_block
from replay.client_scenarios import FOREIGN, Scenario

from rrlab.rr.cassette import CassetteReader, verify

pytestmark = pytest.mark.live
COUNT = 50
UPSTREAM = {"kafka": 9092, "amqp": 5672, "mqtt": 1883}
#: What each protocol's cassette must hold: the data frames of COUNT messages.
DATA_FRAMES = {
    "kafka": lambda s: s.get("api") in ("Produce", "Fetch"),
    "amqp": lambda s: s.get("method") in ("Basic.Publish", "Basic.Deliver"),
    "mqtt": lambda s: s.get("packet") == "PUBLISH",
}


def _broker_kwargs(scenario: Scenario) -> tuple[str, dict[str, str]]:
    """`rrlab brokers up` args of the scenario as (name, live_brokers keyword arguments)."""
    name, *rest = scenario.broker
    flags = dict(zip(rest[::2], rest[1::2], strict=True))
    return name, {flag.removeprefix("--").replace("-", "_"): v for flag, v in flags.items()}


def _record(scenario: Scenario, proto: str, run: Path) -> tuple[bytes, Path]:
    """One `rrlab record` of the scenario's client; returns (its output, the cassette)."""
    run.mkdir()
    if scenario.prepare:  # what the client needs first (the Java client's jars and classes)
        ready = subprocess.run(scenario.prepare, capture_output=True, text=True, timeout=1800)
        assert ready.returncode == 0, ready.stdout + ready.stderr
    port = free_block(2)  # the route, and the Kafka broker-node listener after it
    cassette = run / "cassette"
    out = "out/output.txt"
    env = {**os.environ, "CLIENT_PORT": str(port), "CLIENT_COUNT": str(COUNT)}
    if proto == "kafka":  # a fresh topic: offsets from 0 (the output names no topic)
        env["CLIENT_TOPIC"] = f"rrlab.clients.{run.parent.name}.{run.name}"
    argv = [str(RRLAB), "record", f"--{proto}", f"{port}=127.0.0.1:{UPSTREAM[proto]}"]
    argv += ["--cassette", str(cassette), "--write-root", str(run), "--artifact", out]
    argv += ["--log-file", str(run / "proxy-log.jsonl"), "--", *scenario.argv[:-1], out]
    done = subprocess.run(argv, cwd=run, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return (run / out).read_bytes(), cassette


def _param(scenario: Scenario) -> object:
    apache = "apache" in scenario.broker
    return pytest.param(scenario, id=scenario.name, marks=[pytest.mark.apache] if apache else [])


@pytest.mark.parametrize("scenario", [_param(s) for s in FOREIGN])
def test_client_records_identically_twice(live_brokers, tmp_path, scenario):
    assert not scenario.missing(), f"tools missing: {scenario.missing()} (make sysdeps)"
    proto, kwargs = _broker_kwargs(scenario)
    live_brokers(proto, **kwargs)
    first, cassette = _record(scenario, proto, tmp_path / "a")
    again, _ = _record(scenario, proto, tmp_path / "b")

    assert first == again
    lines = first.decode().splitlines()
    assert len(lines) == COUNT + (proto == "kafka")  # the Java client adds a count line
    assert "n=0 sq=0" in lines[0] or '{"n":0,"sq":0}' in lines[0], lines[0]
    assert lines[COUNT - 1].count(str((COUNT - 1) ** 2)) >= 1, lines[COUNT - 1]

    report = verify(cassette)
    assert report, report
    manifest = json.loads((cassette / "cassette.json").read_text())
    assert list(manifest["artifacts"]) == ["out/output.txt"]
    assert (cassette / "artifacts" / "out" / "output.txt").read_bytes() == first
    frames = list(CassetteReader.open(cassette).frames())
    assert {f.proto for f in frames} == {proto}
    assert sum(DATA_FRAMES[proto](f.summary) for f in frames) >= 2
