"""Kafka response rewriting for one connection: which responses to hold, and the rewrite itself.

Implements `rr.record.StreamRewriter`. Requests are seen first (their api key and version are
remembered by correlation id, only for APIs whose responses can need a change); a response whose
request was remembered is held whole, rewritten with `rr.kafka_rewrite` and released. All other
response bytes stream through as they arrive.

A held response that cannot be rewritten is never released: it may name a real broker address,
and a client that saw one would bypass the proxy from then on, unrecorded. The rewriter raises
`RecordingBroken` instead, and the proxy closes the connection with a logged error.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from rr.codecs import Direction
from rr.kafka_rewrite import (
    NodeMap,
    needs_rewrite,
    request_key,
    response_correlation_id,
    rewrite_response,
)
from rr.record import RecordingBroken

#: Requests remembered at most (a Produce with acks=0 never gets its response).
MAX_PENDING = 4096


@dataclass(frozen=True, slots=True)
class RewriteEvent:
    api_key: int
    version: int
    addresses: int
    api_versions_capped: int
    error: str | None = None


class KafkaResponseRewriter:
    direction = Direction.S2C

    def __init__(
        self, node_map: NodeMap, on_event: Callable[[RewriteEvent], None] | None = None
    ) -> None:
        self.node_map = node_map
        self.on_event = on_event
        self.failed: str | None = None  # why a held response could not be rewritten
        self._pending: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self._current: tuple[int, int] | None = None

    def observe(self, raw: bytes) -> None:
        if len(raw) < 12:
            return
        api_key, version, correlation_id = request_key(raw)
        if needs_rewrite(api_key, version):
            self._pending[correlation_id] = (api_key, version)
            if len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)

    def should_hold(self, head: bytes) -> bool:
        if len(head) < 8:  # no correlation id: a raw SASL token reply (SaslHandshake v0), size 0
            self._current = None
            return False
        self._current = self._pending.pop(response_correlation_id(head), None)
        return self._current is not None

    def rewrite(self, raw: bytes) -> bytes:
        """The rewritten frame; raises RecordingBroken (after telling `on_event`) if impossible."""
        assert self._current is not None
        api_key, version = self._current
        self._current = None
        try:
            result = rewrite_response(raw, api_key, version, self.node_map)
        except Exception as exc:  # RewriteError, or anything unforeseen: never forward it as is
            self.failed = (
                f"kafka api {api_key} v{version} response (correlation id "
                f"{response_correlation_id(raw)}) cannot be rewritten, not forwarded: "
                f"{type(exc).__name__}: {exc}"
            )
            if self.on_event is not None:
                self.on_event(RewriteEvent(api_key, version, 0, 0, self.failed))
            raise RecordingBroken(self.failed) from exc
        if self.on_event is not None and (result.addresses or result.api_versions_capped):
            self.on_event(
                RewriteEvent(api_key, version, result.addresses, result.api_versions_capped)
            )
        return result.raw
