"""Re-recording shows what changed: frame names and counts per connection, never base64."""

from __future__ import annotations

from pathlib import Path

from rrlab.rr.cassette_changes import cassette_outline, changes

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"


def test_outline_counts_frame_names_per_connection():
    lines = cassette_outline(CASSETTES / "worker-amqp-rabbitmq")
    assert "conn 1: amqp c2s Basic.Publish x200" in lines
    assert "conn 1: amqp s2c Basic.Deliver x200" in lines
    assert lines[0] == "conn 1: amqp c2s protocol_header"
    assert not any("raw" in line or "==" in line for line in lines)


def test_changes_show_only_what_differs():
    a = cassette_outline(CASSETTES / "worker-kafka-tansu")
    assert changes(a, a) == []
    fewer = [line.replace("Produce v9 x2", "Produce v9") for line in a]
    diff = changes(a, fewer)
    assert diff[:2] == ["--- previous", "+++ new"]
    assert all(len(line) < 120 for line in diff)
    if fewer != a:
        assert any(line.startswith("-") and "Produce" in line for line in diff[2:])
    long = changes(["x"] * 100, ["y"] * 100, max_lines=10)
    assert len(long) == 11 and long[-1].startswith("...")
