"""rrlab's pytest plugin, replay side, on the sample project's committed cassettes: its tests
pass offline (serially and under pytest-xdist), a changed message fails its test with the field
diff, and replay-only mode (CI's default) refuses a test that has no cassette."""

from __future__ import annotations

import hashlib

from .sample_project import (
    CASSETTES,
    SAMPLE_TESTS,
    change_amount,
    copy_sample,
    recorded_cassettes,
    run_pytest,
)


def _digests(project) -> dict[str, str]:
    return {
        str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((project / CASSETTES).rglob("*"))
        if p.is_file()
    }


def test_committed_sample_cassettes_replay_offline(tmp_path):
    project = copy_sample(tmp_path / "orders-service")
    assert recorded_cassettes(project) == list(SAMPLE_TESTS)
    before = _digests(project)
    run = run_pytest(project, "--rrlab-record=none", offline=True)
    assert run.returncode == 0 and "3 passed" in run.stdout, run.stdout + run.stderr
    assert _digests(project) == before, "a replay changed the committed cassettes"


def test_default_mode_replays_an_existing_cassette(tmp_path):
    """`once` (the default outside CI) with every cassette present records nothing: with no
    network it could not, so passing proves each test replayed."""
    project = copy_sample(tmp_path / "orders-service")
    run = run_pytest(project, offline=True)
    assert run.returncode == 0 and "3 passed" in run.stdout, run.stdout + run.stderr


def test_sample_replays_under_xdist(tmp_path):
    project = copy_sample(tmp_path / "orders-service")
    run = run_pytest(project, "-v", "-n", "2", "--rrlab-record=none", offline=True)
    assert "2 workers [3 items]" in run.stdout, run.stdout + run.stderr
    assert run.returncode == 0 and "3 passed" in run.stdout, run.stdout + run.stderr


def test_a_changed_message_fails_its_test_with_the_field_diff(tmp_path):
    project = copy_sample(tmp_path / "orders-service")
    change_amount(project)
    run = run_pytest(project, "--rrlab-record=none", offline=True)
    out = run.stdout + run.stderr
    assert run.returncode == 1 and "3 failed" in run.stdout, out
    for diff in (
        "value.amount_cents: recorded 2400 live 2500",  # the Kafka record
        "body.amount_cents: recorded 2400 live 2500",  # the AMQP message
        "payload.amount_cents: recorded 2400 live 2500",  # the MQTT packet
    ):
        assert diff in run.stdout, out
    assert "--rrlab-record=rewrite" in run.stdout, out


def test_a_recording_whose_test_fails_is_not_kept(tmp_path):
    """No broker answers (this tier runs none): the test fails, and neither a cassette nor the
    proxy's staging directory is left behind, so the next run records again."""
    project = copy_sample(tmp_path / "orders-service", cassettes=False)
    run = run_pytest(project, "-k", "amqp", "--rrlab-record=once", offline=True)
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout + run.stderr
    assert "recording discarded" in run.stdout, run.stdout
    assert recorded_cassettes(project) == []
    left = (
        [p.name for p in (project / CASSETTES).iterdir()] if (project / CASSETTES).exists() else []
    )
    assert left == [], left


def test_replay_only_mode_fails_a_test_without_a_cassette(tmp_path):
    """CI set: `none` is the default, and a missing cassette says how to record it."""
    project = copy_sample(tmp_path / "orders-service", cassettes=False)
    run = run_pytest(project, "-k", "kafka", env={"CI": "true"}, offline=True)
    assert run.returncode == 1 and "1 error" in run.stdout, run.stdout + run.stderr
    assert "no cassette at" in run.stdout and "--rrlab-record=once" in run.stdout, run.stdout
    assert recorded_cassettes(project) == []


MARKER_ONLY = """
import os

import pytest
from orders_service import Order, show_order

ORDER = Order(order_id="A-1001", sku="espresso-beans", quantity=2, amount_cents=2400)


@pytest.mark.rrlab(mqtt=True, cassette="cassettes/test_orders/test_order_is_shown_over_mqtt")
def test_marker_alone():
    assert show_order(os.environ["RRLAB_MQTT"], ORDER) == ORDER
"""


def test_a_marked_test_gets_its_addresses_from_the_environment(tmp_path):
    """No fixture asked for: the marker alone starts the fake broker, whose address is in
    RRLAB_MQTT for the test's duration; `cassette=` picks another test's cassette."""
    project = copy_sample(tmp_path / "orders-service")
    (project / "tests" / "test_marker_only.py").write_text(MARKER_ONLY)
    run = run_pytest(project, "tests/test_marker_only.py", "--rrlab-record=none", offline=True)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr
