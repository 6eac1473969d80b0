"""An MQTT recording as the replay sessions read it: each recorded connection's plan (which
server packets answer which client packet, which are released after it) and the causes of
broker pushes (which client PUBLISH, on any connection, must match live before a push goes)."""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.diff import NO_IGNORE, Ignore
from rrlab.rr.protocols.base import FrameRef
from rrlab.rr.replay.recording import RecFrame, RecordedConn, Recording

from . import normalize as norm
from .codec import MqttDecoder

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


@dataclass(slots=True)
class Plan:
    """A recorded connection prepared for serving, read once as a stream: keys of its client
    packets, which server packets answer or follow which, and the server packets' bytes. Frames
    are kept without their summaries (see `full` when a miss needs one)."""

    conn: RecordedConn
    connect: RecFrame | None  # kept whole: binding compares it
    v5: bool
    connect_key: Hashable = None
    #: frame index -> the frame, summary reduced to its shape, client frames without bytes
    frames: dict[int, RecFrame] = field(default_factory=dict)
    #: matchable client frames (not CONNECT, not liveness), in recorded order
    order: list[int] = field(default_factory=list)
    #: the same, split by `rr.protocols.mqtt.normalize.lane` (transcript order holds within a lane)
    lanes: dict[str, list[int]] = field(default_factory=dict)
    keys: dict[int, Hashable] = field(default_factory=dict)
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
    def build(cls, conn: RecordedConn, ignore: Ignore) -> Plan:
        decoder = MqttDecoder()
        plan = cls(conn, None, v5=False)
        pending: dict[tuple[str, int | None], int] = {}
        last: int | None = None  # the client frame that releases the server frames after it
        last_not_ack: int | None = None  # ... and the one that releases PUBLISH pushes
        unacked: dict[int, int] = {}  # packet id -> QoS 1/2 push awaiting the client's ack
        for frame in conn.stream():
            name = frame.summary.get("packet")
            if frame.dir is S2C:
                plan.frames[frame.index] = RecFrame(
                    frame.index, frame.seq, S2C, frame.t_us, frame.raw, _shape(frame.summary)
                )
                if name == "PUBLISH" and frame.summary.get("qos"):
                    unacked[frame.summary.get("packet_id")] = frame.index
                if name == "PINGRESP":
                    continue  # liveness answers are synthesized, never replayed
                asked = pending.pop((str(name), frame.summary.get("packet_id")), None)
                trigger = last_not_ack if name == "PUBLISH" else last
                if asked is not None:
                    plan.answers.setdefault(asked, []).append(frame.index)
                elif trigger is not None:
                    plan.releases.setdefault(trigger, []).append(frame.index)
                continue
            plan.frames[frame.index] = RecFrame(
                frame.index, frame.seq, C2S, frame.t_us, b"", _shape(frame.summary)
            )
            if plan.connect is None:
                decoder.decode(C2S, frame.raw)  # learns the protocol level
                plan.connect, plan.v5 = frame, decoder.protocol_level == 5  # type: ignore[attr-defined]
                if name == "CONNECT":
                    plan.connect_key = norm.connect_key(frame.summary)
            answer = norm.expected_answer(frame.summary)
            if answer is not None and name not in norm.LIVENESS:
                pending[answer] = frame.index
            if name in norm.LIVENESS:
                continue
            plan.learn_closing(frame, unacked)
            last = frame.index
            if name not in norm.PUSH_ACKS:
                last_not_ack = frame.index
            if frame is plan.connect:
                continue
            plan.order.append(frame.index)
            plan.lanes.setdefault(norm.lane(str(name)), []).append(frame.index)
            key = norm.fast_key(frame.raw, plan.v5, ignore)
            if key is None:
                body = decoder.decode(C2S, frame.raw).body
                payload = body.payload if body is not None else None
                key = norm.match_key(frame.summary, payload, ignore)
            plan.keys[frame.index] = key
            plan.by_key.setdefault(key, []).append(frame.index)
        if plan.connect is not None and plan.connect.summary.get("packet") != "CONNECT":
            plan.connect = None  # a recording that does not start with CONNECT binds nothing
        return plan

    def learn_closing(self, frame: RecFrame, unacked: dict[int, int]) -> None:
        """Which push a client ack acknowledges, and whether the frame is in the teardown."""
        name, pid = frame.summary.get("packet"), frame.summary.get("packet_id")
        push = unacked.get(pid) if name in norm.PUSH_ACKS else None
        if push is not None:
            self.ack_of[frame.index] = push
            self.recorded_acks.add((push, str(name)))
            if name != "PUBREC":  # QoS 2: the PUBCOMP still to come acknowledges it too
                del unacked[pid]
        if push is not None or norm.is_closing(frame.summary):
            self.tail.append(frame.index)
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
    the plans of the recorded connections (built once, by `prepare`)."""

    def __init__(self, recording: Recording, ignore: Ignore = NO_IGNORE) -> None:
        self.recording = recording
        self.ignore = ignore
        self.plans: dict[int, Plan] = {}
        #: sessions past CONNECT whose recorded connection is not chosen yet
        self.unsettled: set[Any] = set()  # (the MQTT sessions)
        self.cause_of: dict[FrameRef, FrameRef] = {}
        self.waiting: dict[FrameRef, set[Waiter]] = {}
        publishes: list[tuple[int, Direction, int, FrameRef]] = []
        for rc in recording.conns:
            if rc.proto is not Proto.MQTT:
                continue
            decoder = MqttDecoder()
            for frame in rc.stream():
                if frame.summary.get("packet") not in ("CONNECT", "PUBLISH"):
                    continue  # only a CONNECT (protocol level) and PUBLISHes need decoding
                decoded = decoder.decode(frame.dir, frame.raw)
                if frame.summary.get("packet") == "PUBLISH" and decoded.body is not None:
                    what = hash((frame.summary.get("topic"), decoded.body.payload))
                    publishes.append((frame.seq, frame.dir, what, (rc.id, frame.index)))
        latest: dict[int, FrameRef] = {}
        for _seq, direction, what, ref in sorted(publishes, key=lambda p: p[0]):
            if direction is C2S:
                latest[what] = ref
            elif what in latest:
                self.cause_of[ref] = latest[what]

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


def rc_connect(plan: Plan) -> int:
    """Index of a plan's CONNECT frame (plans are only built for connections that have one)."""
    assert plan.connect is not None
    return plan.connect.index
