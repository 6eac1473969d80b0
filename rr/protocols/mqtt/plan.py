"""An MQTT recording as the replay sessions read it: each recorded connection's plan (which
server packets answer which client packet, which are released after it) and the causes of
broker pushes (which client PUBLISH, on any connection, must match live before a push goes)."""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.diff import NO_IGNORE, Ignore
from rrlab.rr.protocols.base import FrameRef
from rrlab.rr.replay.recording import RecFrame, RecordedConn, Recording

from . import normalize as norm
from .codec import PACKET_TYPES, PUBLISH, MqttDecoder, ack_head, publish_head

C2S, S2C = Direction.C2S, Direction.S2C


class Waiter(Protocol):
    """A live session holding pushes back until their cause has matched (`Session.flush`)."""

    def flush(self) -> None: ...


_SHAPES: dict[tuple[Any, ...], dict[str, Any]] = {}


def _shape(summary: dict[str, Any]) -> dict[str, Any]:
    """The little of a summary a plan keeps per frame (packet, topic, QoS), one shared dict per
    distinct value: a long recording is not held as thousands of summaries."""
    key = (summary.get("packet"), summary.get("topic"), summary.get("qos"))
    shape = _SHAPES.get(key)
    if shape is None:
        shape = _SHAPES[key] = {
            k: v for k, v in zip(("packet", "topic", "qos"), key, strict=True) if v is not None
        }
    return shape


_PINGS = {b"\xc0\x00": "PINGREQ", b"\xd0\x00": "PINGRESP"}


def _facts(raw: bytes) -> tuple[dict[str, Any], int] | None:
    """What a plan keys on, read from a 3.1.1 packet's bytes for the packets a long recording
    is made of (PUBLISH, its acks, pings): the fields of its summary a plan reads (packet,
    topic, QoS, packet id) and where a PUBLISH's payload starts (0: no payload); None for any
    other packet and wherever the decoder would fail (the recorded summary is read then).
    Measured on a 160-byte PUBLISH: 2.0 us, its summary's JSON 2.5 us, a decode 10.9 us (the
    causes decoded every PUBLISH for its payload)."""
    if raw[0] >> 4 == PUBLISH:
        head = publish_head(raw)
        if head is None:
            return None
        qos, topic, packet_id, body = head
        if packet_id is None:
            return {"packet": "PUBLISH", "qos": 0, "topic": topic}, body
        return {"packet": "PUBLISH", "qos": qos, "topic": topic, "packet_id": packet_id}, body
    ack = ack_head(raw)
    if ack is not None:
        return {"packet": PACKET_TYPES[ack[0]], "packet_id": ack[1]}, 0
    ping = _PINGS.get(raw)
    return ({"packet": ping}, 0) if ping is not None else None


class _Publishes:
    """Every recorded PUBLISH as (seq, what: a hash of topic and payload, connection, frame
    index), client ones and server pushes apart, in arrays: ~32 bytes each where a tuple each
    took ~220 on a long recording. `causes` pairs each push with its cause."""

    def __init__(self) -> None:
        self.sent = [array("q") for _ in range(4)]  # client PUBLISHes
        self.pushed = [array("q") for _ in range(4)]  # broker pushes
        self._appends = {
            C2S: [column.append for column in self.sent],
            S2C: [column.append for column in self.pushed],
        }

    def add(self, direction: Direction, seq: int, what: int, conn: int, index: int) -> None:
        seqs, whats, conns, indexes = self._appends[direction]
        seqs(seq)
        whats(what)
        conns(conn)
        indexes(index)

    def causes(self) -> dict[FrameRef, FrameRef]:
        """Each push -> the latest client PUBLISH before it (by seq, on any connection) with the
        same topic and payload; client PUBLISHes nothing was pushed like are never sorted."""
        pushed_whats = set(self.pushed[1])
        rows = [(*row, C2S) for row in zip(*self.sent, strict=True) if row[1] in pushed_whats]
        rows += [(*row, S2C) for row in zip(*self.pushed, strict=True)]
        rows.sort(key=lambda row: row[0])
        cause_of: dict[FrameRef, FrameRef] = {}
        latest: dict[int, FrameRef] = {}
        for _seq, what, conn, index, direction in rows:
            if direction is C2S:
                latest[what] = (conn, index)
            elif what in latest:
                cause_of[(conn, index)] = latest[what]
        return cause_of


@dataclass(slots=True)
class Plan:
    """A recorded connection prepared for serving, read once as a stream: keys of its client
    packets, which server packets answer or follow which, and the server packets' bytes. Frames
    are kept without their summaries (see `full` when a miss needs one)."""

    conn: RecordedConn
    connect: RecFrame | None  # kept whole: binding compares it
    v5: bool
    connect_key: Hashable = None
    #: by frame index: the frame, summary reduced to its shape, client frames without bytes
    frames: list[RecFrame] = field(default_factory=list)
    #: matchable client frames (not CONNECT, not liveness), in recorded order
    order: list[int] = field(default_factory=list)
    #: the same, split by `rr.protocols.mqtt.normalize.lane` (transcript order holds within a lane)
    lanes: dict[str, list[int]] = field(default_factory=dict)
    #: by frame index: the match key of a matchable client frame (None for the others); equal
    #: keys are one object (a recording of one message sent 10,000 times holds it once)
    keys: list[Hashable] = field(default_factory=list)
    #: client frame index -> indexes of the server frames answering it
    answers: dict[int, list[int]] = field(default_factory=dict)
    #: client frame index -> indexes of the other server frames recorded after it
    releases: dict[int, list[int]] = field(default_factory=dict)
    #: key -> client frames with it, recorded order (lists, mostly of one: a deque each would
    #: cost 600 bytes a frame)
    by_key: dict[Hashable, list[int]] = field(default_factory=dict)
    #: closing (see `Session._close_over_acks`): client ack -> the push (server PUBLISH) it
    #: acknowledges, the (push, ack packet) pairs recorded, and the recording's teardown: the
    #: client frames after the last one that is neither a push's ack nor a graceful DISCONNECT
    ack_of: dict[int, int] = field(default_factory=dict)
    recorded_acks: set[tuple[int, str]] = field(default_factory=set)
    tail: list[int] = field(default_factory=list)

    @classmethod
    def build(cls, conn: RecordedConn, ignore: Ignore, publishes: _Publishes | None = None) -> Plan:
        """The plan of `conn`, in one read of its frames; with `publishes`, its PUBLISH
        packets noted there too (what `Causes` derives the pushes' causes from). A 3.1.1
        PUBLISH, ack or ping is read from its bytes (`_facts`); other packets, and every packet
        of a v5 connection, from their recorded summaries (decoded only to key them)."""
        decoder = MqttDecoder()  # sees every CONNECT: knows the protocol level as recorded
        plan = cls(conn, None, v5=False)
        frames, keys, by_key = plan.frames, plan.keys, plan.by_key
        pending: dict[tuple[str, int | None], int] = {}
        last: int | None = None  # the client frame that releases the server frames after it
        last_not_ack: int | None = None  # ... and the one that releases PUBLISH pushes
        unacked: dict[int, int] = {}  # packet id -> QoS 1/2 push awaiting the client's ack
        for frame in conn.stream():
            raw, index = frame.raw, frame.index
            ptype = raw[0] >> 4
            if ptype == 1:
                decoder.decode(frame.dir, raw)  # learns the protocol level
            facts = _facts(raw) if decoder.protocol_level != 5 else None  # type: ignore[attr-defined]
            summary = facts[0] if facts is not None else frame.summary
            name = summary.get("packet")
            if publishes is not None and ptype == 3:
                _note_publish(publishes, conn.id, frame, facts, summary, decoder)
            keys.append(None)
            if frame.dir is S2C:
                frames.append(RecFrame(index, frame.seq, S2C, frame.t_us, raw, _shape(summary)))
                if name == "PUBLISH" and summary.get("qos"):
                    unacked[summary.get("packet_id")] = index
                if name == "PINGRESP":
                    continue  # liveness answers are synthesized, never replayed
                asked = pending.pop((str(name), summary.get("packet_id")), None)
                trigger = last_not_ack if name == "PUBLISH" else last
                if asked is not None:
                    plan.answers.setdefault(asked, []).append(index)
                elif trigger is not None:
                    plan.releases.setdefault(trigger, []).append(index)
                continue
            frames.append(RecFrame(index, frame.seq, C2S, frame.t_us, b"", _shape(summary)))
            if plan.connect is None:  # (the decoder read it above if it is a CONNECT)
                plan.connect, plan.v5 = frame, decoder.protocol_level == 5  # type: ignore[attr-defined]
                if name == "CONNECT":
                    plan.connect_key = norm.connect_key(summary)
            answer = norm.expected_answer(summary)
            if answer is not None and name not in norm.LIVENESS:
                pending[answer] = index
            if name in norm.LIVENESS:
                continue
            if plan.tail or name in norm.PUSH_ACKS or name in norm.CLOSING_PACKETS:
                plan.learn_closing(index, summary, unacked)  # (a no-op for the others)
            last = index
            if name not in norm.PUSH_ACKS:
                last_not_ack = index
            if frame is plan.connect:
                continue
            plan.order.append(index)
            plan.lanes.setdefault(norm.lane(str(name)), []).append(index)
            key = norm.fast_key(raw, plan.v5, ignore)
            if key is None:
                body = decoder.decode(C2S, raw).body
                payload = body.payload if body is not None else None
                key = norm.match_key(frame.summary, payload, ignore)
            same = by_key.get(key)
            if same is None:
                by_key[key] = [index]
            else:
                key = keys[same[0]]  # the one object for every frame with this key
                same.append(index)
            keys[index] = key
        if plan.connect is not None and plan.connect.summary.get("packet") != "CONNECT":
            plan.connect = None  # a recording that does not start with CONNECT binds nothing
        return plan

    def learn_closing(self, index: int, summary: dict[str, Any], unacked: dict[int, int]) -> None:
        """Which push client ack `index` acknowledges, and whether it is in the teardown."""
        name, pid = summary.get("packet"), summary.get("packet_id")
        push = unacked.get(pid) if name in norm.PUSH_ACKS else None
        if push is not None:
            self.ack_of[index] = push
            self.recorded_acks.add((push, str(name)))
            if name != "PUBREC":  # QoS 2: the PUBCOMP still to come acknowledges it too
                del unacked[pid]
        if push is not None or norm.is_closing(summary):
            self.tail.append(index)
        elif name != "CONNECT":
            self.tail.clear()

    def full(self, index: int) -> tuple[RecFrame, bytes | None]:
        """Frame `index` as recorded (summary and bytes, read again) and its payload, if any."""
        frame = next(itertools.islice(self.conn.stream(), index, None))
        decoder = MqttDecoder()
        decoder.protocol_level = 5 if self.v5 else 4  # type: ignore[attr-defined]
        body = decoder.decode(frame.dir, frame.raw).body
        return frame, body.payload if body is not None else None


class Causes:
    """Which recorded client PUBLISH caused each recorded broker PUBLISH push (the latest one
    before it, on any connection, with the same topic and payload), and the sessions whose
    pushes wait for a cause to be matched live. Shared by every MQTT session of a run, with
    the plans of the recorded connections: both derived in one read of each connection
    (`Plan.build`), when `prepare` builds this."""

    def __init__(self, recording: Recording, ignore: Ignore = NO_IGNORE) -> None:
        self.recording = recording
        self.ignore = ignore
        self.plans: dict[int, Plan] = {}
        #: sessions past CONNECT whose recorded connection is not chosen yet
        self.unsettled: set[Any] = set()  # (the MQTT sessions)
        self.cause_of: dict[FrameRef, FrameRef] = {}
        self.waiting: dict[FrameRef, set[Waiter]] = {}
        publishes = _Publishes()
        for rc in recording.conns:
            if rc.proto is Proto.MQTT:
                self.plans[rc.id] = Plan.build(rc, ignore, publishes)
        self.cause_of = publishes.causes()

    def plan(self, rc: RecordedConn) -> Plan:
        plan = self.plans.get(rc.id)
        if plan is None:
            plan = self.plans[rc.id] = Plan.build(rc, self.ignore)
        return plan

    def pending(self, ref: FrameRef) -> FrameRef | None:
        """The cause of push `ref` while it is not matched yet, else None."""
        cause = self.cause_of.get(ref)
        if cause is None or cause[1] in self.recording.conn(cause[0]).used:
            return None
        return cause

    def wait(self, cause: FrameRef, session: Waiter) -> None:
        self.waiting.setdefault(cause, set()).add(session)

    def matched(self, ref: FrameRef) -> None:
        """A client frame was consumed: let the sessions waiting for it send their pushes."""
        for session in self.waiting.pop(ref, ()):
            session.flush()


def _note_publish(
    publishes: _Publishes,
    conn: int,
    frame: RecFrame,
    facts: tuple[dict[str, Any], int] | None,
    summary: dict[str, Any],
    decoder: MqttDecoder,
) -> None:
    """A PUBLISH's topic and payload noted for `Causes` (one the decoder cannot read is not)."""
    if facts is not None:
        payload: bytes = frame.raw[facts[1] :]
    else:
        body = decoder.decode(frame.dir, frame.raw).body
        if body is None:
            return
        payload = body.payload  # type: ignore[assignment]
    what = hash((summary.get("topic"), payload))
    publishes.add(frame.dir, frame.seq, what, conn, frame.index)


def rc_connect(plan: Plan) -> int:
    """Index of a plan's CONNECT frame (plans are only built for connections that have one)."""
    assert plan.connect is not None
    return plan.connect.index
