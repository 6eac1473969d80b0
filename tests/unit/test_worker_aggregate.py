"""worker.aggregate: the aggregate is canonical, clock-free and independent of arrival order."""

from __future__ import annotations

import json
import random

import canonicaljson

from worker.aggregate import RunFacts, build_aggregate, build_report, digest, latency_summary
from worker.envelope import make_envelopes

FACTS = RunFacts(driver="kafka", destination="rrlab.worker.4", seed=4, count=60)


def test_digest_ignores_arrival_order():
    envelopes = make_envelopes(4, 60)
    shuffled = list(envelopes)
    random.Random(0).shuffle(shuffled)
    assert shuffled != envelopes
    assert digest(shuffled) == digest(envelopes)


def test_digest_sees_content():
    assert digest(make_envelopes(4, 60)) != digest(make_envelopes(5, 60))
    assert digest(make_envelopes(4, 60)) != digest(make_envelopes(4, 59))


def test_aggregate_is_canonical_and_repeatable():
    envelopes = make_envelopes(4, 60)
    shuffled = list(reversed(envelopes))
    first = build_aggregate(FACTS, 60, envelopes)
    assert first == build_aggregate(FACTS, 60, shuffled)
    data = json.loads(first)
    assert first == canonicaljson.encode_canonical_json(data)
    assert data["produced"] == data["consumed"] == 60
    assert sum(row["count"] for row in data["per_key"].values()) == 60
    assert data["digest"]["value"] == digest(envelopes)


def test_aggregate_holds_no_timing():
    text = build_aggregate(FACTS, 60, make_envelopes(4, 60)).decode()
    for word in ("time", "latency", "elapsed", "offset", "tag"):
        assert word not in text


def test_report_names_aggregate_and_timings():
    agg = build_aggregate(FACTS, 3, make_envelopes(4, 3))
    report = json.loads(
        build_report(
            FACTS, agg, address="127.0.0.1:9092", duplicates=0, elapsed=0.5,
            latencies=[0.1, 0.2, 0.3],
        )
    )  # fmt: skip
    assert report["messages_per_second"] == 6.0
    assert report["latency_seconds"]["max"] == 0.3
    assert report["latency_seconds"]["p50"] == 0.2
    assert len(report["aggregate_sha256"]) == 64


def test_latency_summary_empty():
    assert latency_summary([]) == {"count": 0}
