"""MQTT (3.1.1 and 5) replay: bind by normalized CONNECT, answer from the recorded connection.

A recorded connection's server packets split in two. Answers (CONNACK, PUBACK, PUBREC, PUBCOMP,
SUBACK, UNSUBACK, a PUBREL to the client's PUBREC) belong to the client packet they answer, paired
by packet id in the recording, and go out when that packet matches, carrying the live packet id;
so a client that waits for each PUBACK never deadlocks on a recorded interleaving. Everything else
(PUBLISH pushes to a subscriber, a server DISCONNECT) is released after the client packet that
preceded it in the recording, and a PUBLISH push not before the client PUBLISH that caused it
(same topic and payload, on any connection) has matched live: a subscriber never gets a message
its publisher has not sent yet, as with a real broker. A client's acks of earlier pushes never
hold a push back (a broker does not wait for them either), within the client's v5 Receive
Maximum; otherwise a subscriber would run in lockstep with its own PUBACKs. PINGREQ gets a
synthesized PINGRESP; recorded PINGRESPs are never served. `--match transcript` keeps recorded
order within each lane of `normalize.lane` (each kind of ack is a lane of its own: how acks
interleave with other packets is the broker's timing, not the client's behaviour). Which
fields must match is `rr.protocols.mqtt.normalize`'s job. Values the client chose are bindings
(`rr.replay.bindings`): its client id, bound whole when its connection is claimed, a v5
PUBLISH's correlation data, bound whole too (text or bytes: MQTT 5 request/response tells an
answer by it), and any identifier-shaped or clock value a packet differs in from its recorded
counterpart; pushes
served afterwards carry the live values (topic, payload, v5 response topic and correlation
data: `codec.stamp_publish`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Any

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.diff import Ignore
from rrlab.rr.replay.bindings import Bindings, binary_text
from rrlab.rr.replay.recording import RecFrame, RecordedConn
from rrlab.rr.replay.session import MatchMode, ReplayContext
from rrlab.rr.replay.session import Session as BaseSession

from . import normalize as norm
from .codec import (
    PACKET_TYPES,
    PINGRESP_BYTES,
    MqttDecoder,
    MqttFramer,
    MqttPacket,
    encode_connack,
    encode_disconnect,
    packet_id_span,
    stamp_publish,
    with_packet_id,
)
from .plan import Causes, Plan, rc_connect

C2S, S2C = Direction.C2S, Direction.S2C
IMPLEMENTATION_SPECIFIC_ERROR = 0x83  # v5 reason code for CONNACK / DISCONNECT
SERVER_UNAVAILABLE = 0x03  # 3.1.1 CONNACK return code
PUBREL_HEAD = b"\x62\x02"  # PUBREL, remaining length 2: the packet id (success, no properties)


def _label(summary: dict[str, Any]) -> str:
    """The packet's name as the report counts it (the protocol object's `label`)."""
    name = summary.get("packet")
    return name if name and isinstance(name, str) else "unknown"


def is_liveness(summary: dict[str, Any]) -> bool:
    return summary.get("packet") in norm.LIVENESS


def is_closing(summary: dict[str, Any]) -> bool:
    return norm.is_closing(summary)


def _ignore(ctx: ReplayContext) -> Ignore:
    return norm.ignore_rules(ctx.options.ignore_fields, ctx.options.ignore_headers)


def prepare(ctx: ReplayContext) -> None:
    """Causes and every recorded connection's plan, before listening: a client's CONNECT then
    costs a lookup, not a decode of its whole recorded connection."""
    causes = ctx.shared[Proto.MQTT] = Causes(ctx.recording, _ignore(ctx))
    for rc in ctx.recording.conns:
        if rc.proto is Proto.MQTT:
            causes.plan(rc)


def _correlation_pair(recorded: dict[str, Any], live: dict[str, Any]) -> list[tuple[str, str]]:
    """(recorded, live) correlation data of two PUBLISH packets, when both have one and they
    differ: a value the client chose by position, bound whole (bytes as `binary_text`)."""
    rec, got = norm.correlation_data(recorded), norm.correlation_data(live)
    if rec is None or got is None or rec == got:
        return []
    return [(binary_text(rec), binary_text(got))]


class Session(BaseSession):
    proto = Proto.MQTT
    framer_cls = MqttFramer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decoder = MqttDecoder()
        self.plan: Plan | None = None
        #: bound on CONNECT, claimed on the first packet after it (random client ids)
        self.provisional: tuple[Hashable, list[RecordedConn]] | None = None
        self.cursors: dict[str, int] = {}  # transcript mode: position in each of plan.lanes
        #: released server frames not sent yet, in order: (frame, the client frame it follows)
        self.outbox: deque[tuple[RecFrame, RecFrame]] = deque()
        #: QoS 1/2 pushes sent and not yet acknowledged, and the client's v5 limit on them
        self.inflight = 0
        self.receive_maximum: int | None = None
        #: QoS 1/2 pushes sent to this live connection: all of them, and the latest by packet id
        self.delivered: set[int] = set()
        self.pushed: dict[int, int] = {}
        self.client_id: str | None = None  # the live CONNECT's

    @property
    def causes(self) -> Causes:
        causes = self.ctx.shared.get(Proto.MQTT)
        if causes is None:  # prepare() not run (a session built by hand)
            causes = Causes(self.ctx.recording, _ignore(self.ctx))
            self.ctx.shared[Proto.MQTT] = causes
        return causes

    @property
    def v5(self) -> bool:
        return self.decoder.protocol_level == 5  # type: ignore[attr-defined]

    # -- frames --------------------------------------------------------------------------------

    def on_frame(self, raw: bytes) -> None:
        plan = self.plan
        bindings = self.ctx.bindings
        if plan is not None and not bindings.mentions_live(raw):
            # the hot path: PUBLISH and acks matched without a decode
            key = norm.fast_key(raw, self.v5, self.causes.ignore)
            if key is not None:
                name = PACKET_TYPES[raw[0] >> 4]
                index = self._find(plan, name, key)
                if index is not None:
                    span = packet_id_span(raw)
                    live_id = int.from_bytes(raw[span[0] : span[1]], "big") if span else None
                    self._serve(plan, index, name, live_id)
                    self.report.matched(self.proto, name)
                    return
        decoded = self.decoder.decode(C2S, raw)
        summary = decoded.summary
        packet: MqttPacket | None = decoded.body
        payload = packet.payload if packet is not None else None
        name = _label(summary)
        if bindings and plan is not None:  # live values put back to the recorded ones
            summary, payload = self._to_recorded(summary, payload)
        if "error" in summary:
            self._fail(name, f"undecodable client packet: {summary['error']}", summary, payload)
            return
        if plan is None and self.provisional is None:
            self._bind(summary, payload)
            return
        if name == "CONNECT":
            self._fail(name, "a second CONNECT on one connection", summary, payload)
            return
        if is_liveness(summary):
            self.send(PINGRESP_BYTES)
            self.report.synthesized(self.proto, name)
            return
        key = self._key(raw, summary, payload)
        if plan is None:
            plan = self._settle(norm.lane(name), raw, summary, payload)
            if plan is not None and bindings:
                summary, payload = self._to_recorded(summary, payload)
                key = self._key(raw, summary, payload)
        if plan is None:
            reason = "every recorded connection with this CONNECT is bound by now"
            self._fail(name, reason, summary, payload)
            return
        index = self._find(plan, name, key)
        if index is None:
            index = self._unified(plan, name, summary, payload)
            if self.closed:  # a binding conflict
                return
        if index is None and self._unrecorded_close(plan, name, summary):
            return
        if index is None:
            closest = self._closest(plan, summary)
            reason = (
                "no unused recorded packet with the same key"
                if self.ctx.options.match is MatchMode.LOOKUP
                else "differs from the next recorded client packet"
                if closest is not None
                else "the recorded connection has no client packet left"
            )
            self._fail(name, reason, summary, payload, closest)
            return
        self._serve(plan, index, name, summary.get("packet_id"))
        self.report.matched(self.proto, name)

    def _key(
        self,
        raw: bytes,
        summary: dict[str, Any],
        payload: bytes | None,
        bindings: Bindings | None = None,
    ) -> Hashable:
        """The packet's match key, computed as the plan's were (from the bytes where it can
        be), with the live values of `bindings` (the run's) put back to the recorded ones."""
        bindings = bindings if bindings is not None else self.ctx.bindings
        if bindings.mentions_live(raw):
            raw = stamp_publish(raw, self.v5, bindings.bytes_to_recorded)
        key = norm.fast_key(raw, self.v5, self.causes.ignore)
        return key if key is not None else norm.match_key(summary, payload, self.causes.ignore)

    def _to_recorded(
        self, summary: dict[str, Any], payload: bytes | None
    ) -> tuple[dict[str, Any], bytes | None]:
        bindings = self.ctx.bindings
        back = bindings.value_to_recorded(summary)
        return back, bindings.bytes_to_recorded(payload) if payload is not None else None

    def _unified(
        self, plan: Plan, name: str, live: dict[str, Any], payload: bytes | None
    ) -> int | None:
        """The recorded packet (the closest one: next of its lane, or the earliest unused of
        its type) the live one equals up to identifier-shaped and clock values, taken, its
        values bound; a binding conflict is a miss naming both (the connection closed)."""
        index = self._closest(plan, live)
        if index is None or index in plan.conn.used:
            return None
        frame, rec_payload = plan.full(index)
        if frame.summary.get("packet") != live.get("packet"):
            return None
        bindings = self.ctx.bindings
        whole = _correlation_pair(frame.summary, live)  # bound whole, whatever its shape
        if whole:
            conflict = bindings.conflict(whole)
            if conflict is not None:
                self._fail(name, conflict.line(), live, payload, index)
                return None
            trial = bindings.trial(whole)  # the live correlation data put back
            live = trial.value_to_recorded(live)
            payload = trial.bytes_to_recorded(payload) if payload is not None else None
        ignore = self.causes.ignore
        rec_view = ignore.apply(norm.packet_view(frame.summary, rec_payload))
        unified = bindings.unify(rec_view, ignore.apply(norm.packet_view(live, payload)))
        if unified is None:
            return None
        where = f"mqtt live conn {self.link.live_id} {name}"
        conflict = bindings.bind(whole + unified.pairs, where)
        if conflict is not None:
            self._fail(name, conflict.line(), live, payload, index)
            return None
        if self.ctx.options.match is MatchMode.TRANSCRIPT:
            self.cursors[norm.lane(name)] += 1
        else:
            queue = plan.by_key.get(plan.keys[index])
            if queue is not None and index in queue:
                queue.remove(index)
        return index

    def _find(self, plan: Plan, name: str, key: Hashable) -> int | None:
        if self.ctx.options.match is MatchMode.LOOKUP:
            return self._lookup(plan, key)
        return self._next(plan, norm.lane(name), key)

    def _next(self, plan: Plan, lane: str, key: Hashable) -> int | None:
        """Transcript: the next unused recorded packet of this lane, if it has the key."""
        head = self._head(plan, lane)
        if head is not None and plan.keys[head] == key:
            self.cursors[lane] += 1
            return head
        return None

    def _head(self, plan: Plan, lane: str) -> int | None:
        frames = plan.lanes.get(lane, [])
        at = self.cursors.get(lane, 0)
        while at < len(frames) and frames[at] in plan.conn.used:
            at += 1
        self.cursors[lane] = at
        return frames[at] if at < len(frames) else None

    def _lookup(self, plan: Plan, key: Hashable) -> int | None:
        queue = plan.by_key.get(key)
        while queue:
            index = queue.pop(0)
            if index not in plan.conn.used:
                return index
        return None

    def _closest(self, plan: Plan, live: dict[str, Any]) -> int | None:
        """Transcript: the next recorded packet of the live packet's lane (else of the main
        lane); lookup: the earliest unused one of the same type (and topic, for PUBLISH), else
        the earliest unused one."""
        if self.ctx.options.match is MatchMode.TRANSCRIPT:
            lane = norm.lane(str(live.get("packet")))
            head = self._head(plan, lane)
            return head if head is not None else self._head(plan, "main")
        unused = [i for i in plan.order if i not in plan.conn.used]
        frames = plan.frames
        for same in (("packet", "topic"), ("packet",)):
            for i in unused:
                if all(frames[i].summary.get(k) == live.get(k) for k in same):
                    return i
        return unused[0] if unused else None

    def _serve(self, plan: Plan, index: int, name: str, live_id: Any) -> None:
        """Consume recorded client frame `index`: send its answers at once (the live packet id
        stamped where the id is the client's), queue the server frames it released."""
        plan.conn.used.add(index)
        self.causes.matched((plan.conn.id, index))
        if name in ("PUBACK", "PUBCOMP") and self.inflight:
            self.inflight -= 1  # a QoS 1/2 push completed: room under Receive Maximum
        frames = plan.frames
        trigger = frames[index]
        answers = []
        for i in plan.answers.get(index, ()):
            data = frames[i].raw
            if (
                isinstance(live_id, int)
                and frames[i].summary.get("packet") in norm.ECHOES_CLIENT_ID
            ):
                data = with_packet_id(data, live_id)
            answers.append((frames[i], data))
        self.send_recorded(answers, after=trigger)
        self.outbox.extend((frames[i], trigger) for i in plan.releases.get(index, ()))
        self.flush()

    def flush(self) -> None:
        """Send queued server frames in recorded order, stopping at a push whose cause has not
        matched live yet (this session is woken when it does) or that would exceed the client's
        Receive Maximum (woken by its next PUBACK/PUBCOMP)."""
        if self.plan is None:
            return
        causes, conn = self.causes, self.plan.conn
        batch: list[tuple[RecFrame, bytes]] = []
        after: RecFrame | None = None
        while self.outbox and not self.closed:
            frame, trigger = self.outbox[0]
            cause = causes.pending((conn.id, frame.index))
            if cause is not None:
                causes.wait(cause, self)
                break
            qos = frame.summary.get("qos", 0) if frame.summary.get("packet") == "PUBLISH" else 0
            if qos and self.receive_maximum is not None:
                if self.inflight >= self.receive_maximum:
                    break
                self.inflight += 1
            self.outbox.popleft()
            if qos:
                self._note_push(frame)
            ref = causes.cause_of.get((conn.id, frame.index))
            if ref is not None:  # paced from the later of its trigger and its cause
                caused_by = causes.plans[ref[0]].frames[ref[1]]
                trigger = max(trigger, caused_by, key=lambda f: f.t_us)
            if after is not None and trigger is not after:
                self.send_recorded(batch, after=after)
                batch = []
            batch.append((frame, self._stamped(frame.raw)))
            after = trigger
        if batch:
            self.send_recorded(batch, after=after)

    def _stamped(self, raw: bytes) -> bytes:
        """A recorded push with the live values of the run's bindings in it."""
        bindings = self.ctx.bindings
        if not bindings.mentions_recorded(raw):
            return raw
        return stamp_publish(raw, self.v5, bindings.bytes_to_live)

    # -- binding -------------------------------------------------------------------------------

    def _bind(self, summary: dict[str, Any], payload: bytes | None) -> None:
        if summary.get("packet") != "CONNECT":
            self._fail(_label(summary), "first packet is not CONNECT", summary, payload)
            return
        key = norm.connect_key(summary)
        cid = self.client_id = norm.client_id(summary)
        if self.v5:
            props = summary.get("properties") or {}
            self.receive_maximum = int(props.get("receive_maximum", 65535))
        recording, port, live = self.ctx.recording, self.listener.recorded_port, self.link.live_id

        plans = self.causes.plans

        def fits(rc: RecordedConn) -> bool:
            plan = plans.get(rc.id)
            return plan is not None and plan.connect is not None and plan.connect_key == key

        def same_id(rc: RecordedConn) -> bool:
            connect = plans[rc.id].connect if fits(rc) else None
            return connect is not None and norm.client_id(connect.summary) == cid

        if cid:  # the same (non-empty) client id: that connection, at once
            rc = recording.claim(self.proto, port, live, same_id)
            if rc is not None:
                self._adopt(rc)
                self._serve(self.plan, rc_connect(self.plan), "CONNECT", None)
                self.report.matched(self.proto, "CONNECT")
                return
        fitting = [rc for scope in (port, None) for rc in recording.candidates(self.proto, scope)]
        fitting = list({rc.id: rc for rc in fitting if fits(rc)}.values())
        ids = {rc.id for rc in fitting}
        rivals = [s for s in self.causes.unsettled if ids & {rc.id for rc in s.provisional[1]}]
        if not fitting or len(fitting) <= len(rivals):  # none, or all spoken for
            self.report.connection(self.proto, False)
            self._refuse(summary, taken=bool(fitting))
            return
        # Which of several look-alike recorded connections this is (random client ids, opened
        # in another order) shows in the next packet: answer the CONNECT from the first one
        # now, claim when that packet comes.
        self.provisional = (key, fitting)
        self.causes.unsettled.add(self)
        first = self.causes.plan(fitting[0])
        indexes = sorted(
            first.answers.get(rc_connect(first), []) + first.releases.get(rc_connect(first), [])
        )
        frames = first.frames
        self.send_recorded([(frames[i], frames[i].raw) for i in indexes], after=first.connect)
        self.report.matched(self.proto, "CONNECT")

    def _settle(
        self, lane: str, raw: bytes, summary: dict[str, Any], payload: bytes | None
    ) -> Plan | None:
        """Claim the first still unclaimed look-alike connection whose next client packet has
        the live packet's key (transcript) or that holds one (lookup), the live values put back
        as if that connection's client id were bound; else the first one left (None: none)."""
        assert self.provisional is not None
        _connect_key, fitting = self.provisional
        self.provisional = None
        self.causes.unsettled.discard(self)
        left = [rc for rc in fitting if rc.claimed_by is None]
        lookup = self.ctx.options.match is MatchMode.LOOKUP

        def expects(rc: RecordedConn) -> bool:
            plan = self.causes.plan(rc)
            trial = self.ctx.bindings.trial(self._client_id_pair(plan))
            back = trial.value_to_recorded(summary)
            body = trial.bytes_to_recorded(payload) if payload is not None else None
            key = self._key(raw, back, body, trial)
            if lookup:
                return key in plan.by_key
            heads = plan.lanes.get(lane, [])
            return bool(heads) and plan.keys[heads[0]] == key

        chosen = next((rc for rc in left if expects(rc)), left[0] if left else None)
        rc = self.ctx.recording.claim(self.proto, None, self.link.live_id, lambda c: c is chosen)
        if rc is None:
            return None
        self._adopt(rc)
        assert self.plan is not None
        rc.used.add(rc_connect(self.plan))
        return self.plan

    def _adopt(self, rc: RecordedConn) -> None:
        self.report.connection(self.proto, True)
        self.bound = rc
        self.plan = self.causes.plan(rc)
        where = f"mqtt live conn {self.link.live_id} CONNECT client_id"
        self.ctx.bindings.bind(self._client_id_pair(self.plan), where)  # a conflict: unbound

    def _client_id_pair(self, plan: Plan) -> list[tuple[str, str]]:
        """(recorded, live) client id: bound whole, whatever its shape (a topic may embed it)."""
        recorded = norm.client_id(plan.connect.summary) if plan.connect is not None else None
        if recorded and self.client_id and recorded != self.client_id:
            return [(recorded, self.client_id)]
        return []

    def on_close(self) -> None:
        if self.provisional is not None:  # connected, then said nothing: the first look-alike
            left = [rc for rc in self.provisional[1] if rc.claimed_by is None]
            self.provisional = None
            self.causes.unsettled.discard(self)
            if left:
                rc = self.ctx.recording.claim(
                    self.proto, None, self.link.live_id, lambda c: c is left[0]
                )
                if rc is not None:
                    self._adopt(rc)
                    assert self.plan is not None
                    rc.used.add(rc_connect(self.plan))
        if self.outbox and self.plan is not None:
            self.report.notes.append(self._unsent_note())
        if self.plan is not None:
            self._close_over_acks(self.plan)
        super().on_close()

    # -- closing (the README's liveness/closing table) -----------------------------------------
    # A client's close races the recording proxy: the recording may lack a final DISCONNECT or
    # the acks of the last pushes, or hold ones the live client closed before sending. Neither
    # is behaviour; anything else about acks still is.

    def _note_push(self, frame: RecFrame) -> None:
        span = packet_id_span(frame.raw)
        if span is not None:
            self.pushed[int.from_bytes(frame.raw[span[0] : span[1]], "big")] = frame.index
            self.delivered.add(frame.index)

    def _unrecorded_close(self, plan: Plan, name: str, summary: dict[str, Any]) -> bool:
        """Live side: a graceful DISCONNECT the recording lacks just closes; an ack of a push
        this connection was sent, of a kind the recording has none of for that push (it ended
        first), is taken (a PUBREC answered with PUBREL, as a broker does). False: a miss."""
        if norm.is_closing(summary):
            self.report.synthesized(self.proto, name)
            self.close()
            return True
        pid = summary.get("packet_id")
        push = self.pushed.get(pid) if name in norm.PUSH_ACKS else None
        if push is None or (push, name) in plan.recorded_acks:
            return False
        self.report.synthesized(self.proto, name)
        if name == "PUBREC":
            self.send(PUBREL_HEAD + int(pid).to_bytes(2, "big"))
        return True

    def _close_over_acks(self, plan: Plan) -> None:
        """Recorded side, once the live connection ended: an ack in the recording's teardown
        tail that the client never sent is consumed by the close (never unused) when its push
        was sent to this connection and the client acked no later push. Unused, and reported,
        stay the acks of pushes never sent, acks followed in the recording by anything but acks
        and DISCONNECT, and acks skipped while later pushes were acked."""
        used = plan.conn.used
        latest = max((push for ack, push in plan.ack_of.items() if ack in used), default=-1)
        for ack in plan.tail:
            push = plan.ack_of.get(ack)
            if push is not None and ack not in used and push in self.delivered and push > latest:
                used.add(ack)

    def _unsent_note(self) -> str:
        """Why a client may have waited in vain: recorded pushes never sent, and what held the
        first of them back."""
        assert self.plan is not None
        frame, _trigger = self.outbox[0]
        note = (
            f"mqtt live conn {self.link.live_id} (recorded conn {self.plan.conn.id}) closed with "
            f"{len(self.outbox)} recorded server packets unsent; the first, seq {frame.seq}"
        )
        cause = self.causes.pending((self.plan.conn.id, frame.index))
        if cause is not None:
            seq = self.causes.plans[cause[0]].frames[cause[1]].seq
            return f"{note}, waits for the client PUBLISH seq {seq} on recorded conn {cause[0]}"
        return f"{note}, waits for acks under the client's Receive Maximum"

    def _refuse(self, summary: dict[str, Any], *, taken: bool = False) -> None:
        """No recorded connection fits: refuse in CONNACK, name the nearest one in the miss."""
        left = [] if taken else self.ctx.recording.candidates(self.proto, None)
        plans = [self.causes.plans.get(rc.id) for rc in left]
        connects = [p.connect for p in plans if p is not None and p.connect is not None]
        if connects:
            closest = connects[0].summary
            reason = "no unclaimed recorded connection has this CONNECT"
            lines = norm.diff(closest, summary)
        else:
            closest, lines = None, []
            reason = "every recorded connection is already bound (more connections than recorded)"
        self.miss("CONNECT", reason, norm.view(summary, None), closest, lines)
        if self.v5:
            self.send(encode_connack(IMPLEMENTATION_SPECIFIC_ERROR, v5=True, reason_string=reason))
        else:
            self.send(encode_connack(SERVER_UNAVAILABLE, v5=False))
        self.close()

    # -- misses --------------------------------------------------------------------------------

    def _fail(
        self,
        api: str,
        reason: str,
        live: dict[str, Any],
        payload: bytes | None,
        closest: int | None = None,
    ) -> None:
        """Loud miss: report it with the closest recorded packet and a field diff, tell a v5
        client why (DISCONNECT 0x83 + reason string), and stop serving this connection."""
        rec_summary: dict[str, Any] | None = None
        lines: list[str] = []
        if closest is not None and self.plan is not None:
            frame, rec_payload = self.plan.full(closest)
            rec_summary = norm.view(frame.summary, rec_payload)
            bindings, whole = self.ctx.bindings, _correlation_pair(frame.summary, live)
            if whole and bindings.conflict(whole) is None:  # not named: it would bind
                bindings = bindings.trial(whole)
            lines = norm.diff(
                frame.summary, live, rec_payload, payload, self.causes.ignore, bindings
            )
        self.miss(api, reason, norm.view(live, payload), rec_summary, lines)
        if self.v5 and self.plan is not None:
            text = f"rrlab replay miss: {api}: {reason}" + (f"; {lines[0]}" if lines else "")
            self.send(encode_disconnect(IMPLEMENTATION_SPECIFIC_ERROR, text))
        self.close()
