"""Broker drivers: each publishes the envelopes, consumes them back and times the round trip.

A driver module exposes `run(config, envelopes) -> Transfer`. Drivers differ only in the client
library; what they hand back (the consumed envelopes and their latencies) is broker-neutral.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from worker.envelope import Envelope

DRIVERS = ("kafka", "amqp", "mqtt")


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and reports (no credential leaks)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class DriverConfig:
    """Where to talk, how long to wait for the broker at any single step, which group to join."""

    address: str
    destination: str
    timeout: float
    group: str | None = None  # Kafka consumer group (--kafka-group); None: assign partitions


@dataclass
class Transfer:
    """What came back: acknowledged publishes, distinct consumed envelopes, latencies."""

    produced: int = 0
    consumed: dict[int, Envelope] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    duplicates: int = 0
    foreign: int = 0
    sent_at: dict[int, float] = field(default_factory=dict)

    def mark_sent(self, seq: int) -> None:
        """Remember when `seq` was handed to the client library."""
        self.sent_at[seq] = time.perf_counter()

    def take(self, envelope: Envelope) -> None:
        """Process one delivery: keep the first copy of each seq, time it, count duplicates.

        A seq this run did not publish (another run's leftover) is counted and ignored.
        """
        if envelope.seq not in self.sent_at:
            self.foreign += 1
            return
        if envelope.seq in self.consumed:
            self.duplicates += 1
            return
        self.consumed[envelope.seq] = envelope
        started = self.sent_at.get(envelope.seq)
        if started is not None:
            self.latencies.append(time.perf_counter() - started)
