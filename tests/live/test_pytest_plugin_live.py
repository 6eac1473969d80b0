"""rrlab's pytest plugin, record side: the sample project's tests recorded from real brokers
(`--rrlab-record=all`), then replayed where no broker and no network can answer, then failing
with the field diff once a test sends a changed message."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from replay.sample_project import (
    CASSETTES,
    SAMPLE_TESTS,
    change_amount,
    copy_sample,
    recorded_cassettes,
    run_pytest,
)

pytestmark = pytest.mark.live


def _digests(project: Path) -> dict[str, str]:
    return {
        str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((project / CASSETTES).rglob("*"))
        if p.is_file()
    }


def test_sample_records_from_real_brokers_then_replays_offline(live_brokers, tmp_path):
    live_brokers("kafka", "amqp", "mqtt")
    project = copy_sample(tmp_path / "orders-service", cassettes=False)

    recorded = run_pytest(project, "--rrlab-record=all")
    assert recorded.returncode == 0 and "3 passed" in recorded.stdout, (
        recorded.stdout + recorded.stderr
    )
    assert recorded_cassettes(project) == list(SAMPLE_TESTS)
    leftovers = [p.name for p in (project / "tests" / "cassettes").rglob(".*") if p.is_dir()]
    assert leftovers == [], f"recording left staging directories behind: {leftovers}"

    # once: only the missing cassette is recorded (on the same ports: fewer changed lines),
    # the others replay untouched
    kafka = project / CASSETTES / "test_order_is_logged_on_kafka"
    routes = json.loads((kafka / "cassette.json").read_text())["routes"]
    shutil.rmtree(kafka)
    kept = _digests(project)
    once = run_pytest(project, "--rrlab-record=once")
    assert once.returncode == 0 and "3 passed" in once.stdout, once.stdout + once.stderr
    assert recorded_cassettes(project) == list(SAMPLE_TESTS)
    assert {k: v for k, v in _digests(project).items() if "kafka" not in k} == kept
    assert json.loads((kafka / "cassette.json").read_text())["routes"] == routes

    replayed = run_pytest(project, "--rrlab-record=none", offline=True)
    assert replayed.returncode == 0 and "3 passed" in replayed.stdout, (
        replayed.stdout + replayed.stderr
    )

    change_amount(project)
    changed = run_pytest(project, "--rrlab-record=none", offline=True)
    assert changed.returncode == 1 and "3 failed" in changed.stdout, changed.stdout + changed.stderr
    assert "value.amount_cents: recorded 2400 live 2500" in changed.stdout, changed.stdout
