"""Kafka: int32 size framing, kio decoding with one correlation tracker per connection, address
rewriting of responses (the proxy's `ResponseRewriter`, sharing the decoder's tracker)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rrlab.rr.codecs import Decoded, Direction, Proto
from rrlab.rr.diff import by_name, value_of
from rrlab.rr.protocols.base import Description, WireProtocol, describe_any, finish
from rrlab.rr.protocols.pipeline import FrameConnection
from rrlab.rr.replay.recording import Role

from . import normalize as match_rules
from . import redact as kafka_redact
from . import roles
from . import session as replay
from .apis import API_VERSIONS
from .codec import KafkaDecoder, KafkaFramer, read_request, read_response, records_of
from .records import record_lines
from .rewrite import NodeMap, ResponseRewriter, RewriteEvent
from .splice import splicer
from .track import Pairing


class KafkaProtocol(WireProtocol):
    proto = Proto.KAFKA
    label_keys = ("api",)
    framer_cls = KafkaFramer
    decoder_cls = KafkaDecoder
    redact = staticmethod(kafka_redact.redact)
    normalize = match_rules
    frame_splicer = staticmethod(splicer)

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

    def payload_lines(
        self, direction: Direction, summary: Mapping[str, Any], raw: bytes
    ) -> list[str] | None:
        """Produce requests and Fetch responses: every record (any codec) and each partition
        whose records do not read; other frames: None (their bytes are the payload)."""
        if "records" not in summary:
            return None
        decoded = decode_frame(direction, summary, raw)
        lines = [line for rec in records_of(decoded) for line in record_lines(rec)]
        for part in summary["records"]:
            if part.get("error"):
                lines.append(
                    f"records of {part['topic']}[{part['partition']}] not read: {part['error']}"
                )
            for note in part.get("notes") or ():
                lines.append(f"records of {part['topic']}[{part['partition']}]: {note}")
        return lines

    def content(
        self, direction: Direction, summary: Mapping[str, Any], raw: bytes
    ) -> dict[str, Any]:
        """The summary, the kio body (`normalize.entity_view`, record bytes left out) and each
        record by topic, partition, offset, key, value and headers (`rr.diff` values): never a
        batch's timestamps, CRC or producer sequence, which change every run."""
        view: dict[str, Any] = {"summary": {k: v for k, v in summary.items() if k != "records"}}
        decoded = decode_frame(direction, summary, raw)
        if decoded.body is None:
            view["summary"] = dict(summary)
            return view
        body = match_rules.entity_view(decoded.body, frozenset({"records"}))
        if summary.get("api_key") == API_VERSIONS and isinstance(body.get("api_keys"), list):
            # the order is the broker's (Tansu: hash order, new every run); the set is behaviour
            body["api_keys"] = sorted(body["api_keys"], key=lambda entry: entry["api_key"])
        view["body"] = body
        if "records" in summary:
            view["records"] = [
                {
                    "headers": by_name(rec["headers"], value_of),
                    "key": value_of(rec["key"]),
                    "offset": rec["offset"],
                    "partition": rec["partition"],
                    "topic": rec["topic"],
                    "value": value_of(rec["value"]),
                }
                for rec in records_of(decoded)
            ]
        return view

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


def decode_frame(direction: Direction, summary: Mapping[str, Any], raw: bytes) -> Decoded:
    """A recorded frame decoded again, its body and records included (a response as the answer
    its summary names); no body when it does not decode."""
    if "api_key" not in summary or "version" not in summary or "error" in summary:
        return Decoded(dict(summary))
    if direction is Direction.C2S:
        return read_request(raw)
    return read_response(raw, Pairing(int(summary["api_key"]), int(summary["version"])))


KAFKA = KafkaProtocol()
