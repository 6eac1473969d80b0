"""AMQP 0-9-1 replay: a live client connection served from a recorded one.

The protocol header is answered with the recorded broker's Connection.Start; the live
connection binds on its normalized Connection.StartOk (and may move to another recorded
connection while everything served so far is the same bytes). Each matched client message
(a method, with its content for Basic.Publish) releases the server frames recorded after it up
to the next client message. Heartbeats are ignored from the client and synthesized at the
negotiated interval. Values the client chose (a consumer tag, a connection name, a reply queue
named by a UUID, a correlation id) are bindings (`rr.replay.bindings`): a live message that
differs from its recorded counterpart only in identifier-shaped or clock values matches it, and
the live values are stamped into every frame served afterwards (`stamp`). A miss closes the
connection with Connection.Close 541 naming the mismatch. A delivery waits for the live publish
that produced it in the recording, on any connection (`causes`); in transcript order, acks match
by delivery tag in any order (`lanes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pamqp.commands
import pamqp.frame

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.replay.recording import RecFrame, RecordedConn
from rrlab.rr.replay.session import MatchMode, Pace, ReplayContext
from rrlab.rr.replay.session import Session as BaseSession

from . import lanes, pool
from . import normalize as norm
from .causes import Causes, DeliveryGate
from .channels import CHANNEL_OPEN, Channels
from .clocked import Clocked, Published, PublishReader, recorded_publishes
from .codec import AmqpDecoder, AmqpFramer, frame_channel
from .stamp import stamp_frames
from .transcript import Step, Transcript, reset_to, same_way

HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"
INTERNAL_ERROR = 541
#: How long a missed connection waits for the client's Connection.CloseOk.
CLOSE_GRACE = 1.0
#: A live connection may move to another recorded one only within its first steps.
REBIND_WINDOW = 64


def is_liveness(summary: dict[str, Any]) -> bool:
    return norm.is_liveness(summary)


def is_closing(summary: dict[str, Any]) -> bool:
    return norm.is_closing(summary)


@dataclass(slots=True)
class Shared:
    """AMQP state of one run: recorded connections as transcripts, live sessions that bound,
    which publish produced which delivery (`causes`: built by `prepare`, else on first use)."""

    transcripts: dict[int, Transcript] = field(default_factory=dict)
    sessions: dict[int, Session] = field(default_factory=dict)
    causes: Causes | None = None
    clocked: Clocked | None = None
    #: per recorded connection, the frames completing its clock-driven publishes (not steps)
    clock_driven: dict[int, frozenset[int]] = field(default_factory=dict)


def prepare(ctx: ReplayContext) -> None:
    """Publish -> delivery links and clock-driven publishes of the whole recording, derived
    once before listening, in one read of the recording: the causes' pass hands each frame to
    the publishes' reader too (each read its own: ~0.45 s of CPU more for 100k frames, paid
    before the first client is answered)."""
    shared = ctx.shared.setdefault(Proto.AMQP, Shared())
    publishes: list[Published] = []
    readers: dict[int, PublishReader] = {}

    def watch(rc: RecordedConn, frame: RecFrame) -> None:
        reader = readers.get(rc.id)
        if reader is None:
            reader = readers[rc.id] = PublishReader(rc.id)
        published = reader.feed(frame)
        if published is not None:
            publishes.append(published)

    shared.causes = Causes(ctx.recording, watch)
    _prepare_clocked(ctx, shared, publishes)


def _prepare_clocked(
    ctx: ReplayContext, shared: Shared, publishes: Iterable[Published] | None = None
) -> Clocked:
    """Publishes on a clock (`clocked`): never unused, no step of a transcript, and the
    deliveries they caused wait for nothing. `publishes`: the recording's, read already
    (else read here)."""
    if publishes is None:
        publishes = recorded_publishes(ctx.recording)
    clocked = shared.clocked = Clocked.of(publishes, ctx.bindings.clock)
    refs: dict[int, set[int]] = {}
    for conn, indexes in clocked.frames():
        ctx.recording.conn(conn).used.update(indexes)
        refs.setdefault(conn, set()).add(indexes[-1])
    shared.clock_driven = {conn: frozenset(ends) for conn, ends in refs.items()}
    if shared.causes is not None and clocked:
        causes = shared.causes
        for delivery, cause in list(causes.cause_of.items()):
            if cause[1] in refs.get(cause[0], ()):
                del causes.cause_of[delivery]
    return clocked


class Session(BaseSession):
    proto = Proto.AMQP
    framer_cls = AmqpFramer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decoder = AmqpDecoder()
        self.assembler = norm.Assembler()
        self.transcript: Transcript | None = None
        self.greeter: Transcript | None = None  # whose Connection.Start answered the header
        #: matched steps in live order, for rebinding; None once past REBIND_WINDOW and no
        #: other recorded connection goes the same way (`pool`; then the transcript lets go
        #: of used steps)
        self.history: list[Step] | None = []
        self.alike: pool.Alike | None = None  # past REBIND_WINDOW: who still goes our way
        self.empty_answers: dict[bytes, bytes] = {}  # Basic.Get key -> recorded GetEmpty
        self.channels = Channels()  # live channel numbers bound to recorded ones
        self.cancelled: set[bytes] = set()  # keys of the Basic.Cancel steps matched
        #: recorded channels the live client closed (nothing more goes out on them)
        self.channels_closed: set[int] = set()
        self.heartbeat = 0
        self.closing = False
        self._wire_held: list[bytes] = []  # frames matching the next step's bytes so far
        self._wire_at = 0
        self._wire_step: Step | None = None
        #: server frames on their way out, deliveries held until their publish matched live
        self.gate = DeliveryGate(self._causes(), self._send_frames)

    @property
    def opts(self) -> norm.Options:
        o = self.ctx.options
        return norm.Options(self.ctx.bindings.to_rec_map, o.ignore_fields, o.ignore_headers)

    # -- frames --------------------------------------------------------------------------------

    def on_frame(self, raw: bytes) -> None:
        if raw[:1] == HEARTBEAT_FRAME[:1] and not self.closing:
            self.report.synthesized(self.proto, "heartbeat")
            return
        if self.transcript is not None and not self.closing:
            if self.channels.identity and not self.ctx.bindings.crossed_in(raw):
                if self._by_wire(raw):
                    return
            elif self._wire_held and self._flush_wire():
                return
        self._decoded(raw)

    def read_ahead(self) -> None:
        """The next recorded step read (with its replies) before the client sends it: the read
        is off the path of a client waiting for its answer (a publisher confirm)."""
        if self.transcript is not None and not self.closed:
            self.transcript.step(self.transcript.next)

    def _flush_wire(self) -> bool:
        """Decode the frames `_by_wire` held back; True if that ended the connection."""
        held, self._wire_held, self._wire_at, self._wire_step = self._wire_held, [], 0, None
        for frame in held:
            self._decoded(frame)
        return self.closed or self.closing

    def _by_wire(self, raw: bytes) -> bool:
        """The common case, cheaply: frames that are exactly the bytes of the next recorded
        message match it without decoding (that step is the earliest unused one, so lookup
        would pick it too). False: decode `raw` (after any frames held back)."""
        assert self.transcript is not None
        step = self.transcript.upcoming()
        if step is None:
            return False
        at = self._wire_at
        if step.message.wire[at : at + len(raw)] != raw or self._wire_step is not step and at:
            return self._flush_wire()
        self._wire_held.append(raw)
        self._wire_at = at + len(raw)
        self._wire_step = step
        if self._wire_at == len(step.message.wire):
            self._wire_held, self._wire_at, self._wire_step = [], 0, None
            self._matched(step.message, step)
            if step.message.name == "Connection.Close":
                self._close_after(step)
        return True

    def _decoded(self, raw: bytes) -> None:
        summary = self.decoder.decode(Direction.C2S, raw).summary
        if self.closing:
            if summary.get("method") == "Connection.CloseOk":
                self.close()
            return
        message = self.assembler.feed(summary, raw)
        if message is None:
            return
        if self.transcript is None:
            self._opening(message)
        else:
            self._serve(message)

    def _opening(self, message: norm.Message) -> None:
        if message.name == norm.PROTOCOL_HEADER and self.greeter is None:
            candidates = self._candidates()
            if not candidates:
                self._refuse(message, "no recorded AMQP connection left to serve")
                return
            greeter = self.greeter = self._transcript(candidates[0])
            first = greeter.step(0)
            if first is None or greeter.key(first) != norm.match_key(message, self.opts):
                self._miss_step(message, first, "protocol header differs from the recording")
                return
            self.report.matched(self.proto, norm.PROTOCOL_HEADER)
            self._send_replies(first)
            return
        if message.name != "Connection.StartOk" or self.greeter is None:
            self._miss_step(message, None, f"{message.name} before the connection handshake")
            return
        key = norm.match_key(message, self.opts)
        greeter = self.greeter

        def fits(rc: RecordedConn) -> bool:
            tr = self._transcript(rc)
            header, start_ok, first = tr.step(0), tr.step(1), greeter.step(0)
            return (
                header is not None
                and start_ok is not None
                and first is not None
                and tr.key(start_ok) == key
                and tr.key(header) == greeter.key(first)
            )

        rc = self.ctx.recording.claim(
            self.proto, self.listener.recorded_port, self.link.live_id, fits
        )
        if rc is None:
            closest = greeter.step(1)
            self._miss_step(message, closest, "no recorded connection opens like this one")
            return
        self.bound = rc
        self._shared().sessions[self.link.live_id] = self
        self.report.connection(self.proto, True)
        self.transcript = self._transcript(rc)
        header, start_ok = self.transcript.head(2)
        for step in (header, start_ok):
            self.transcript.use(step)
            self._remember(step)
        self._bind_whole(start_ok.message, message, "client_properties", "connection_name")
        self.report.matched(self.proto, "Connection.StartOk")
        self._send_replies(start_ok)

    def _serve(self, message: norm.Message) -> None:
        assert self.transcript is not None
        if message.name == CHANNEL_OPEN and message.channel not in self.channels.fresh:
            self._open_channel(message.channel)
        message = replace(message, channel=self.channels.recorded(message.channel))
        if self.ctx.bindings:
            message = _to_recorded(message, self.ctx.bindings)
        if message.name == "Basic.Publish" and self._clocked().accepts(
            message.args.get("exchange"), message.args.get("routing_key"), message.body
        ):  # a heartbeat or status event: liveness, compared for shape only
            self._count_matched(message)
            return
        upcoming = self.transcript.upcoming()
        if (
            upcoming is not None
            and upcoming.message.wire == message.wire
            and self.channels.identity
            and not self.ctx.bindings.crossed_in(message.wire)
        ):
            # the same bytes as the next recorded message (the earliest unused one, so lookup
            # would pick it too): no normalizing
            self._matched(message, upcoming)
            if message.name == "Connection.Close":
                self._close_after(upcoming)
            return
        key = norm.match_key(message, self.opts)
        steps = self._find(self.transcript, message, key)
        if steps is None and self._rebind(message, key):
            steps = self._find(self.transcript, message, key)
        if steps is None and self._poll_again(message, key):
            return
        if steps is None:
            steps = self._unified(message, key)
        if steps is None and not self.closing:
            message, steps = self._rechannel(message)
        if steps is None and not self.closing and self._borrowed(message, key):
            return
        if steps is None and message.name == "Basic.Cancel" and key in self.cancelled:
            self._cancel_again(message)
            return
        if self.closing:  # a binding conflict
            return
        if steps is None and norm.is_closing({"method": message.name, "args": message.args}):
            self._close_unrecorded(message)
            return
        if steps is None:
            self._miss_step(message, self._closest(message, key), self._why(message))
            return
        if not steps:  # absorbed by a recorded message still to come (see _covered_acks)
            self._count_matched(message)
            return
        for step in steps:
            self._matched(message, step)
        if message.name == "Connection.Close":
            self._close_after(steps[-1])

    def _find(self, tr: Transcript, message: norm.Message, key: bytes) -> list[Step] | None:
        if self.ctx.options.match is MatchMode.TRANSCRIPT:
            step = lanes.transcript_step(tr, message, key)  # acks by delivery tag, any order
            return [step] if step is not None else None
        step = tr.earliest(key)
        if step is not None and message.name == "Basic.Get" and self._publish_before(tr, step):
            step = None  # its answer depends on messages not yet published: poll again
        if step is not None:
            return [step]
        return self._covered_acks(tr, message)

    @staticmethod
    def _publish_before(tr: Transcript, step: Step) -> bool:
        for earlier in tr.unused():
            if earlier.pos >= step.pos:
                return False
            if earlier.message.name == "Basic.Publish":
                return True
        return False

    def _covered_acks(self, tr: Transcript, message: norm.Message) -> list[Step] | None:
        """Lookup, a client that batches its acks differently: a live Basic.Ack with
        multiple=True stands for the unused recorded acks of its channel up to its delivery
        tag; a single live ack inside a recorded multiple=True ack is absorbed by it ([]), and
        the live ack of its own tag consumes it."""
        if message.name != "Basic.Ack":
            return None
        upto = int(message.args.get("delivery_tag", 0))
        multiple = bool(message.args.get("multiple"))
        covered = []
        for step in tr.unused():
            if step.message.name != "Basic.Ack" or step.message.channel != message.channel:
                continue
            tag = int(step.message.args.get("delivery_tag", 0))
            if not multiple and step.message.args.get("multiple") and tag >= upto:
                return [step] if tag == upto else []
            if tag > upto or not multiple:
                break  # a channel's delivery tags only grow
            covered.append(step)
        return covered or None

    def _poll_again(self, message: norm.Message, key: bytes) -> bool:
        """A Basic.Get the recording has no unused match for, where the recording answered the
        same Basic.Get with Basic.GetEmpty: the queue is still empty, answer that again (a
        client that polls more often than recorded). Synthesized, consumes nothing."""
        assert self.transcript is not None
        if message.name != "Basic.Get":
            return False
        tr = self.transcript
        answer = self.empty_answers.get(key)
        if answer is None:  # a recorded empty answer further on (read so far)
            for step in tr.steps:
                if (
                    step is not None
                    and step.message.name == "Basic.Get"
                    and _all_get_empty(step.replies)
                    and tr.key(step) == key
                ):
                    answer = b"".join(f.raw for f in step.replies)
                    break
        if answer is None:
            return False
        self.send(self.channels.restamp(answer))
        self.report.synthesized(self.proto, "Basic.Get")
        return True

    def _remember(self, step: Step) -> None:
        assert self.transcript is not None
        if self.history is not None:
            self.history.append(step)
            if len(self.history) > REBIND_WINDOW and not self._pool_goes_on(step):
                self.history = None
        if self.history is None:
            self.transcript.compact()
        if step.message.name == "Basic.Get" and _all_get_empty(step.replies):
            self.empty_answers[self.transcript.key(step)] = b"".join(f.raw for f in step.replies)

    def _matched(self, message: norm.Message, step: Step) -> None:
        assert self.transcript is not None
        self.transcript.use(step)
        self._remember(step)
        live_channel = self.channels.live(step.message.channel)
        if step.message.name == CHANNEL_OPEN:
            self.channels.bind(live_channel, step.message.channel)
            self.channels.fresh.add(live_channel)
        else:
            self.channels.fresh.discard(live_channel)
        if message.name == "Basic.Publish":  # deliveries waiting for it (any connection) go
            self.gate.causes.matched((self.transcript.rc.id, step.trigger.index))
        if message.name == "Basic.Consume":
            self._bind_whole(step.message, message, "consumer_tag")
        if message.name == "Basic.Cancel":
            self.cancelled.add(self.transcript.key(step))
        if message.name == "Connection.TuneOk":
            self._start_heartbeats(int(message.args.get("heartbeat") or 0))
        self._count_matched(message)
        lanes.pull_answer(self.transcript, step)
        if step.message.name == CHANNEL_OPEN:
            self.channels_closed.discard(step.message.channel)
        self._send_replies(step)
        if message.name == "Basic.Consume":  # deliveries to its consumer go (after ConsumeOk)
            self.gate.causes.matched((self.transcript.rc.id, step.trigger.index))
        if step.message.name == "Channel.Close":
            self.channels_closed.add(step.message.channel)

    def _count_matched(self, message: norm.Message) -> None:
        """Per frame, under the labels the unused count uses (content: header, body)."""
        self.report.matched(self.proto, message.name)
        if message.properties is not None:
            self.report.matched(self.proto, "header")
            if message.frames > 2:
                self.report.matched(self.proto, "body", message.frames - 2)

    # -- channels ------------------------------------------------------------------------------

    def _open_channel(self, live: int) -> None:
        """A live Channel.Open: bound to the recorded channel of its number, unless another
        live channel holds that one, then to the first recorded channel opened and free (a
        channel opened again stays where it was)."""
        assert self.transcript is not None
        channels = self.channels
        if channels.bound(live):  # reopened: where it was
            return
        if channels.holder(live) is None:
            channels.bind(live, live)
            return
        for step in self.transcript.unused():
            if step.message.name == CHANNEL_OPEN and channels.holder(step.message.channel) is None:
                channels.bind(live, step.message.channel)
                return

    def _rechannel(self, message: norm.Message) -> tuple[norm.Message, list[Step] | None]:
        """A fresh live channel's first message that its recorded channel does not send next:
        the recorded channel (opened, free or held by a live channel as fresh) whose next
        message it is. The live channel moves there; a fresh holder takes its old place."""
        assert self.transcript is not None
        tr, channels = self.transcript, self.channels
        live = channels.live(message.channel)
        if live not in channels.fresh or message.name == CHANNEL_OPEN:
            return message, None
        opened = {s.message.channel: s for s in tr.unused() if s.message.name == CHANNEL_OPEN}
        mine = message.channel
        mine_open = next(
            (s for s in tr.steps if s is not None and s.message.name == CHANNEL_OPEN
             and s.message.channel == mine and tr.is_used(s.pos)),
            None,
        )  # fmt: skip
        for other in sorted({*opened, *map(channels.recorded, channels.fresh)}):
            holder = channels.holder(other)
            if other == mine or (holder is not None and holder not in channels.fresh):
                continue
            if holder is None:  # its Channel.Open counts as ours, while we look
                if other not in opened or mine_open is None:
                    continue
                if not tr.exchange(mine_open, opened[other]):
                    continue
            moved = replace(message, channel=other)
            key = norm.match_key(moved, self.opts)
            steps = self._find(tr, moved, key) or self._unified(moved, key)
            if steps:
                channels.swap(live, other)
                self.report.notes.append(
                    f"amqp live conn {self.link.live_id}: live channel {live} is recorded "
                    f"channel {other} (channels opened in another order than recorded)"
                )
                return moved, steps
            if holder is None:
                tr.exchange(opened[other], mine_open)
            if self.closing:
                return moved, None
        return message, None

    def _pool(self) -> Iterator[Transcript]:
        """The other recorded connections that set up like ours (none once ours let go of
        its start)."""
        mine = self.transcript
        assert mine is not None
        opened = _set_up(mine)
        if not opened:
            return
        for rc in self._candidates_all():
            tr = self._transcript(rc)
            if tr is mine or tr.step(0) is None or _set_up(tr) != opened:
                continue
            if same_way(mine, tr, opened):
                yield tr

    def _borrowed(self, message: norm.Message, key: bytes) -> bool:
        """A pool: the message is the next one of another recorded connection that opened like
        ours (which child of a worker publishes which result, and how many, is the
        scheduler's). That step is used there, its replies come here, and the deliveries its
        publish caused go wherever they wait."""
        mine = self.transcript
        assert mine is not None
        opened = _set_up(mine)
        for tr in self._pool():
            # its unused messages of this method and channel past the set-up (which that
            # connection may not have done live yet: the child that connected later), in any
            # order: which member sent which, and when, is the scheduler's
            candidates = [
                s
                for s in tr.unused()
                if s.pos >= opened
                and s.message.name == message.name
                and s.message.channel == message.channel
            ]
            same = next((s for s in candidates if tr.key(s) == key), None)
            found = [same] if same is not None else self._unified(message, key, tr, candidates)
            if self.closing:  # a binding conflict
                return True
            if not found:
                continue
            step = found[0]
            tr.use(step)
            rc = tr.rc
            if message.name == "Basic.Publish":
                self.gate.causes.matched((rc.id, step.trigger.index))
            self._count_matched(message)
            self.gate.release(rc.id, step.replies, step.trigger)
            if message.name == "Basic.Consume":  # its deliveries go (after its ConsumeOk)
                self.gate.causes.matched((rc.id, step.trigger.index))
            self.report.notes.append(
                f"amqp live conn {self.link.live_id}: {message.name} recorded on conn {rc.id}, "
                "a connection that opened alike (a pool)"
            )
            return True
        return False

    # -- answering -----------------------------------------------------------------------------

    def _send_replies(self, step: Step) -> None:
        conn = self.bound.id if self.bound is not None else -1  # (only the greeting unbound)
        cancelled: tuple[int, str | None] | None = None
        if step.message.name == "Basic.Cancel":
            cancelled = (step.message.channel, str(step.message.args.get("consumer_tag")))
        elif step.message.name == "Channel.Close":  # every consumer on it
            cancelled = (step.message.channel, None)
        self.gate.release(conn, step.replies, step.trigger, cancelled)

    def _send_frames(self, frames: list[RecFrame], after: RecFrame | None) -> None:
        """The frames the gate released, with the live values of every binding stamped in (at
        release: a binding made while a delivery waited is in it)."""
        bindings, channels = self.ctx.bindings, self.channels
        if self.channels_closed:  # a delivery released after its channel closed: a broker
            frames = [f for f in frames if _open_on(f.raw, self.channels_closed)]  # sends none
        raws = [f.raw for f in frames]
        if bindings:
            raws = stamp_frames(raws, bindings)
        if not channels.identity:
            raws = [channels.restamp(raw) for raw in raws]
        self.send_recorded(zip(frames, raws, strict=True), after=after)

    # -- bindings ------------------------------------------------------------------------------

    def _bind_whole(self, recorded: norm.Message, live: norm.Message, *path: str) -> None:
        """A value the client picks by position (a consumer tag, a connection name), whatever
        its shape: bound recorded -> live (a conflict leaves the table as it was)."""
        rec_value: Any = recorded.args
        live_value: Any = live.args
        for name in path:
            rec_value = rec_value.get(name) if isinstance(rec_value, dict) else None
            live_value = live_value.get(name) if isinstance(live_value, dict) else None
        if isinstance(rec_value, str) and isinstance(live_value, str):
            where = f"amqp live conn {self.link.live_id} {live.name} {'.'.join(path)}"
            self.ctx.bindings.bind([(rec_value, self.ctx.bindings.to_live(live_value))], where)

    def _unified(
        self,
        message: norm.Message,
        key: bytes,
        tr: Transcript | None = None,
        candidates: list[Step] | None = None,
    ) -> list[Step] | None:
        """The recorded step the live message equals up to identifier-shaped and clock values
        (transcript: the next one of its channel; lookup: the earliest such unused one of its
        method and channel, not one `_find` declined), its values bound; in our recorded
        connection or `tr`. A binding conflict is a miss naming both values."""
        tr = tr or self.transcript
        assert tr is not None
        found = self._unifiable(tr, message, key, candidates)
        if found is None:
            return None
        step, unified = found
        where = f"amqp live conn {self.link.live_id} {message.name}"
        conflict = self.ctx.bindings.bind(unified.pairs, where)
        if conflict is not None:
            self._miss_step(message, step, conflict.line())
            return None
        return [step]

    def _unifiable(
        self,
        tr: Transcript,
        message: norm.Message,
        key: bytes,
        candidates: list[Step] | None = None,
    ) -> tuple[Step, Any] | None:
        """The step of `tr` (of `candidates`, if given) the live message equals up to values
        that would bind, and how."""
        if candidates is None and self.ctx.options.match is MatchMode.TRANSCRIPT:
            upcoming = lanes.channel_next(tr, message.channel)
            candidates = [upcoming] if upcoming is not None else []
        elif candidates is None:
            candidates = [
                s
                for s in tr.unused()
                if s.message.name == message.name and s.message.channel == message.channel
            ]
        live = norm.normalized(message, self.opts)
        for step in candidates:
            if tr.key(step) == key:  # the same message, refused for a reason of its own
                continue
            recorded = norm.normalized(step.message, self.opts)
            unified = self.ctx.bindings.unify(recorded, self._measured(recorded, live))
            if unified is not None:
                return step, unified
        return None

    def _measured(self, recorded: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
        """`live` with a status event's body set to the recorded one when they differ only in
        numbers and clock values (a pid, a load average: `clocked`)."""
        args = recorded.get("args") or {}
        if recorded.get("method") != "Basic.Publish" or live.get("args") != args:
            return live
        body = recorded.get("body")
        exchange, routing_key = args.get("exchange"), args.get("routing_key")
        live_body = self.ctx.bindings.aligned(body, live.get("body"))  # its host name, ids
        if self._clocked().measured(exchange, routing_key, body, live_body):
            return {**live, "body": body}
        return live

    def _start_heartbeats(self, interval: int) -> None:
        """Server heartbeats at half the negotiated interval (as RabbitMQ), never recorded."""
        self.heartbeat = interval
        if interval <= 0:
            return
        period = interval / 2

        def beat() -> None:
            if self.closed or self.closing:
                return
            self.send(HEARTBEAT_FRAME)
            self.report.synthesized(self.proto, "heartbeat")
            self.call_later(period, beat)

        self.call_later(period, beat)

    def _cancel_again(self, message: norm.Message) -> None:
        """A consumer cancelled again (a framework's shutdown may cancel twice): a broker
        answers CancelOk, as for any consumer it does not know. Synthesized, consumes nothing."""
        self.report.synthesized(self.proto, message.name)
        if message.args.get("nowait"):
            return
        tag = self.ctx.bindings.to_live(str(message.args.get("consumer_tag") or ""))
        answer = pamqp.commands.Basic.CancelOk(consumer_tag=tag)
        self.send(pamqp.frame.marshal(answer, self.channels.live(message.channel)))

    def _close_unrecorded(self, message: norm.Message) -> None:
        """A graceful close the recording lacks (its client closed otherwise, or the recording
        ended first) gets what a broker answers: Channel.CloseOk, or Connection.CloseOk and the
        socket closed; a client's CloseOk needs no answer."""
        self.report.synthesized(self.proto, message.name)
        if message.name == "Channel.Close":
            live_channel = self.channels.live(message.channel)
            self.send(pamqp.frame.marshal(pamqp.commands.Channel.CloseOk(), live_channel))
        elif message.name == "Connection.Close":
            self.send(pamqp.frame.marshal(pamqp.commands.Connection.CloseOk(), 0))
            self.close()
        elif message.name == "Connection.CloseOk":
            self.close()

    def _close_after(self, step: Step) -> None:
        """The broker closes the socket once Connection.CloseOk is out."""
        delay = 0.0
        if self.ctx.options.pace is Pace.RECORDED and step.replies:
            delay = max(0.0, (step.replies[-1].t_us - step.trigger.t_us) / 1e6)
        if delay <= 0:
            self.close()
        else:
            self.call_later(delay + 0.01, self.close)

    # -- binding -------------------------------------------------------------------------------

    def _candidates(self) -> list[RecordedConn]:
        rec = self.ctx.recording
        return rec.candidates(self.proto, self.listener.recorded_port) or rec.candidates(
            self.proto, None
        )

    def _shared(self) -> Shared:
        return self.ctx.shared.setdefault(self.proto, Shared())

    def _causes(self) -> Causes:
        shared = self._shared()
        if shared.causes is None:
            shared.causes = Causes(self.ctx.recording)
        return shared.causes

    def _clocked(self) -> Clocked:
        shared = self._shared()
        if shared.clocked is None:
            self._causes()
            _prepare_clocked(self.ctx, shared)
        assert shared.clocked is not None
        return shared.clocked

    def _transcript(self, rc: RecordedConn) -> Transcript:
        shared = self._shared()
        tr = shared.transcripts.get(rc.id)
        if tr is None or tr.rc is not rc:
            opts = norm.Options(
                ignore_fields=self.ctx.options.ignore_fields,
                ignore_headers=self.ctx.options.ignore_headers,
            )
            self._clocked()
            skip = shared.clock_driven.get(rc.id, frozenset())
            tr = shared.transcripts[rc.id] = Transcript(rc, opts, skip)
        return tr

    def _movable(self) -> int | None:
        """How many steps this session has matched, if it may still move to another recorded
        connection: within the rebind window, recorded order, not inside a message."""
        if self.history is None or self.closed or self.closing or self._wire_held:
            return None
        if [s.pos for s in self.history] != list(range(len(self.history))):
            return None
        return len(self.history)

    def _rebind(self, message: norm.Message, key: bytes) -> bool:
        """Move to another recorded connection that went the same way so far (same keys, same
        served bytes) and goes on like the live one: connections opened in another order than
        recorded, whose openings look alike. A connection claimed by another live one that can
        take ours in exchange (it went only as far as both recordings agree) is swapped."""
        assert self.transcript is not None and self.bound is not None
        old, mine = self.transcript, self._movable()
        if mine is None or old.next != mine or old.done:
            return False
        shared = self._shared()
        pool = sorted(
            (c for c in self._candidates_all() if c is not old.rc),
            key=lambda c: c.claimed_by is not None,  # unclaimed first, recorded order kept
        )
        for rc in pool:
            other = shared.sessions.get(rc.claimed_by) if rc.claimed_by is not None else None
            tr = self._transcript(rc)
            theirs = 0
            if other is not None:
                moves = other._movable()
                if moves is None or other.transcript is not tr or tr.next != moves or tr.done:
                    continue
                theirs = moves
                if not same_way(old, tr, theirs):  # it could not take ours
                    continue
            elif rc.claimed_by is not None or tr.next or tr.done:
                continue
            if not same_way(old, tr, mine):
                continue
            reset_to(tr, mine)
            if self._find(tr, message, key) is None and not self._unifiable(tr, message, key):
                reset_to(tr, theirs)
                continue
            reset_to(old, theirs)
            if other is not None:
                other.bound, other.transcript, other.history = old.rc, old, old.head(theirs)
                old.rc.claimed_by = other.link.live_id
            else:
                old.rc.claimed_by = None
            rc.claimed_by = self.link.live_id
            self.bound, self.transcript, self.history = rc, tr, tr.head(mine)
            return True
        return False

    def _pool_goes_on(self, step: Step) -> bool:
        """Past the rebind window: whether another recorded connection still went the same
        way as ours (a pool member keeps its history to move, `pool.Alike`)."""
        assert self.transcript is not None and self.history is not None
        if step.pos != len(self.history) - 1 or len(self.history) > pool.POOL_WINDOW:
            return False  # matched out of recorded order: it could not move anyway
        if self.alike is None or self.alike.mine is not self.transcript:
            mine = self.transcript
            others = [self._transcript(rc) for rc in self._candidates_all() if rc is not mine.rc]
            self.alike = pool.Alike(mine, others, step.pos)
        return self.alike.goes_on(step)

    def _candidates_all(self) -> list[RecordedConn]:
        """Every recorded connection of this protocol, on this listener first, recorded order."""
        rec = self.ctx.recording
        conns = sorted(
            (c for c in rec.conns if c.proto is self.proto),
            key=lambda c: (c.listen_port != self.listener.recorded_port, c.info.opened_at_seq),
        )
        return conns

    # -- misses --------------------------------------------------------------------------------

    def _closest(self, message: norm.Message, key: bytes) -> Step | None:
        """What a miss is shown against: in transcript order the next step of its channel if
        it is of the same method; else the unused step of its method and channel, here or in
        a connection that set up alike, whose values differ least."""
        tr = self.transcript
        assert tr is not None
        fallback = tr.upcoming()
        if self.ctx.options.match is MatchMode.TRANSCRIPT:
            fallback = lanes.channel_next(tr, message.channel, message.name) or fallback
            if fallback is not None and fallback.message.name == message.name:
                return fallback
        same = [
            s
            for t in (tr, *self._pool())
            for s in t.unused()
            if s.message.name == message.name and s.message.channel == message.channel
        ]
        if not same:
            return fallback
        live = norm.normalized(message, self.opts)
        return min(same, key=lambda s: len(norm.diff(norm.normalized(s.message), live)))

    def _why(self, message: norm.Message) -> str:
        assert self.transcript is not None
        if self.transcript.upcoming() is None:
            return "the recorded connection has no client frame left"
        if self.ctx.options.match is MatchMode.TRANSCRIPT:
            return "differs from the next recorded client frame of its channel"
        return "no unused recorded client frame matches"

    def _miss_step(self, message: norm.Message, closest: Step | None, reason: str) -> None:
        live = norm.normalized(message, self.opts)
        rec = norm.normalized(closest.message, self.opts) if closest is not None else None
        lines = []
        if closest is not None and rec is not None:
            shown = self.ctx.bindings.aligned(rec, live)  # the ids that would bind left out
            lines = norm.diff(rec, shown, closest.message.body, message.body)
        self.miss(message.name, reason, live, rec, lines)
        text = f"rrlab replay miss: {message.name}: {reason}"
        if lines:
            text += "; " + "; ".join(lines)
        elif rec is not None:
            text += f"; expected {rec.get('method')}"
        self._refuse_with(text, message)

    def _refuse(self, message: norm.Message, reason: str) -> None:
        self.miss(message.name, reason, norm.normalized(message, self.opts))
        self._refuse_with(f"rrlab replay miss: {reason}", message)

    def _refuse_with(self, text: str, message: norm.Message) -> None:
        """Connection.Close 541 INTERNAL_ERROR with the reason (a short string: 255 bytes)."""
        reply = text.encode("utf-8")[:255].decode("utf-8", "ignore")
        class_id, method_id = _method_ids(message.name)
        close = pamqp.commands.Connection.Close(INTERNAL_ERROR, reply, class_id, method_id)
        self.send(pamqp.frame.marshal(close, 0))
        self.closing = True
        self.call_later(CLOSE_GRACE, self.close)

    def on_close(self) -> None:
        super().on_close()
        self._shared().sessions.pop(self.link.live_id, None)
        if self.transcript is None:
            self.report.connection(self.proto, False)


def _to_recorded(message: norm.Message, bindings: Any) -> norm.Message:
    """The live message with its bound live values put back to the recorded ones (its wire
    bytes kept: they never equal the recording's then)."""
    return norm.Message(
        message.channel,
        message.name,
        bindings.value_to_recorded(message.args),
        bindings.value_to_recorded(message.properties),
        bindings.bytes_to_recorded(message.body) if message.body is not None else None,
        message.frames,
        message.wire,
    )


#: What a connection does before its work: open, tune, and open its channels.
SET_UP = frozenset(
    {norm.PROTOCOL_HEADER, "Connection.StartOk", "Connection.TuneOk", "Connection.Open"}
) | {CHANNEL_OPEN}


def _set_up(tr: Transcript) -> int:
    """How many steps a recorded connection takes to set itself up (0: let go of already)."""
    n = 0
    while (step := tr.step(n)) is not None and step.message.name in SET_UP:
        n += 1
    return n


#: Channel.CloseOk (class 20, method 41) as in a method frame at bytes 7..11
_CLOSE_OK_IDS = b"\x00\x14\x00\x29"


def _open_on(raw: bytes, closed: set[int]) -> bool:
    """A frame that may go out: not on a closed channel, unless it answers the close."""
    return frame_channel(raw) not in closed or raw[7:11] == _CLOSE_OK_IDS


def _all_get_empty(replies: list[RecFrame]) -> bool:
    return bool(replies) and all(f.summary.get("method") == "Basic.GetEmpty" for f in replies)


def _method_ids(name: str) -> tuple[int, int]:
    cls = lanes.method_class(name)
    if cls is None:
        return 0, 0
    index = getattr(cls, "index", 0)
    return index >> 16, index & 0xFFFF
