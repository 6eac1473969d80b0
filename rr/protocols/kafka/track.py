"""One Kafka connection's request/response pairing, in one place.

Kafka responses carry no api key: a response is the answer to the request with its correlation
id, on the same connection. The decoder (to read a response), the proxy's address rewriter (to
decide, from the first 8 bytes, whether to hold a response) and the replayer all need that
pairing, so each connection keeps one `CorrelationTracker` and all of them read it.

It also knows which SASL mechanism the connection negotiated: the one a SaslHandshake (any
version) asked for, once the broker answered it with error code 0 (until then, and after a
refusal, none). The redactor decides how to hide a client's SASL token by that mechanism and the
token's number in the exchange, never by the token's bytes. A new SaslHandshake (KIP-368
re-authentication) starts over.

And raw SASL (KIP-43): after a SaslHandshake v0 answered with error code 0 the SASL tokens
travel with no Kafka header, as bare size-prefixed frames, both ways. The mode ends after a known
number of server tokens: PLAIN and OAUTHBEARER 1, SCRAM-SHA-256/512 2; for any other mechanism
(GSSAPI is not handled) at the first client frame the decoder reads whole as a request.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple

from .apis import SASL_RAW_TOKEN

#: Requests remembered at most (a client may never read some answers; oldest forgotten first).
MAX_PENDING = 4096
#: acks=0 Produce requests remembered (Kafka sends no response, but some brokers do).
MAX_UNANSWERED = 1024
MAX_HANDSHAKES = 8

#: Server tokens that end a SaslHandshake v0 raw-token session, by mechanism (None: unknown).
RAW_SASL_EXCHANGES = {"PLAIN": 1, "OAUTHBEARER": 1, "SCRAM-SHA-256": 2, "SCRAM-SHA-512": 2}


class Pairing(NamedTuple):
    """What a response answers: its request's api key and version. `unexpected`: the request
    said it wanted no response (Produce acks=0) and got one anyway. A NamedTuple, not a frozen
    dataclass: one is made per response before the proxy forwards it, in half the time."""

    api_key: int
    version: int
    unexpected: bool = False


def raw_token_summary(mechanism: str, exchange: int, raw: bytes) -> dict[str, Any]:
    """Summary of a raw SASL token: only its size (the bytes are a credential or a nonce)."""
    return {
        "api": SASL_RAW_TOKEN,
        "sasl_mechanism": mechanism,
        "exchange": exchange,
        "size": len(raw) - 4,
    }


@dataclass(slots=True)
class _Sasl:
    """The negotiated mechanism (None: none) and how many client tokens it has carried."""

    mechanism: str | None = None
    client_tokens: int = 0


@dataclass(slots=True)
class _RawSasl:
    mechanism: str
    exchanges: int | None
    client_tokens: int = 0
    server_tokens: int = 0


class CorrelationTracker:
    """Pending requests by correlation id, acks=0 Produces, SaslHandshake v0 raw-token mode."""

    def __init__(self) -> None:
        # oldest first: a table at its limit drops its oldest entry with every new one (an
        # acks=0 producer's unanswered ids, a client that stops reading), and a dict's first
        # entry costs a scan over the slots freed before it (2-6 us at these sizes)
        self._pending: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self._unanswered: OrderedDict[int, tuple[int, int]] = OrderedDict()
        # SaslHandshake correlation id -> (version, mechanism asked for)
        self._handshakes: dict[int, tuple[int, str]] = {}
        self._sasl = _Sasl()
        self._raw_sasl: _RawSasl | None = None

    # -- requests -------------------------------------------------------------------------------

    def request(self, api_key: int, version: int, correlation_id: int, *, answered: bool = True):
        """A request went out; `answered=False` for one that expects no response (acks=0)."""
        table, limit = (
            (self._pending, MAX_PENDING) if answered else (self._unanswered, MAX_UNANSWERED)
        )
        table[correlation_id] = (api_key, version)
        if len(table) > limit:
            table.popitem(last=False)

    def sasl_handshake(self, correlation_id: int, mechanism: str, version: int) -> None:
        """A SaslHandshake request: no mechanism is in force until its success, which also
        switches a v0 connection to raw tokens."""
        self._handshakes[correlation_id] = (version, mechanism)
        self._sasl = _Sasl()
        if len(self._handshakes) > MAX_HANDSHAKES:
            del self._handshakes[next(iter(self._handshakes))]

    # -- responses ------------------------------------------------------------------------------

    def peek(self, correlation_id: int) -> tuple[int, int] | None:
        """(api key, version) of the request a response with this id answers, left pending."""
        paired = self._pending.get(correlation_id)
        return paired if paired is not None else self._unanswered.get(correlation_id)

    def expected(self, correlation_id: int) -> tuple[int, int] | None:
        """(api key, version) of the request a response with this id answers, left pending;
        None also when that request asked for no answer (acks=0: `response` says unexpected)."""
        return self._pending.get(correlation_id)

    def response(self, correlation_id: int) -> Pairing | None:
        """Pair a response with its request (forgotten from then on); None if none is known."""
        paired = self._pending.pop(correlation_id, None)
        if paired is not None:
            return Pairing(*paired)
        paired = self._unanswered.pop(correlation_id, None)
        return None if paired is None else Pairing(*paired, unexpected=True)

    def sasl_handshake_answered(self, correlation_id: int, error_code: int | None) -> None:
        asked = self._handshakes.pop(correlation_id, None)
        if asked is None or error_code != 0:
            return
        version, mechanism = asked
        self._sasl = _Sasl(mechanism)
        if version == 0:
            self._raw_sasl = _RawSasl(mechanism, RAW_SASL_EXCHANGES.get(mechanism))

    # -- SASL tokens ----------------------------------------------------------------------------

    @property
    def sasl_mechanism(self) -> str | None:
        """The mechanism the last SaslHandshake negotiated (None: none, or it was refused)."""
        return self._sasl.mechanism

    def sasl_authenticate(self) -> tuple[str | None, int]:
        """Count a SaslAuthenticate request; returns (negotiated mechanism, its token number)."""
        self._sasl.client_tokens += 1
        return self._sasl.mechanism, self._sasl.client_tokens

    # -- raw SASL tokens (SaslHandshake v0) -----------------------------------------------------

    @property
    def raw_sasl(self) -> bool:
        """Whether the next frames are SASL tokens without a Kafka header (SaslHandshake v0)."""
        return self._raw_sasl is not None

    @property
    def raw_sasl_possible(self) -> bool:
        """Whether a client frame may be a SASL token without a Kafka header: in raw-token mode,
        or while a SaslHandshake awaits its answer (a client may send its first token before it
        reads that answer, and a v0 success means the token was one)."""
        return self._raw_sasl is not None or bool(self._handshakes)

    @property
    def raw_sasl_known_length(self) -> bool:
        """In raw-token mode with a mechanism whose number of exchanges is known."""
        return self._raw_sasl is not None and self._raw_sasl.exchanges is not None

    def end_raw_sasl(self) -> None:
        """A client frame read whole as a request ended an unknown mechanism's token mode."""
        self._raw_sasl = None

    def client_token(self, raw: bytes) -> dict[str, Any]:
        """Count a client raw token; returns its summary. Only while `raw_sasl`."""
        sasl = self._raw_sasl
        assert sasl is not None
        sasl.client_tokens += 1
        return raw_token_summary(sasl.mechanism, sasl.client_tokens, raw)

    def server_token(self, raw: bytes) -> dict[str, Any]:
        """Count a server raw token (the last one ends the mode); returns its summary."""
        sasl = self._raw_sasl
        assert sasl is not None
        sasl.server_tokens += 1
        if sasl.exchanges is not None and sasl.server_tokens >= sasl.exchanges:
            self._raw_sasl = None
        return raw_token_summary(sasl.mechanism, sasl.server_tokens, raw)

    @property
    def pending(self) -> dict[int, tuple[int, int]]:
        """Requests still waiting for their response: correlation id -> (api key, version)."""
        return dict(self._pending)
