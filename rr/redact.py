"""What every protocol's redaction shares. What is secret is decided per protocol, in one place
each (`rr.protocols.<proto>.redact`, reached through the protocol object's `redact`).

A protocol's `redact(direction, raw, decoded, decoder)` returns the frame with every credential
replaced by PLACEHOLDER, re-encoded so it still frames and decodes (sizes updated), and a Decoded
whose summary is re-derived from the redacted bytes by the connection's own decoder (`redecode`:
the pairing and protocol level the original frame was read with), `redacted=True` and
`summary["redacted"]` naming each field replaced (`redacted` below). So the summary is what a
stateful re-decode of the recorded stream gives, placeholder lengths included. Frames without
credentials come back unchanged (the same objects). A frame that should hold a credential but
cannot be rewritten raises RedactionError: it is never recorded.
"""

from __future__ import annotations

from collections.abc import Callable

from rrlab.rr.codecs import Decoded, Decoder, Direction

PLACEHOLDER = b"rrlab-redacted"

#: rewrite(direction, raw, decoded) -> (the frame with its credentials replaced, the fields
#: replaced), or None when the frame holds none: the protocol's decision
Rewrite = Callable[[Direction, bytes, Decoded], tuple[bytes, list[str]] | None]


class RedactionError(ValueError):
    """A frame that should hold a credential but cannot be rewritten: refuse to record it."""


def redacted(
    rewritten: tuple[bytes, list[str]], direction: Direction, decoded: Decoded, decoder: Decoder
) -> tuple[bytes, Decoded]:
    """The frame a protocol's rewrite made, with its summary re-read by the connection's
    `decoder` (as the original was read) and marked with the fields replaced."""
    new_raw, fields = rewritten
    fresh = decoder.redecode(direction, new_raw, decoded)
    summary = dict(fresh.summary)
    summary["redacted"] = fields
    return new_raw, Decoded(summary, body=fresh.body, redacted=True, extra=dict(fresh.extra))


def apply(
    rewrite: Rewrite,
    fresh_decoder: Callable[[], Decoder],
    direction: Direction | str,
    raw: bytes,
    decoded: Decoded,
    decoder: Decoder | None = None,
) -> tuple[bytes, Decoded]:
    """One frame through a protocol's `rewrite`: unchanged (the same objects) when it holds no
    credential, else `redacted`, re-read by the connection's `decoder` (a `fresh_decoder()`
    without one, right only for frames whose reading needs no connection state)."""
    if direction.__class__ is not Direction:  # the hot path passes members
        direction = Direction(direction)
    result = rewrite(direction, raw, decoded)
    if result is None:
        return raw, decoded
    return redacted(result, direction, decoded, decoder or fresh_decoder())
