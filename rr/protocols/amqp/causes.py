"""Causality across AMQP connections: which recorded Basic.Publish produced each recorded
delivery (Basic.Deliver, Basic.GetOk), and a session's deliveries held until that publish has
matched live, on whichever connection it comes (as MQTT's `plan.Causes` gates a push).

The links are derived once, when the cassette opens (`Causes`, built by `prepare`): a delivery's
cause is a publish recorded before it with the same exchange, routing key and body; among
several alike (the same message published again), the n-th delivery of that message on one
consumer (connection, channel, consumer tag; Basic.Get on its channel) is caused by the n-th
publish, as a queue hands messages out in the order they came. A delivery with no recorded
publish (a message already in the queue when recording began) waits for nothing.

A Basic.Deliver also waits for the Basic.Consume that set up its consumer (the consumer tag its
Basic.ConsumeOk named, on its channel): a broker delivers nothing to a consumer that does not
exist yet. In the recording the delivery came after that consume; live, another channel's
thread may be further ahead than its own (channels are lanes), and a delivery released by that
thread's step would reach a channel that has no consumer yet.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols.base import FrameRef
from rrlab.rr.replay.recording import RecFrame, RecordedConn, Recording

from .codec import BODY_FRAME, frame_channel

C2S = Direction.C2S
#: server methods that hand a client a message some publish produced
DELIVERIES = frozenset({"Basic.Deliver", "Basic.GetOk"})

#: the first bytes of those methods' frames: type 1 (method), then class and method ids at 7
_DELIVERY_IDS = (b"\x00\x3c\x00\x3c", b"\x00\x3c\x00\x47")  # 60.60, 60.71
#: frame types of a message's content: header (2) and body (3)
CONTENT_FRAME_TYPES = (b"\x02", BODY_FRAME)
_NO_SUMMARY: dict[str, Any] = {}


def is_delivery(raw: bytes) -> bool:
    """A Basic.Deliver or Basic.GetOk frame, told by its bytes (its summary unread)."""
    return raw[:1] == b"\x01" and raw[7:11] in _DELIVERY_IDS


#: a reader of the recording's AMQP frames beside the causes' own (`Causes(watch=...)`)
Watch = Callable[[RecordedConn, RecFrame], None]


class Waiter(Protocol):
    """A session's gate holding deliveries back until their cause has matched."""

    def flush(self) -> None: ...


class _Content:
    """A content method being read (its header and body frames follow on its channel)."""

    __slots__ = (
        "ref",
        "exchange",
        "routing_key",
        "lane",
        "consumer",
        "redelivered",
        "size",
        "chunks",
    )

    def __init__(self, ref: FrameRef, args: dict[str, Any], lane: Any) -> None:
        self.ref = ref  # the method frame
        self.exchange = args.get("exchange")
        self.routing_key = args.get("routing_key")
        self.lane = lane  # None for a publish; the consumer for a delivery
        self.consumer: FrameRef | None = None  # a Basic.Deliver's Basic.Consume
        self.redelivered = bool(args.get("redelivered"))
        self.size: int | None = None
        self.chunks: list[bytes] = []

    def what(self) -> int:
        return hash((self.exchange, self.routing_key, b"".join(self.chunks)))


def _messages(recording: Recording, watch: Watch | None = None) -> list[tuple[int, _Content]]:
    """(seq of the method frame, message) of every publish and delivery, whole (body read);
    a Basic.Deliver knows the Basic.Consume of its consumer. `watch` sees every frame read."""
    out: list[tuple[int, _Content]] = []
    for rc in recording.conns:
        if rc.proto is not Proto.AMQP:
            continue
        reading: dict[tuple[Direction, int], tuple[int, _Content]] = {}
        #: channel -> its Basic.Consume frames not answered yet (a broker answers in order)
        consuming: dict[int, deque[int]] = defaultdict(deque)
        consumers: dict[tuple[int, Any], FrameRef] = {}  # (channel, tag) -> Basic.Consume
        for frame in rc.stream():
            if watch is not None:
                watch(rc, frame)
            if frame.raw[:1] == BODY_FRAME:  # told by its bytes, its summary unread
                s, kind, channel = _NO_SUMMARY, "body", frame_channel(frame.raw)
            else:
                s = frame.summary
                kind, channel = s.get("frame"), s.get("channel", 0)
            if kind == "method":
                method = s.get("method")
                client = frame.dir is C2S
                if (method == "Basic.Publish") if client else (method in DELIVERIES):
                    args = s.get("args") or {}
                    lane = None if client else (rc.id, channel, args.get("consumer_tag"))
                    message = _Content((rc.id, frame.index), args, lane)
                    if method == "Basic.Deliver":
                        message.consumer = consumers.get((channel, args.get("consumer_tag")))
                    reading[(frame.dir, channel)] = (frame.seq, message)
                else:
                    reading.pop((frame.dir, channel), None)
                    if method == "Basic.Consume" and client:
                        args = s.get("args") or {}
                        if not args.get("nowait"):
                            consuming[channel].append(frame.index)
                        elif args.get("consumer_tag"):  # no ConsumeOk comes: its own tag
                            consumers[(channel, args["consumer_tag"])] = (rc.id, frame.index)
                    elif method == "Basic.ConsumeOk" and consuming.get(channel):
                        tag = (s.get("args") or {}).get("consumer_tag")
                        consumers[(channel, tag)] = (rc.id, consuming[channel].popleft())
                continue
            started = reading.get((frame.dir, channel))
            if started is None:
                continue
            seq, message = started
            if kind == "header":
                message.size = int(s.get("body_size") or 0)
            elif kind == "body" and message.size is not None:
                message.chunks.append(frame.raw[7:-1])
            else:
                continue
            if message.size is not None and sum(map(len, message.chunks)) >= message.size:
                del reading[(frame.dir, channel)]
                if message.lane is None:  # a publish is known by the frame that completes it
                    message.ref = (rc.id, frame.index)  # (a replay step's trigger)
                out.append((seq, message))
    out.sort(key=lambda pair: pair[0])
    return out


class Causes:
    """Recorded delivery -> the recorded publish that produced it, and the gates waiting for a
    publish to match live. Shared by every AMQP session of a run."""

    def __init__(self, recording: Recording, watch: Watch | None = None) -> None:
        """`watch`: called with every recorded AMQP frame this reads (connection, frame), in
        order: whatever else needs the whole recording at open reads it in the same pass."""
        self.recording = recording
        self.cause_of: dict[FrameRef, FrameRef] = {}
        #: Basic.Deliver -> the Basic.Consume that set up its consumer
        self.consumer_of: dict[FrameRef, FrameRef] = {}
        self.waiting: dict[FrameRef, set[Waiter]] = {}
        published: dict[int, list[FrameRef]] = defaultdict(list)
        handed: dict[tuple[Any, int], int] = defaultdict(int)  # (consumer, message) -> n so far
        for _seq, message in _messages(recording, watch):
            what = message.what()
            if message.consumer is not None:
                self.consumer_of[message.ref] = message.consumer
            if message.lane is None:
                published[what].append(message.ref)
                continue
            alike = published.get(what)
            if not alike:
                continue  # in the queue before the recording began: waits for nothing
            if message.redelivered:
                self.cause_of[message.ref] = alike[-1]
                continue
            n = handed[(message.lane, what)]
            handed[(message.lane, what)] = n + 1
            self.cause_of[message.ref] = alike[min(n, len(alike) - 1)]

    def pending(self, ref: FrameRef) -> FrameRef | None:
        """What delivery `ref` still waits for: its cause while no live publish has matched
        it, then its consumer's Basic.Consume while that has not matched live; else None."""
        for needed in (self.cause_of.get(ref), self.consumer_of.get(ref)):
            if needed is not None and needed[1] not in self.recording.conn(needed[0]).used:
                return needed
        return None

    def wait(self, cause: FrameRef, gate: Waiter) -> None:
        self.waiting.setdefault(cause, set()).add(gate)

    def matched(self, ref: FrameRef) -> None:
        """A recorded Basic.Publish or Basic.Consume matched live (`ref`: the frame that
        completed it, its replay step's trigger): the deliveries waiting for it may go now."""
        for gate in self.waiting.pop(ref, ()):
            gate.flush()


def _in_recorded_order(
    queue: deque[tuple[int, int, RecFrame, RecFrame | None]],
    item: tuple[int, int, RecFrame, RecFrame | None],
) -> None:
    """Queue a frame behind its channel's held frames, or before those of its recorded
    connection recorded after it: a delivery released early (by another channel's step) and
    held for its consumer goes out after the Basic.ConsumeOk its own channel's step releases
    later, as recorded. It takes the hand-over order of the frame it goes before (what goes
    out together is sent in hand-over order, stably)."""
    _order, conn, frame, _after = item
    pos = len(queue)
    while pos and queue[pos - 1][1] == conn and queue[pos - 1][2].index > frame.index:
        pos -= 1
    if pos == len(queue):
        queue.append(item)
    else:
        queue.insert(pos, (queue[pos][0], *item[1:]))


class DeliveryGate:
    """One live session's recorded server frames on their way out: each channel's in recorded
    order, held from the first delivery whose publish (or its consumer's Basic.Consume) has not
    matched live until it has. The channels are independent: a delivery held on one never
    holds back another channel's frames (an answer the client waits for before it publishes
    what the delivery waits for)."""

    def __init__(self, causes: Causes, send: Callable[[list[RecFrame], RecFrame | None], None]):
        self.causes = causes
        self._send = send  # (frames, the client frame that released them)
        #: per channel: (order handed over, recorded connection, frame, released by)
        self._held: dict[int, deque[tuple[int, int, RecFrame, RecFrame | None]]] = {}
        self._order = 0

    @property
    def holding(self) -> int:
        return sum(len(queue) for queue in self._held.values())

    def release(
        self,
        conn: int,
        frames: Iterable[RecFrame],
        after: RecFrame | None,
        cancelled: tuple[int, str | None] | None = None,
    ) -> None:
        """Frames of recorded connection `conn` released by the client frame `after`. When
        that frame cancelled a consumer (`cancelled`: channel, recorded consumer tag; None:
        every consumer of the channel, which it closed), the
        deliveries to it still waiting for their publish are dropped: live, the publish comes
        after the cancel, and a broker delivers nothing to a cancelled consumer."""
        if not self._held and cancelled is None:  # the common case: nothing held, go at once
            frames = list(frames)
            if not any(self._waits(conn, frame) for frame in frames):
                if frames:  # (what `flush` would send: all of them, in order, as one run)
                    self._send(frames, after)
                return
        for frame in frames:
            channel = frame_channel(frame.raw)  # (no summary parsed)
            _in_recorded_order(
                self._held.setdefault(channel, deque()), (self._order, conn, frame, after)
            )
            self._order += 1
        if cancelled is not None:
            self._drop(*cancelled)
        self.flush()

    def _waits(self, conn: int, frame: RecFrame) -> bool:
        """A delivery whose publish (or consumer's Basic.Consume) has not matched live yet."""
        return is_delivery(frame.raw) and self.causes.pending((conn, frame.index)) is not None

    def _drop(self, channel: int, consumer_tag: str | None) -> None:
        queue = self._held.get(channel)
        if not queue:
            return
        kept: deque[tuple[int, int, RecFrame, RecFrame | None]] = deque()
        dropping = False
        for item in queue:
            _order, conn, frame, _after = item
            if is_delivery(frame.raw):
                args = frame.summary.get("args") or {}
                dropping = (
                    consumer_tag in (None, args.get("consumer_tag"))
                    and self.causes.pending((conn, frame.index)) is not None
                )
            elif frame.raw[:1] not in CONTENT_FRAME_TYPES:
                dropping = False
            if not dropping:
                kept.append(item)
        self._held[channel] = kept

    def flush(self) -> None:
        out: list[tuple[int, RecFrame, RecFrame | None]] = []
        for channel in list(self._held):
            queue = self._held[channel]
            while queue:
                order, conn, frame, after = queue[0]
                if is_delivery(frame.raw):
                    cause = self.causes.pending((conn, frame.index))
                    if cause is not None:
                        self.causes.wait(cause, self)
                        break
                out.append((order, frame, after))
                queue.popleft()
            if not queue:
                del self._held[channel]
        if len(self._held) > 1 or len(out) > 1:
            out.sort(key=lambda item: item[0])  # recorded order among what goes now
        run: list[RecFrame] = []
        run_after: RecFrame | None = None
        for _order, frame, after in out:
            if run and after is not run_after:
                self._send(run, run_after)
                run = []
            run_after = after
            run.append(frame)
        if run:
            self._send(run, run_after)
