"""The replay report's OpenMetrics counters: the prometheus registry is built on first use (not
at the fake broker's start-up), from the tallies kept meanwhile. Whenever it is built, the
snapshot is the same as if every count had gone to it live."""

from __future__ import annotations

from rrlab.replayer.report import ReplayReport

COUNTS = [
    ("kafka", "Produce", "matched", 3),
    ("amqp", "Basic.Publish", "synthesized", 1),
    ("kafka", "Fetch", "missed", 1),
    ("kafka", "Produce", "matched", 2),
    ("kafka", "Produce", "unused", 0),
]
CONNECTIONS = [("kafka", True), ("amqp", False), ("kafka", True)]


def counted(report: ReplayReport, upto: int) -> ReplayReport:
    for proto, api, outcome, n in COUNTS[:upto]:
        report.count(proto, api, outcome, n)
    for proto, bound in CONNECTIONS[: min(upto, len(CONNECTIONS))]:
        report.connection(proto, bound)
    return report


def finish(report: ReplayReport, start: int) -> bytes:
    for proto, api, outcome, n in COUNTS[start:]:
        report.count(proto, api, outcome, n)
    for proto, bound in CONNECTIONS[start:]:
        report.connection(proto, bound)
    return report.metrics_text()


def test_the_snapshot_does_not_depend_on_when_the_registry_is_built():
    snapshots = set()
    for split in range(len(COUNTS) + 1):
        report = counted(ReplayReport(), split)
        assert report.registry is report.registry  # built once (as /metrics reads it live)
        snapshots.add(finish(report, split))
    never_early = finish(ReplayReport(), 0)
    assert snapshots == {never_early}
    text = never_early.decode()
    assert 'rrlab_replay_frames_total{api="Produce",outcome="matched",proto="kafka"} 5.0' in text
    assert 'rrlab_replay_frames_total{api="Produce",outcome="unused",proto="kafka"} 0.0' in text
    assert 'rrlab_replay_connections_total{bound="yes",proto="kafka"} 2.0' in text
    assert 'rrlab_replay_connections_total{bound="no",proto="amqp"} 1.0' in text
    assert "_created" not in text  # no clock value in the snapshot
    assert text.endswith("# EOF\n")
