"""Kafka: int32 size framing, kio decoding with one correlation tracker per connection, address
rewriting of responses (the proxy's `ResponseRewriter`, sharing the decoder's tracker)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rrlab.rr.codecs import Proto
from rrlab.rr.protocols.base import Description, WireProtocol, describe_any, finish
from rrlab.rr.protocols.pipeline import FrameConnection
from rrlab.rr.replay.recording import Role

from . import normalize as match_rules
from . import redact as kafka_redact
from . import roles
from . import session as replay
from .codec import KafkaDecoder, KafkaFramer
from .rewrite import NodeMap, ResponseRewriter, RewriteEvent


class KafkaProtocol(WireProtocol):
    proto = Proto.KAFKA
    label_keys = ("api",)
    framer_cls = KafkaFramer
    decoder_cls = KafkaDecoder
    redact = staticmethod(kafka_redact.redact)
    normalize = match_rules

    def decoder(self) -> KafkaDecoder:
        return KafkaDecoder()

    def rewriter(
        self,
        conn: FrameConnection,
        node_map: NodeMap,
        on_event: Callable[[RewriteEvent], None] | None = None,
    ) -> ResponseRewriter:
        """The address rewriter of `conn`'s responses; it pairs them with the decoder's tracker."""
        decoder = conn.decoder
        assert isinstance(decoder, KafkaDecoder)
        return ResponseRewriter(node_map, decoder.tracker, on_event)

    def session(self, ctx: Any, listener: Any, link: Any) -> replay.Session:
        return replay.Session(ctx, listener, link)

    def is_liveness(self, summary: Mapping[str, Any]) -> bool:
        return replay.is_liveness(summary)  # type: ignore[arg-type]

    def is_closing(self, summary: Mapping[str, Any]) -> bool:
        return replay.is_closing(summary)  # type: ignore[arg-type]

    def role(self, summary: Mapping[str, Any]) -> Role:
        return roles.client_role(summary)

    def prepare(self, ctx: Any) -> None:
        replay.prepare(ctx)

    def detail(self, summary: Mapping[str, Any]) -> str:
        s = summary
        parts = []
        for batch in s.get("records") or ():
            records = batch.get("records") or ()
            count = batch.get("count", len(records))
            text = f"{batch.get('topic', '?')}[{batch.get('partition', '?')}] {count} records"
            if records and "key" in records[0]:
                text += f", first key {records[0]['key']!r}"
            parts.append(text)
        for key in ("topics", "group_id", "member_id"):
            if isinstance(s.get(key), str | int):
                parts.append(f"{key}={s[key]}")
        return "; ".join(parts)

    def describe(self, summary: Mapping[str, Any]) -> Description:
        s = summary
        if not ("api" in s or "api_key" in s or "correlation_id" in s):
            return describe_any(s)
        api = s.get("api", s.get("api_key"))
        what = "?" if api is None else str(api)
        if "version" in s:
            what += f" v{s['version']}"
        ids = []
        if "correlation_id" in s:
            ids.append(f"corr={s['correlation_id']}")
        if s.get("error_code"):
            ids.append(f"err={s['error_code']}")
        return finish(s, what, ids)


KAFKA = KafkaProtocol()
