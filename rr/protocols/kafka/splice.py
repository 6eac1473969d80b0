"""Kafka frames that repeat but for their correlation id, summarised without kio: the
recorder's `WireProtocol.frame_splicer` for Kafka.

A client repeats itself (ApiVersions and Metadata on every connection, Heartbeat, FindCoordinator,
a Fetch of the same offsets while a partition is idle) and the broker answers the same (an empty
Fetch answer, the same coordinator). Such frames differ only in the correlation id (bytes 8-12
of a request, 4-8 of a response). A frame's summary depends on its bytes alone and, for a
response, on what it answers (the request's api key and version, from the connection's
tracker); so those, without the id, key a template: the first such frame's summary and its
canonical JSON split around the id. The next ones get the template's summary with their own id
and the JSON with their id's digits in between: no kio read, no encoding, before the proxy
forwards the frame (a repeating request and its answer: ~8 us hot against ~25 us decoded and
encoded). Templates are shared by every connection (the same ApiVersions
and Metadata frames open each of them) and bounded: cleared when full.

In step with decoding, which a spliced frame replaces: a spliced request is tracked as the
decoder tracks it and a spliced response pops its pairing, so the decoder and the address
rewriter (which share the tracker) see what a decode would have left. A template is made from
the frame read as the decoder reads it (`read_request`, `read_response`), so its first frame is
spliced too and nothing is read twice.

Never spliced (the decoder and redactor decide them, as before): anything while SASL may be on
the wire (raw tokens, a SaslHandshake awaiting its answer: the decoder reads those frames by the
connection's SASL state), an API that may hold a credential in some version (`NOT_SPLICED`,
from the redactor's `HEADER_ONLY_APIS`: SASL, delegation tokens, SCRAM credentials, configs,
Envelope), a frame kio cannot read (its summary is an error; the redactor may replace such a
request), a response to a request that asked for none, frames over `SPLICE_MAX_BYTES`, and
Produce both ways (never a repeat: new records in, a new offset out). The redactor leaves
every other frame as it is, so skipping it changes nothing. Other frames that carry records (a
small Fetch answer) are read, not kept as templates: their summaries are as exact (made from
the same bytes) but they repeat only when a consumer reads the same records again, and would
crowd out the templates that do.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, NamedTuple

from rrlab.rr.cassette.format import json_split
from rrlab.rr.codecs import Decoded, Decoder, Direction, JsonSummary

from .apis import (
    PRODUCE,
    REQUEST_HEAD_BYTES,
    RESPONSE_HEAD_BYTES,
    request_key,
    response_correlation_id,
)
from .codec import KafkaDecoder, read_request, read_response
from .redact import HEADER_ONLY_APIS
from .track import CorrelationTracker, Pairing

#: APIs never spliced, either way: those that may hold a credential in some version (the
#: redactor's list: a spliced frame skips the redactor), and Produce (its records are new every
#: time and so is the offset answered: a template would never be used, only crowd out others)
NOT_SPLICED = frozenset(HEADER_ONLY_APIS) | {PRODUCE}
#: frames up to this many bytes are spliced (the ones that repeat are small; the key is a copy)
SPLICE_MAX_BYTES = 4096
#: templates kept per direction (and records setting) for all connections (cleared when full)
TEMPLATES_MAX = 256


class Template(NamedTuple):
    """A summary and its canonical JSON around the correlation id, with what the tracker is
    told of each frame spliced from it."""

    summary: dict[str, Any]  # shared by every frame spliced from it: never changed
    before: bytes  # the JSON up to the id's digits
    after: bytes  # the JSON after them
    api_key: int
    version: int
    answered: bool  # a request: whether it expects a response (its summary's, as decoded)


#: a JsonSummary is read-only: its id is set once, before anyone sees it
_set = dict.__setitem__

#: (direction, decoder.records) -> frame key -> template
_TEMPLATES: dict[tuple[Direction, bool], dict[Hashable, Template]] = {}


def splicer(direction: Direction, decoder: Decoder) -> RequestSplicer | ResponseSplicer:
    """The Kafka `WireProtocol.frame_splicer`: one per direction of a connection, in step
    with the connection's `decoder`."""
    assert isinstance(decoder, KafkaDecoder)
    if direction is Direction.C2S:
        return RequestSplicer(decoder)
    return ResponseSplicer(decoder)


class _Splicer:
    """One direction of one connection: the flow both share (`__call__`); what differs by
    direction (where the id is, what keys a frame, how it reads, what the tracker is told) is
    in the two subclasses."""

    direction: Direction
    head_bytes: int  # a frame shorter than its header is the decoder's to explain

    def __init__(self, decoder: KafkaDecoder) -> None:
        self.tracker: CorrelationTracker = decoder.tracker
        self.records = decoder.records
        self.templates = _TEMPLATES.setdefault((self.direction, decoder.records), {})

    def __call__(self, raw: bytes) -> JsonSummary | None:
        if not self.head_bytes <= len(raw) <= SPLICE_MAX_BYTES or self.tracker.raw_sasl_possible:
            return None
        located = self._locate(raw)
        if located is None:
            return None
        correlation_id, key, pairing = located
        if pairing[0] in NOT_SPLICED:
            return None
        template = self.templates.get(key)
        if template is None:
            template = _template(self._read(raw, pairing), correlation_id)
            if template is None:
                return None
            if _no_records(template.summary):
                templates = self.templates
                if len(templates) >= TEMPLATES_MAX:
                    templates.clear()
                templates[key] = template
        self._track(template, correlation_id)
        summary = JsonSummary(
            template.summary, b"%b%d%b" % (template.before, correlation_id, template.after)
        )
        _set(summary, "correlation_id", correlation_id)  # its own id, where the template has one
        return summary

    def _locate(self, raw: bytes) -> tuple[int, Hashable, tuple[int, int]] | None:
        """(correlation id, the frame's key, (api key, version) of the request) or None: not
        one to splice."""
        raise NotImplementedError

    def _read(self, raw: bytes, pairing: tuple[int, int]) -> Decoded:
        """The frame read as the decoder reads it (no connection state read or changed)."""
        raise NotImplementedError

    def _track(self, template: Template, correlation_id: int) -> None:
        """Tell the tracker what decoding the frame would have told it."""
        raise NotImplementedError


def _template(decoded: Decoded, correlation_id: int) -> Template | None:
    """`decoded`'s summary and JSON around its correlation id; None for a frame the decoder
    must decide (kio could not read it: an error summary, which the redactor may replace)."""
    summary = decoded.summary
    if decoded.body is None or "error" in summary:
        return None
    around = json_split(summary, "correlation_id", correlation_id)
    if around is None:
        return None
    return Template(
        summary,
        *around,
        summary["api_key"],
        summary["version"],
        summary.get("expects_response", True),
    )


def _no_records(summary: dict[str, Any]) -> bool:
    """No record batch anywhere (an empty Fetch answer lists its partitions: topic, partition
    and a count of 0 each)."""
    return all(len(part) == 3 and part.get("count") == 0 for part in summary.get("records", ()))


class RequestSplicer(_Splicer):
    """Client frames: keyed by the frame without its correlation id (api key and version
    included)."""

    direction = Direction.C2S
    head_bytes = REQUEST_HEAD_BYTES

    def _locate(self, raw: bytes) -> tuple[int, Hashable, tuple[int, int]]:
        api_key, version, correlation_id = request_key(raw)
        return correlation_id, raw[4:8] + raw[12:], (api_key, version)

    def _read(self, raw: bytes, pairing: tuple[int, int]) -> Decoded:
        return read_request(raw, records=self.records)

    def _track(self, template: Template, correlation_id: int) -> None:
        self.tracker.request(
            template.api_key, template.version, correlation_id, answered=template.answered
        )


class ResponseSplicer(_Splicer):
    """Broker frames: keyed by what they answer (api key, version) and the frame after its
    correlation id. Only answers to requests that asked for one: an unexpected answer (to an
    acks=0 Produce) is summarised as one, by the decoder."""

    direction = Direction.S2C
    head_bytes = RESPONSE_HEAD_BYTES

    def _locate(self, raw: bytes) -> tuple[int, Hashable, tuple[int, int]] | None:
        correlation_id = response_correlation_id(raw)
        pairing = self.tracker.expected(correlation_id)
        if pairing is None:
            return None
        return correlation_id, (pairing, raw[8:]), pairing

    def _read(self, raw: bytes, pairing: tuple[int, int]) -> Decoded:
        return read_response(raw, Pairing(*pairing), records=self.records)

    def _track(self, template: Template, correlation_id: int) -> None:
        self.tracker.response(correlation_id)
