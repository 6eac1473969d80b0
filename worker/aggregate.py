"""The deterministic aggregate of a run, and the run report that may hold timings.

`aggregate.json` is compared byte-for-byte between runs (recorded vs replayed), so it holds
only what the seed decides: counts, per-key figures and a digest over the consumed envelopes
sorted by seq. Arrival order, offsets, delivery tags and clock values stay out of it.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import canonicaljson

from worker.envelope import Envelope

AGGREGATE_SCHEMA = "rrlab.worker.aggregate/1"
REPORT_SCHEMA = "rrlab.worker.report/1"


@dataclass(frozen=True)
class RunFacts:
    """What the run was asked to do, and where."""

    driver: str
    destination: str
    seed: int
    count: int


def digest(envelopes: Iterable[Envelope]) -> str:
    """sha256 over the envelope records sorted by seq, one per line: arrival order is ignored."""
    h = hashlib.sha256()
    for envelope in sorted(envelopes, key=lambda e: (e.seq, e.record())):
        h.update(envelope.record())
        h.update(b"\n")
    return h.hexdigest()


def _per_key(consumed: Sequence[Envelope]) -> dict[str, dict[str, int]]:
    """Per key: message count and the sum of payload amounts (the worker's 'processing')."""
    table: dict[str, dict[str, int]] = {}
    for envelope in consumed:
        amount = json.loads(envelope.payload).get("amount", 0)
        row = table.setdefault(envelope.key, {"amount": 0, "count": 0})
        row["count"] += 1
        row["amount"] += int(amount)
    return table


def build_aggregate(facts: RunFacts, produced: int, consumed: Sequence[Envelope]) -> bytes:
    """Canonical JSON of the aggregate; `consumed` must already be de-duplicated by seq."""
    return canonicaljson.encode_canonical_json(
        {
            "consumed": len(consumed),
            "count": facts.count,
            "destination": facts.destination,
            "digest": {"algorithm": "sha256", "order": "seq", "value": digest(consumed)},
            "driver": facts.driver,
            "per_key": _per_key(consumed),
            "produced": produced,
            "schema": AGGREGATE_SCHEMA,
            "seed": facts.seed,
        }
    )


def latency_summary(latencies: Sequence[float]) -> dict[str, float | int]:
    """Count, mean, p50/p90/p99 and max in seconds (rounded to microseconds)."""
    if not latencies:
        return {"count": 0}
    ordered = sorted(latencies)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 6)

    return {
        "count": len(ordered),
        "max": round(ordered[-1], 6),
        "mean": round(statistics.fmean(ordered), 6),
        "p50": pick(0.50),
        "p90": pick(0.90),
        "p99": pick(0.99),
    }


def build_report(
    facts: RunFacts,
    aggregate: bytes,
    *,
    address: str,
    duplicates: int,
    elapsed: float,
    latencies: Sequence[float],
) -> bytes:
    """Canonical JSON of the run report: the aggregate's digest plus timings of this run."""
    consumed = len(latencies)
    return canonicaljson.encode_canonical_json(
        {
            "address": address,
            "aggregate_sha256": hashlib.sha256(aggregate).hexdigest(),
            "count": facts.count,
            "destination": facts.destination,
            "driver": facts.driver,
            "duplicates": duplicates,
            "elapsed_seconds": round(elapsed, 6),
            "latency_seconds": latency_summary(latencies),
            "messages_per_second": round(consumed / elapsed, 1) if elapsed > 0 else 0,
            "schema": REPORT_SCHEMA,
            "seed": facts.seed,
        }
    )
