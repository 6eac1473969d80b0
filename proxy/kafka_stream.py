"""Kafka response rewriting for one connection: which responses to hold, and the rewrite itself.

Implements `rr.record.StreamRewriter`. Requests are seen first (their api key and version are
remembered by correlation id, only for APIs whose responses can need a change); a response whose
request was remembered is held whole, rewritten with `proxy.kafka_rewrite` and released. All other
response bytes stream through as they arrive.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from rr.codecs import Direction

from .kafka_rewrite import (
    NodeMap,
    RewriteResult,
    needs_rewrite,
    request_key,
    response_correlation_id,
    rewrite_response,
)

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
        self._current = self._pending.pop(response_correlation_id(head), None)
        return self._current is not None

    def rewrite(self, raw: bytes) -> bytes:
        assert self._current is not None
        api_key, version = self._current
        self._current = None
        try:
            result = rewrite_response(raw, api_key, version, self.node_map)
        except Exception as exc:  # kio decode errors: forward the original, loudly
            result = RewriteResult(raw)
            error: str | None = f"{type(exc).__name__}: {exc}"
        else:
            error = None
        if self.on_event is not None and (error or result.addresses or result.api_versions_capped):
            self.on_event(
                RewriteEvent(api_key, version, result.addresses, result.api_versions_capped, error)
            )
        return result.raw
