"""Kafka replay: requests in, recorded (or log-model) responses out, in request order.

- Control plane (Metadata, CreateTopics, InitProducerId, group and offset APIs, ...): a request is
  matched by its normalized key (`normalize`) to a recorded exchange — the bound recorded
  connection's first, then its listener's, then any — and answered with the recorded response,
  the live correlation id stamped in (and broker addresses moved when listeners moved).
- Data plane: Produce checked record by record against the produce log, answered with the
  recorded offsets; Fetch answered from the fetch log at any offset, or empty after the client's
  own max wait once past the recorded log.
- Liveness is synthesized: Heartbeat, repeated Metadata/ApiVersions/FindCoordinator, OffsetCommit
  beyond the recorded ones (auto-commit runs on a clock).
- A miss: the API's own error in its response, a report entry with the closest recorded request
  and a field-level diff.
Responses leave in request order (clients check correlation ids in order), so a Fetch held for
its max wait holds the answers behind it.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode

from rrlab.rr.codecs import Proto
from rrlab.rr.replay.bindings import Bindings, alike
from rrlab.rr.replay.session import Pace, ReplayContext
from rrlab.rr.replay.session import Session as BaseSession

from . import normalize as norm
from .apis import (
    API_VERSIONS,
    CREATE_TOPICS,
    DESCRIBE_CLUSTER,
    DESCRIBE_CONFIGS,
    DESCRIBE_GROUPS,
    DESCRIBE_TOPIC_PARTITIONS,
    FETCH,
    FIND_COORDINATOR,
    GET_TELEMETRY_SUBSCRIPTIONS,
    HEARTBEAT,
    JOIN_GROUP,
    LEAVE_GROUP,
    LIST_GROUPS,
    LIST_OFFSETS,
    METADATA,
    OFFSET_COMMIT,
    OFFSET_FETCH,
    PRODUCE,
    PUSH_TELEMETRY,
    SASL_HANDSHAKE,
    SASL_RAW_TOKEN,
    SIZE,
    SYNC_GROUP,
    request_key,
)
from .build import (
    blank,
    has_field,
    item_cls,
    known_versions,
    unsupported_api_versions,
    with_errors,
)
from .codec import (
    KafkaCodecError,
    KafkaFramer,
    api_name,
    decode_request,
    decode_response_body,
    encode_response,
    response_schema,
)
from .fields import max_wait_seconds, topic_ident
from .fields import topic_name as topic_of
from .records import Record, restamp_batch, scan_record_set
from .redact import HEADER_ONLY_APIS
from .rewrite import advertises_addresses, rewrite_addresses
from .stamp import stamp_strings
from .world import Exchange, KafkaWorld, ProduceLog, _records, produced_faces


@dataclass(frozen=True, slots=True)
class ApiRule:
    """How the fake broker treats one Kafka API (as franz-go's kfake registers one handler per
    key). `handle(session, api, version, corr, body)` answers a decoded request; `liveness`: sent
    on a clock or a poll loop, never reported unused; `repeatable`: its recorded answer may be
    served again once the recorded ones are used up; `closing`: only tears down, never reported
    unused when a live client skips it; `unrecorded(session, api, version, body)`: the answer a
    broker gives when the recording has none (None: a miss)."""

    handle: Callable[[Session, int, int, int, Any], None]
    liveness: bool = False
    repeatable: bool = False
    closing: bool = False
    unrecorded: Callable[[Session, int, int, Any], Any] | None = None


#: the longest an empty Fetch is held (seconds), whatever the client asks
MAX_POLL_WAIT = 5.0


def prepare(ctx: ReplayContext) -> None:
    opts = ctx.options
    world = KafkaWorld(ctx.recording, opts.ignore_fields, opts.ignore_headers)
    ctx.shared[Proto.KAFKA] = world
    ctx.report.notes.extend(world.notes)


def is_liveness(summary: dict[str, Any]) -> bool:
    return summary.get("api") in LIVENESS_APIS


def is_closing(summary: dict[str, Any]) -> bool:
    return summary.get("api") in CLOSING_APIS


@dataclass(slots=True)
class _Slot:
    """A response owed to the client, in request order (data None: not ready yet)."""

    data: bytes | None = None


class Session(BaseSession):
    proto = Proto.KAFKA
    framer_cls = KafkaFramer

    def __init__(self, ctx, listener, link) -> None:
        super().__init__(ctx, listener, link)
        self.world: KafkaWorld = ctx.shared[Proto.KAFKA]
        self._slots: deque[_Slot] = deque()
        self._bind_tried = False
        #: the live requests' header client id (a random one binds to the recorded one's)
        self._client_id: str | None = None
        #: after a SaslHandshake v0 the recording's raw SASL tokens: (client token frame, the
        #: server tokens that answered it) in order; None when not in that mode
        self._raw_sasl: deque[tuple[int, int, list[int]]] | None = None

    # -- frames in -----------------------------------------------------------------------------

    def on_frame(self, raw: bytes) -> None:
        if self._raw_sasl is not None:  # after a SaslHandshake v0: tokens without a header
            self._raw_token(raw)
            return
        if len(raw) < 12:
            self.miss("unknown", f"request frame of {len(raw)} bytes is too short", {})
            self.close()
            return
        api, version, corr = request_key(raw)
        try:
            request = decode_request(raw)
        except KafkaCodecError as err:
            self._undecodable(api, version, corr, raw, err)
            return
        self._client_id = request.header.client_id
        rule_for(api).handle(self, api, version, corr, request.body)

    # -- control plane -------------------------------------------------------------------------

    def _control(self, api: int, version: int, corr: int, body: Any) -> None:
        if api != API_VERSIONS and not self._bind_tried:
            self._bind(api, version, body)
        key = self._key(api, version, body)
        candidates = self.world.exchanges.get(key, [])
        exchange = self._pick(candidates, unused=True)
        name = api_name(api)
        if exchange is not None:
            exchange.used = True
            self.ctx.recording.conn(exchange.conn).used.add(exchange.request_index)
            self.report.matched(self.proto, name)
            self._answer_recorded(exchange, api, version, corr)
            if api == SASL_HANDSHAKE and version == 0:
                self._raw_sasl = self.world.raw_sasl_tokens(exchange)
            return
        rule = rule_for(api)
        if candidates and rule.repeatable:
            self.report.synthesized(self.proto, name)
            self._answer_recorded(self._pick(candidates, unused=False), api, version, corr)
            return
        answer = rule.unrecorded(self, api, version, body) if rule.unrecorded else None
        if answer is not None:
            self.report.synthesized(self.proto, name)
            self._reply(corr, api, version, answer)
            return
        self._control_miss(api, version, corr, body, key)

    def _key(self, api: int, version: int, body: Any, bindings: Bindings | None = None) -> str:
        """The request's match key with the live values of `bindings` (the run's) put back,
        byte fields too (a consumer group's subscription names its topics in bytes)."""
        bindings = self.ctx.bindings if bindings is None else bindings
        if bindings:
            back = bindings.bytes_to_recorded
            body = stamp_strings(body, bindings.to_recorded, back, any_length=True)
        return norm.request_key(api, version, body)

    def _bind(self, api: int, version: int, body: Any) -> None:
        """Claim the recorded connection whose first request this one is: one of the same
        client id (or the recorded id bound to it) first, then one whose client id is alike
        (`bindings.alike`: `svc-d3565c6f` for `svc-b3410c8d`) with the request equal once that
        id is bound, then any with the same first request. The client id is bound whole: a
        topic, a record or a member id that embeds it matches and is served with the live id."""
        self._bind_tried = True
        world, bindings, live_id = self.world, self.ctx.bindings, self._client_id
        first_key = world.first_key
        key = self._key(api, version, body)

        def claim(fits: Callable[[Any], bool]) -> Any:
            port = self.listener.recorded_port
            return self.ctx.recording.claim(self.proto, port, self.link.live_id, fits)

        def same(rc: Any) -> bool:
            rec_id = world.client_ids.get(rc.id)
            return (rec_id == live_id or bindings.to_live_map.get(rec_id) == live_id) and (
                first_key.get(rc.id) == key
            )

        keys: dict[str, str] = {}

        def rebound(rc: Any) -> bool:
            rec_id = world.client_ids.get(rc.id)
            if not self._bindable(rec_id):
                return False
            if rec_id not in keys:
                keys[rec_id] = self._key(api, version, body, bindings.trial([(rec_id, live_id)]))
            return first_key.get(rc.id) == keys[rec_id]

        rec_id: str | None = None
        bound = claim(same)
        if bound is None:
            bound = claim(rebound)
            rec_id = world.client_ids.get(bound.id) if bound is not None else None
        if bound is None:
            bound = claim(lambda rc: first_key.get(rc.id) == key)
        self.bound = bound
        self.report.connection(self.proto, bound is not None)
        if rec_id is not None:
            self._bind_client_id(rec_id)
        elif bound is None or world.client_ids.get(bound.id) != live_id:
            self._bind_client_id()  # claimed by its request alone, or not at all

    def _bind_without_request(self) -> None:
        """A connection whose first request names no recorded one to claim (a Produce or a
        Fetch first): its client id binds to the one recorded client id alike, once."""
        if not self._bind_tried:
            self._bind_tried = True
            self._bind_client_id()

    def _bind_client_id(self, rec_id: str | None = None) -> None:
        """Bind the live client id to `rec_id`, or else to the one recorded client id alike."""
        if rec_id is None:
            alikes = {i for i in self.world.client_ids.values() if self._bindable(i)}
            rec_id = alikes.pop() if len(alikes) == 1 else None
        if rec_id is not None and self._client_id is not None:
            where = f"kafka live conn {self.link.live_id} client_id"
            self.ctx.bindings.bind([(rec_id, self._client_id)], where)

    def _bindable(self, rec_id: str | None) -> bool:
        """Whether recorded client id `rec_id` may bind to the live one: alike, both unbound."""
        live_id, bindings = self._client_id, self.ctx.bindings
        return (
            rec_id is not None
            and live_id is not None
            and rec_id not in bindings.to_live_map
            and live_id not in bindings.to_rec_map
            and alike(rec_id, live_id)
        )

    def _pick(self, candidates: list[Exchange], *, unused: bool) -> Exchange | None:
        """Prefer the bound recorded connection, then this listener's, then any."""
        pool = [e for e in candidates if not e.used] if unused else candidates
        if not pool:
            return None
        bound = self.bound.id if self.bound is not None else None
        port = self.listener.recorded_port
        for fits in (lambda e: e.conn == bound, lambda e: e.port == port, lambda e: True):
            chosen = [e for e in pool if fits(e)]
            if chosen:
                return chosen[0] if unused else chosen[-1]
        return None

    def _answer_recorded(self, exchange: Exchange, api: int, version: int, corr: int) -> None:
        raw = self.world.frame_raw(exchange.conn, exchange.response_index)
        ports, bindings = self.ctx.ports, self.ctx.bindings
        moved = not ports.identity and advertises_addresses(api, version)
        stamp = bool(bindings) and bindings.mentions_recorded(raw[8:])  # (past size and corr)
        if moved or stamp:
            body = decode_response_body(exchange.api_key, exchange.version, raw)
            if moved:
                body, _n = rewrite_addresses(body, ports)
            if stamp:  # the live values of the run's bindings (a topic named by a client id)
                body = stamp_strings(body, bindings.to_live, bindings.bytes_to_live)
            data = encode_response(api, version, corr, body)
        else:
            data = raw[:4] + SIZE.pack(corr) + raw[8:]  # the live correlation id stamped in
        delay = 0.0
        if self.ctx.options.pace is Pace.RECORDED:
            delay = max(0, exchange.delay_us) / 1e6
        self._queue(data, delay)

    def _control_miss(self, api: int, version: int, corr: int, body: Any, key: str) -> None:
        name = api_name(api)
        live_view = norm.request_view(api, body)
        closest, diff = self._closest(api, version, live_view)
        reason = (
            f"no recorded {name} v{version} request"
            if closest is None
            else f"{name} v{version} request differs from every recorded one"
        )
        self.miss(
            name, reason, {"api": name, "version": version, "request": live_view}, closest, diff
        )
        self._reply(corr, api, version, _error_response(api, version))

    def _closest(self, api: int, version: int, live_view: Any) -> tuple[Any, list[str]]:
        """The recorded request of the same API most like the live one, and how they differ."""
        best: tuple[int, Any, list[str]] | None = None
        for exchanges in self.world.exchanges.values():
            sample = exchanges[0]
            if sample.api_key != api:
                continue
            for exchange in exchanges[:3]:
                raw = self.world.frame_raw(exchange.conn, exchange.request_index)
                view = norm.request_view(api, decode_request(raw).body)
                diff = norm.view_diff(view, live_view)
                score = len(diff) + (0 if exchange.version == version else 100)
                if best is None or score < best[0]:
                    best = (score, {"conn": exchange.conn, "request": view}, diff)
        return (None, []) if best is None else (best[1], best[2])

    # -- raw SASL tokens (KIP-43: after a SaslHandshake v0 answered with no error) -------------

    def _raw_token(self, raw: bytes) -> None:
        """A client SASL token: any credential matches (the cassette holds a placeholder); the
        recorded server token(s) that answered it go back as recorded. The mode ends with the
        recording's tokens, as it ended on the recorded connection."""
        assert self._raw_sasl is not None
        conn, client_index, server_indexes = self._raw_sasl.popleft()
        if not self._raw_sasl:
            self._raw_sasl = None
        self.ctx.recording.conn(conn).used.add(client_index)
        self.report.matched(self.proto, SASL_RAW_TOKEN)
        for index in server_indexes:
            self._queue(self.world.frame_raw(conn, index))

    # -- requests the codec cannot decode ------------------------------------------------------

    def _undecodable(
        self, api: int, version: int, corr: int, raw: bytes, err: KafkaCodecError
    ) -> None:
        """A request of a version newer than kio knows (or a body kio rejects, an unknown API).

        A recorded one the cassette keeps whole (rr.redact: an API that cannot carry a
        credential) matches when its bytes equal the live request's, correlation id and client
        id masked (`normalize.opaque_request_key`), and gets the recorded answer with the live
        correlation id stamped in; one kept as its header only (an API that may carry a
        credential, or a cassette recorded before such requests were kept) matches by API key
        and version, and the report notes it. Recorded, but none the same: a miss saying where
        the bytes first differ. Never recorded: ApiVersions gets what a broker sends
        (UNSUPPORTED_VERSION in the v0 layout, with the versions the recorded broker offered, so
        the client retries with one of them); anything else is a miss naming the API and
        version. An ApiVersions miss is answered so too; any other closes the connection (there
        is no response layout to put an error in), as a broker closes it.
        """
        name = api_name(api)
        candidates = self.world.opaque.get((api, version), [])
        digest = norm.opaque_request_digest(raw)
        same = [
            e for e in candidates if e.request_digest is not None and e.request_digest == digest
        ]
        by_header = [e for e in candidates if e.request_digest is None]
        exchange = self._pick(same, unused=True) or self._pick(by_header, unused=True)
        if exchange is not None:
            exchange.used = True
            self.ctx.recording.conn(exchange.conn).used.add(exchange.request_index)
            self.report.matched(self.proto, name)
            self._note_header_only(exchange)
            self._answer_recorded(exchange, api, version, corr)
            return
        if (same or by_header) and rule_for(api).repeatable:
            self.report.synthesized(self.proto, name)
            exchange = self._pick(same, unused=False) or self._pick(by_header, unused=False)
            assert exchange is not None
            self._note_header_only(exchange)
            self._answer_recorded(exchange, api, version, corr)
            return
        if api == API_VERSIONS and not candidates:
            self.report.synthesized(self.proto, name)
            self._reply(corr, API_VERSIONS, 0, unsupported_api_versions(self.world.api_ranges))
            return
        self._undecodable_miss(api, version, corr, raw, err, candidates)

    def _note_header_only(self, exchange: Exchange) -> None:
        """Say once per API and version that a match was by header only (bytes not compared)."""
        key = (exchange.api_key, exchange.version)
        if exchange.request_digest is not None or key in self.world.header_only_noted:
            return
        self.world.header_only_noted.add(key)
        api = exchange.api_key
        self.report.notes.append(
            f"kafka {api_name(api)} v{exchange.version} requests (not decodable) matched by API "
            f"key and version only, their bytes not compared: the cassette keeps only their "
            f"header ({_why_header_only(api)})"
        )

    def _undecodable_miss(
        self,
        api: int,
        version: int,
        corr: int,
        raw: bytes,
        err: KafkaCodecError,
        candidates: list[Exchange],
    ) -> None:
        name = api_name(api)
        what = f"{name} v{version} request cannot be decoded ({known_versions(api)})"
        closest, diff = None, []
        whole = [e for e in candidates if e.request_digest is not None]
        if whole:
            closest, diff = self._closest_bytes(whole, raw)
            reason = (
                f"{what} and differs from every recorded {name} v{version} request "
                f"(compared as bytes, correlation and client id masked): {diff[0]}"
            )
        elif candidates:
            reason = (
                f"{what} and every recorded {name} v{version} request was answered already "
                f"(matched by API key and version only: the cassette keeps only their header: "
                f"{_why_header_only(api)})"
            )
        else:
            reason = f"{what} and no {name} v{version} request was recorded: {err}"
        self.miss(name, reason, _summary(api, version, corr), closest, diff)
        if api == API_VERSIONS:
            self._reply(corr, API_VERSIONS, 0, unsupported_api_versions(self.world.api_ranges))
            return
        self.close()

    def _closest_bytes(self, exchanges: list[Exchange], raw: bytes) -> tuple[Any, list[str]]:
        """The recorded request that agrees with the live one longest (ids masked), and where
        they first differ."""
        best: tuple[norm.OpaqueDifference, Exchange] | None = None
        for exchange in exchanges[:8]:  # (a handful: one per connection that sent it)
            recorded = self.world.frame_raw(exchange.conn, exchange.request_index)
            difference = norm.opaque_difference(recorded, raw)
            if difference is not None and (best is None or difference.at > best[0].at):
                best = (difference, exchange)
        if best is None:  # every one equal: only a digest collision gets here
            return None, ["the same bytes as a recorded request, another digest"]
        difference, exchange = best
        return {"conn": exchange.conn, "frame": exchange.request_index}, [difference.line]

    # -- data plane: Produce -------------------------------------------------------------------

    def _produce(self, api: int, version: int, corr: int, body: Any) -> None:
        world = self.world
        self._bind_without_request()  # a connection that produces first
        to_recorded = self.ctx.bindings.to_recorded
        results: dict[tuple[str, int], tuple[int, int, int]] = {}  # tp -> (error, base, start)
        missed = False
        for topic in body.topic_data or ():
            name = topic_of(topic, world.topic_names)
            for part in topic.partition_data or ():
                tp = (name, int(part.index))
                recorded_tp = (to_recorded(name), tp[1])  # (a topic named by a bound value)
                error, base, log_start = self._produce_partition(recorded_tp, part.records)
                results[tp] = (error, base, log_start)
                missed = missed or error != 0
        if not missed:
            self.report.matched(self.proto, "Produce")
        if int(body.acks) == 0:
            return
        self._reply(corr, PRODUCE, version, _produce_response(version, body, results, world))

    def _produce_partition(self, tp: tuple[str, int], data: bytes | None) -> tuple[int, int, int]:
        world = self.world
        log = world.produce.get(tp)
        if log is None:
            self.miss("Produce", f"no recorded Produce to topic {tp[0]} partition {tp[1]}", {})
            return int(ErrorCode.unknown_topic_or_partition), -1, -1
        start = log.cursor
        count = self._same_faces(log, start, data)
        if count is None:  # a record differs (or cannot be walked): each read and compared
            count = self._compare_records(tp, log, start, data)
            if count is None:
                return int(ErrorCode.invalid_record), -1, -1
        log.cursor = start + count
        for at in range(start, log.cursor):
            ref = log.refs[at]
            if world.produced_again(ref):  # every record of that recorded request: used
                self.ctx.recording.conn(ref[0]).used.add(ref[1])
        base = log.offsets[start] if count else -1
        return 0, base, log.log_start_offset

    def _same_faces(self, log: ProduceLog, start: int, data: bytes | None) -> int | None:
        """How many records the live data holds when each one's face (key, value, headers as
        bytes) equals the recorded record's at its place in the log; None otherwise, and when a
        bound live value may be in the bytes (compared only once put back to the recorded one).

        The client waits for this answer before it sends its next Produce (kafka-python keeps
        one in flight per partition): reading every record field by field cost ~25 us per record,
        ~2.5 ms per 16 KB request, where Tansu answered in ~1 ms."""
        bindings = self.ctx.bindings
        if bindings and (data is None or bindings.mentions_live(data) or _compressed(data)):
            return None
        faces = produced_faces(data)
        if faces is None or log.faces[start : start + len(faces)] != faces:
            return None
        return len(faces)

    def _compare_records(
        self, tp: tuple[str, int], log: ProduceLog, start: int, data: bytes | None
    ) -> int | None:
        """Each live record read, its values put back and compared with the recorded one at
        its place: how many there are, or None after reporting the first that misses."""
        world = self.world
        live = _records(data)
        where = f"Produce topic {tp[0]} partition {tp[1]}"
        bindings = self.ctx.bindings
        for n, rec in enumerate(live):
            at = start + n
            if bindings:  # live values put back to the recorded ones
                rec = _to_recorded(rec, bindings)
            if at >= len(log.digests):
                self.miss(
                    "Produce",
                    f"{where}: live record {at} is past the {len(log.digests)} recorded",
                    {"topic": tp[0], "partition": tp[1], "record": at, "key": _text(rec.key)},
                )
                return None
            if world.digest(rec.key, rec.value, rec.headers) != log.digests[
                at
            ] and not self._unified(tp, at, rec, log.refs[at], where):
                return None
        return len(live)

    def _unified(self, tp, at: int, live, ref: tuple[int, int, int], where: str) -> bool:
        """The live record equals the recorded one up to identifier-shaped and clock values: its
        values bound (True). Otherwise, or on a binding conflict, a miss (False)."""
        conn, position, n = ref
        recorded = self.world.recorded_records(conn, position).get((tp, n))
        if recorded is not None:
            opts = self.ctx.options
            ignore = norm.record_rules(opts.ignore_fields, opts.ignore_headers)
            rec_view = ignore.apply(_face(recorded).view())
            unified = self.ctx.bindings.unify(rec_view, ignore.apply(_face(live).view()))
            if unified is not None:
                found = f"kafka live conn {self.link.live_id} Produce {tp[0]}"
                conflict = self.ctx.bindings.bind(unified.pairs, found)
                if conflict is None:
                    return True
                self._record_miss(tp, at, live, ref, where, conflict.line())
                return False
        self._record_miss(tp, at, live, ref, where)
        return False

    def _record_miss(
        self, tp, at: int, live, ref: tuple[int, int, int], where: str, reason: str = ""
    ) -> None:
        conn, position, n = ref
        recorded = self.world.recorded_records(conn, position).get((tp, n))
        opts = self.ctx.options
        diff: list[str] = []
        closest = None
        if recorded is not None:
            diff = norm.record_diff(
                f"{where} record {at}",
                _face(recorded),
                _face(live),
                ignore_fields=opts.ignore_fields,
                ignore_headers=opts.ignore_headers,
                bindings=self.ctx.bindings,
            )
            closest = _record_view(recorded) | {"conn": conn}
        self.miss(
            "Produce",
            reason or f"{where} record {at} differs from the recorded one",
            {"topic": tp[0], "partition": tp[1], "record": at} | _record_view(live),
            closest,
            diff,
        )

    # -- data plane: Fetch ---------------------------------------------------------------------

    def _fetch(self, api: int, version: int, corr: int, body: Any) -> None:
        world = self.world
        self._bind_without_request()  # a connection that fetches first
        to_recorded = self.ctx.bindings.to_recorded
        cls = response_schema(FETCH, version)
        topic_cls = item_cls(cls, "responses")
        part_cls = item_cls(topic_cls, "partitions")
        topics = []
        served = 0
        for topic in body.topics or ():
            name = topic_of(topic, world.topic_names)
            parts = []
            for part in topic.partitions or ():
                data, log = self._fetch_partition((to_recorded(name), int(part.partition)), part)
                served += len(data)
                fields: dict[str, Any] = {
                    "partition_index": part.partition,
                    "error_code": ErrorCode.none,
                    "high_watermark": log.high_watermark if log else 0,
                    "records": data,
                }
                if log is not None:  # (left out by `blank` where the version has no such field)
                    fields["last_stable_offset"] = log.last_stable_offset
                    fields["log_start_offset"] = log.log_start_offset
                parts.append(blank(part_cls, **fields))
            topics.append(
                blank(topic_cls, partitions=tuple(parts), **topic_ident(topic_cls, topic))
            )
        response = blank(cls, responses=tuple(topics))
        if served:
            self.report.matched(self.proto, "Fetch")
            self._reply(corr, FETCH, version, response)
            return
        self.report.synthesized(self.proto, "Fetch")
        wait = max_wait_seconds(body)
        self._reply(corr, FETCH, version, response, min(wait, MAX_POLL_WAIT))

    def _fetch_partition(self, tp: tuple[str, int], part: Any) -> tuple[bytes, Any]:
        log = self.world.fetch.get(tp)
        if log is None:
            return b"", None
        offset = int(part.fetch_offset)
        budget = max(1, int(part.partition_max_bytes))
        out: list[bytes] = []
        size = 0
        bindings = self.ctx.bindings
        for i in range(log.start_at(offset), len(log.bases)):
            batch = self.world.batch_bytes(log.refs[i])
            if bindings.mentions_recorded(batch):  # the live values of the run's bindings
                batch = restamp_batch(batch, bindings.bytes_to_live)
            if out and size + len(batch) > budget:
                break
            out.append(batch)
            size += len(batch)
        return b"".join(out), log

    def _metadata_unrecorded(self, api: int, version: int, body: Any) -> Any:
        """A Metadata request never recorded (a refresh of other topics): answered from the
        recorded ones, addresses moved when listeners moved."""
        bindings = self.ctx.bindings
        answer = _metadata_from_recording(self.world, version, body, bindings.to_recorded)
        if answer is not None and not self.ctx.ports.identity:
            answer, _n = rewrite_addresses(answer, self.ctx.ports)
        if answer is not None and bindings:
            answer = stamp_strings(answer, bindings.to_live, bindings.bytes_to_live)
        return answer

    # -- responses out, in order ---------------------------------------------------------------

    def _reply(self, corr: int, api: int, version: int, body: Any, delay: float = 0.0) -> None:
        self._queue(encode_response(api, version, corr, body), delay)

    def _queue(self, data: bytes, delay: float = 0.0) -> None:
        slot = _Slot()
        self._slots.append(slot)
        if delay > 0:

            def ready() -> None:
                slot.data = data
                self._flush()

            self.call_later(delay, ready)
        else:
            slot.data = data
            self._flush()

    def _flush(self) -> None:
        out = []
        while self._slots and self._slots[0].data is not None:
            out.append(self._slots.popleft().data)
        if out:
            self.send(b"".join(out))  # type: ignore[arg-type]


# --- helpers ------------------------------------------------------------------------------------


def _why_header_only(api: int) -> str:
    """Why rr.redact kept only the header of an undecodable recorded request of `api`."""
    reason = HEADER_ONLY_APIS.get(api)
    if reason is not None:
        return f"{api_name(api)} may carry a credential: {reason}"
    return (
        "recorded before such requests were kept whole, or while a SASL token could be on the "
        "wire; re-record to compare their bytes"
    )


def _summary(api: int, version: int, corr: int) -> dict[str, Any]:
    return {"api": api_name(api), "api_key": api, "correlation_id": corr, "version": version}


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(data)} bytes>"


def _compressed(data: bytes) -> bool:
    """Whether any batch of a Produce partition's data is compressed (its bytes hide values)."""
    return any(b.compression != "none" for b in scan_record_set(data).batches)


def _face(rec: Any) -> norm.RecordFace:
    return norm.RecordFace(rec.key, rec.value, rec.headers)


def _to_recorded(rec: Record, bindings: Bindings) -> Record:
    """A live record with the bound live values put back to the recorded ones."""
    back = bindings.bytes_to_recorded

    def part(data: bytes | None) -> bytes | None:
        return None if data is None else back(data)

    headers = tuple((bindings.to_recorded(k), part(v)) for k, v in rec.headers)
    return dataclasses.replace(rec, key=part(rec.key), value=part(rec.value), headers=headers)


def _record_view(rec: Any) -> dict[str, Any]:
    return {
        "headers": [[k, _text(v)] for k, v in rec.headers],
        "key": _text(rec.key),
        "value": _text(rec.value),
    }


def _produce_response(version: int, request: Any, results, world: KafkaWorld) -> Any:
    cls = response_schema(PRODUCE, version)
    topic_cls = item_cls(cls, "responses")
    part_cls = item_cls(topic_cls, "partition_responses")
    topics = []
    for topic in request.topic_data or ():
        name = topic_of(topic, world.topic_names)
        parts = []
        for part in topic.partition_data or ():
            error, base, log_start = results[(name, int(part.index))]
            parts.append(
                blank(
                    part_cls,
                    index=part.index,
                    error_code=ErrorCode(error),
                    base_offset=base,
                    log_start_offset=log_start,
                )
            )
        ident = topic_ident(topic_cls, topic)
        topics.append(blank(topic_cls, partition_responses=tuple(parts), **ident))
    return blank(cls, responses=tuple(topics))


def _metadata_from_recording(
    world: KafkaWorld, version: int, request: Any, to_recorded: Callable[[str], str]
) -> Any:
    """A Metadata answer for a request never recorded (a refresh of other topics): the latest
    recorded response of that version, with the requested topics as last recorded (a live
    topic name put back to the recorded one by `to_recorded`)."""
    latest = world.metadata.get(version)
    if latest is None:
        return None
    known = world.metadata_topics.get(version, {})
    wanted = request.topics
    if wanted is None:  # all topics
        topics = list(known.values())
    else:
        topics = []
        topic_cls = item_cls(type(latest), "topics")
        for item in wanted:
            name = getattr(item, "name", None)
            if name is not None:
                name = to_recorded(name)
            if name is None or str(name) not in known:
                fields = {"name": name} if name is not None else {}
                if has_field(topic_cls, "topic_id") and getattr(item, "topic_id", None):
                    fields["topic_id"] = item.topic_id
                topics.append(
                    blank(topic_cls, error_code=ErrorCode.unknown_topic_or_partition, **fields)
                )
            else:
                topics.append(known[str(name)])
    return dataclasses.replace(latest, topics=tuple(topics))


def _offset_commit_ok(_session: Session, api: int, version: int, request: Any) -> Any:
    """OffsetCommit beyond the recorded ones (auto-commit runs on a clock): every partition
    committed."""
    cls = response_schema(api, version)
    topic_cls = item_cls(cls, "topics")
    part_cls = item_cls(topic_cls, "partitions")
    topics = []
    for topic in request.topics or ():
        parts = tuple(
            blank(part_cls, partition_index=p.partition_index, error_code=ErrorCode.none)
            for p in topic.partitions or ()
        )
        topics.append(blank(topic_cls, partitions=parts, **topic_ident(topic_cls, topic)))
    return blank(cls, topics=tuple(topics))


def _left_group(_session: Session, api: int, version: int, request: Any) -> Any:
    """LeaveGroup without error, each leaving member (v3+) echoed, as a broker answers."""
    cls = response_schema(api, version)
    if not has_field(cls, "members"):
        return blank(cls)
    member_cls = item_cls(cls, "members")
    members = tuple(
        blank(member_cls, member_id=m.member_id, group_instance_id=m.group_instance_id)
        for m in request.members or ()
    )
    return blank(cls, members=members)


def _heartbeat_ok(_session: Session, api: int, version: int, _request: Any) -> Any:
    return blank(response_schema(api, version))


def _error_response(api: int, version: int) -> Any:
    """The API's response with UNKNOWN_SERVER_ERROR wherever it has an error code."""
    return with_errors(blank(response_schema(api, version)), ErrorCode.unknown_server_error)


# --- the API table --------------------------------------------------------------------------------

_CONTROL = ApiRule(Session._control)
#: Every API the fake broker treats other than by matching a recorded exchange, by its key
#: (rr.protocols.kafka.apis). Repeatable: reads, KIP-714 client telemetry (sent on the client's
#: own clock), and a consumer's rejoin of its group with the same member id (JoinGroup,
#: SyncGroup: a slow or loaded client may rejoin after a session timeout the recording never
#: had; it gets the last recorded generation again).
APIS: dict[int, ApiRule] = {
    PRODUCE: ApiRule(Session._produce),
    FETCH: ApiRule(Session._fetch, liveness=True),
    LIST_OFFSETS: ApiRule(Session._control, repeatable=True),
    METADATA: ApiRule(
        Session._control,
        liveness=True,
        repeatable=True,
        unrecorded=Session._metadata_unrecorded,
    ),
    OFFSET_COMMIT: ApiRule(Session._control, liveness=True, unrecorded=_offset_commit_ok),
    OFFSET_FETCH: ApiRule(Session._control, repeatable=True),
    FIND_COORDINATOR: ApiRule(Session._control, liveness=True, repeatable=True),
    JOIN_GROUP: ApiRule(Session._control, repeatable=True),
    HEARTBEAT: ApiRule(Session._control, liveness=True, unrecorded=_heartbeat_ok),
    LEAVE_GROUP: ApiRule(Session._control, closing=True, unrecorded=_left_group),
    SYNC_GROUP: ApiRule(Session._control, repeatable=True),
    DESCRIBE_GROUPS: ApiRule(Session._control, repeatable=True),
    LIST_GROUPS: ApiRule(Session._control, repeatable=True),
    API_VERSIONS: ApiRule(Session._control, liveness=True, repeatable=True),
    CREATE_TOPICS: ApiRule(Session._control, repeatable=True),
    DESCRIBE_CONFIGS: ApiRule(Session._control, repeatable=True),
    DESCRIBE_CLUSTER: ApiRule(Session._control, repeatable=True),
    GET_TELEMETRY_SUBSCRIPTIONS: ApiRule(Session._control, liveness=True, repeatable=True),
    PUSH_TELEMETRY: ApiRule(Session._control, liveness=True, repeatable=True),
    DESCRIBE_TOPIC_PARTITIONS: ApiRule(Session._control, repeatable=True),
}
#: client frames sent on a clock or a poll loop (by name: recorded summaries carry the name)
LIVENESS_APIS = frozenset(api_name(key) for key, rule in APIS.items() if rule.liveness)
#: client frames that only tear down: answered without error when the recording lacks them (it
#: may end before a consumer's close), never reported unused when a live client skips them
CLOSING_APIS = frozenset(api_name(key) for key, rule in APIS.items() if rule.closing)


def rule_for(api: int) -> ApiRule:
    """The API's rule; any API not in the table is matched against the recording only."""
    return APIS.get(api, _CONTROL)
