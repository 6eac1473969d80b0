"""Deterministic envelopes: everything a message carries, derived from (seed, index) alone.

No clock, no randomness from the OS: the same seed always gives the same bytes, which is what
lets a replayed run produce a byte-identical aggregate.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import canonicaljson

SCHEMA = "rrlab.worker.envelope/1"
CONTENT_TYPE = "application/json"
KEYS = ("alpha", "bravo", "charlie", "delta", "echo")
WORDS = ("amber", "basalt", "cobalt", "dune", "ember", "fjord", "garnet", "harbor")


class EnvelopeError(ValueError):
    """A received message is not a well-formed envelope of this worker."""


@dataclass(frozen=True, order=True)
class Envelope:
    """One message: a key, sorted string headers and a canonical JSON payload."""

    seq: int
    key: str
    headers: tuple[tuple[str, str], ...]
    payload: bytes

    def record(self) -> bytes:
        """Canonical JSON of the whole envelope: the unit hashed by the aggregate digest.

        It is also the MQTT message body, since MQTT 3.1.1 has no message headers.
        """
        return canonicaljson.encode_canonical_json(
            {
                "headers": [list(pair) for pair in self.headers],
                "key": self.key,
                "payload": self.payload.decode("utf-8"),
            }
        )


def _draw(seed: int, index: int) -> bytes:
    """Stable pseudo-random bytes for one index (sha256, so identical on every platform)."""
    return hashlib.sha256(f"rrlab-worker:{seed}:{index}".encode()).digest()


def make_envelope(seed: int, index: int) -> Envelope:
    """Build envelope `index` of the run seeded with `seed`."""
    draw = _draw(seed, index)
    key = KEYS[draw[0] % len(KEYS)]
    payload = canonicaljson.encode_canonical_json(
        {
            "amount": int.from_bytes(draw[1:3], "big") % 10000,
            "key": key,
            "seed": seed,
            "seq": index,
            "word": WORDS[draw[3] % len(WORDS)],
        }
    )
    headers = (("content-type", CONTENT_TYPE), ("schema", SCHEMA), ("seq", str(index)))
    return Envelope(seq=index, key=key, headers=headers, payload=payload)


def make_envelopes(seed: int, count: int) -> list[Envelope]:
    """The `count` envelopes of one run, in publish order."""
    return [make_envelope(seed, index) for index in range(count)]


def from_parts(key: str, headers: list[tuple[str, str]], payload: bytes) -> Envelope:
    """Rebuild an envelope from what a broker delivered (Kafka or AMQP native headers)."""
    ordered = tuple(sorted((str(name), str(value)) for name, value in headers))
    seq_values = [value for name, value in ordered if name == "seq"]
    if len(seq_values) != 1 or not seq_values[0].isdigit():
        raise EnvelopeError(f"message with key {key!r} has no valid 'seq' header")
    return Envelope(seq=int(seq_values[0]), key=key, headers=ordered, payload=payload)


def from_record(record: bytes) -> Envelope:
    """Parse the canonical JSON record written by `Envelope.record` (the MQTT body)."""
    try:
        data = json.loads(record)
        headers = [(str(name), str(value)) for name, value in data["headers"]]
        return from_parts(str(data["key"]), headers, str(data["payload"]).encode("utf-8"))
    except (ValueError, KeyError, TypeError) as exc:
        raise EnvelopeError(f"message is not a worker envelope: {exc}") from exc
