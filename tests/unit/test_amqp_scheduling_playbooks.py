"""Scheduling is not behaviour, in AMQP replay sessions. A worker's threads share one
connection, each on its own channel: how their messages interleave on the socket, and which
thread got which channel number, is the scheduler's; each channel's own order is behaviour
(`lanes`, `channels`). A worker's children connect alike: which of them publishes which
result is the scheduler's (a pool). Playbooks (no sockets) on cassettes written from the
handshake of a committed recording and frames made with pamqp, as the proxy records them."""

from __future__ import annotations

from pathlib import Path

import pamqp.body
import pamqp.commands as cmd
import pamqp.frame
import pamqp.header
from replay_playbook import Tally, connect, frames

from rrlab.rr.cassette import CassetteWriter
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import client_kind, protocol_for
from rrlab.rr.record import recorder_for
from rrlab.rr.replay.recording import Recording
from rrlab.rr.replay.session import PortMap, ReplayContext, ReplayOptions, Send

HANDSHAKE_FROM = Path(__file__).resolve().parents[1] / "replay" / "amqp_cassettes" / "pika-rpc"
C2S, S2C = Direction.C2S, Direction.S2C


def _m(method: object, channel: int) -> bytes:
    return pamqp.frame.marshal(method, channel)


#: (client frame, the broker's answer): channel 1 declares `tasks`, channel 2 `events`
OPEN_1 = (_m(cmd.Channel.Open(), 1), _m(cmd.Channel.OpenOk(), 1))
OPEN_2 = (_m(cmd.Channel.Open(), 2), _m(cmd.Channel.OpenOk(), 2))
TASKS_1 = (_m(cmd.Queue.Declare(queue="tasks"), 1), _m(cmd.Queue.DeclareOk("tasks", 0, 0), 1))
EVENTS_2 = (_m(cmd.Queue.Declare(queue="events"), 2), _m(cmd.Queue.DeclareOk("events", 0, 0), 2))
EVENTS_1 = (_m(cmd.Queue.Declare(queue="events"), 1), _m(cmd.Queue.DeclareOk("events", 0, 0), 1))


def _handshake() -> list[tuple[Direction, bytes]]:
    """A committed recording's connection up to Connection.OpenOk, both directions."""
    recording = Recording.open(HANDSHAKE_FROM, classify=client_kind)
    out = []
    for frame in recording.conn(1).frames:
        out.append((frame.dir, frame.raw))
        if frame.summary.get("method") == "Connection.OpenOk":
            return out
    raise AssertionError("no Connection.OpenOk in the handshake cassette")


def _recorded(path: Path, *conns: list[tuple[bytes, bytes]]) -> ReplayContext:
    """A cassette of connections that open alike, each then sending its (client frame,
    broker answer) pairs."""
    writer = CassetteWriter.create(path)
    for pairs in conns:
        conn = writer.open_connection("amqp", "127.0.0.1:15673", "127.0.0.1:5672")
        rec = recorder_for(writer, conn, "amqp")
        for direction, raw in _handshake():
            rec.feed(direction, raw)
        for client, broker in pairs:
            rec.feed(C2S, client)
            if broker:
                rec.feed(S2C, broker)
        rec.close("client closed")
    writer.finalize()
    recording = Recording.open(path, classify=client_kind)
    ports = PortMap({port: port for _proto, port in recording.listeners()})
    ctx = ReplayContext(recording, ReplayOptions(), Tally(), ports)
    protocol_for(Proto.AMQP).prepare(ctx)
    return ctx


def _connect(ctx: ReplayContext):
    session, link = connect(ctx, Proto.AMQP, 15673)
    for frame in frames(ctx, 1, C2S)[:4]:  # header, StartOk, TuneOk, Open
        session.data_received(frame.raw)
    link.take()
    return session, link


def _live(ctx: ReplayContext, pairs: list[tuple[bytes, bytes]]) -> tuple[bytes, Tally]:
    session, link = _connect(ctx)
    for client, _broker in pairs:
        session.data_received(client)
    served = b"".join(a.data for a in link.take() if isinstance(a, Send))
    return served, ctx.report  # type: ignore[return-value]


def test_channels_interleaved_otherwise_than_recorded_match_each_in_its_own_order(tmp_path):
    ctx = _recorded(tmp_path / "c", [OPEN_1, OPEN_2, EVENTS_2, TASKS_1])
    served, report = _live(ctx, [OPEN_1, TASKS_1, OPEN_2, EVENTS_2])
    assert report.misses == []
    assert served == b"".join(broker for _c, broker in [OPEN_1, TASKS_1, OPEN_2, EVENTS_2])


def test_a_channel_whose_own_order_differs_is_still_a_miss(tmp_path):
    ctx = _recorded(tmp_path / "c", [OPEN_1, TASKS_1, EVENTS_1])
    _served, report = _live(ctx, [OPEN_1, EVENTS_1, TASKS_1])
    assert [m.api for m in report.misses] == ["Queue.Declare"]
    assert report.misses[0].reason == "differs from the next recorded client frame of its channel"
    assert any('recorded "tasks" live "events"' in line for line in report.misses[0].diff)


TASKS_2 = (_m(cmd.Queue.Declare(queue="tasks"), 2), _m(cmd.Queue.DeclareOk("tasks", 0, 0), 2))


def test_threads_that_opened_their_channels_in_the_other_order_are_bound_by_what_they_do(
    tmp_path,
):
    """Recorded: the thread declaring `tasks` got channel 1; live it got channel 2. Each live
    channel is bound to the recorded one that does what it does, and what is served for a
    recorded channel goes out on the live channel bound to it."""
    ctx = _recorded(tmp_path / "c", [OPEN_1, OPEN_2, TASKS_1, EVENTS_2])
    served, report = _live(ctx, [OPEN_1, OPEN_2, EVENTS_1, TASKS_2])
    assert report.misses == []
    assert served == b"".join(broker for _c, broker in [OPEN_1, OPEN_2, EVENTS_1, TASKS_2])
    assert any("live channel 1 is recorded channel 2" in note for note in report.notes)


def test_a_channel_that_did_something_already_is_not_moved(tmp_path):
    ctx = _recorded(tmp_path / "c", [OPEN_1, OPEN_2, TASKS_1, EVENTS_2, TASKS_1])
    _served, report = _live(ctx, [OPEN_1, OPEN_2, TASKS_1, EVENTS_2, EVENTS_1])
    assert [m.api for m in report.misses] == ["Queue.Declare"]


def _result(n: int) -> tuple[bytes, bytes]:
    """A child's publish of task n's result (no answer from the broker)."""
    body = b'{"order": %d}' % n
    method = _m(cmd.Basic.Publish(exchange="", routing_key="results"), 1)
    header = pamqp.frame.marshal(pamqp.header.ContentHeader(0, len(body)), 1)
    return method + header + pamqp.frame.marshal(pamqp.body.ContentBody(body), 1), b""


def test_a_pool_member_may_send_what_another_member_was_recorded_sending(tmp_path):
    """Two children connected alike: recorded, the first published results 0 and 1, the second
    result 2; live, each published one and the first the third."""
    ctx = _recorded(tmp_path / "c", [OPEN_1, _result(0), _result(1)], [OPEN_1, _result(2)])
    first, _ = _connect(ctx)
    second, _ = _connect(ctx)
    for session, pair in [(first, OPEN_1), (second, OPEN_1), (first, _result(0))]:
        session.data_received(pair[0])
    second.data_received(_result(1)[0])  # recorded on the first child
    first.data_received(_result(2)[0])  # recorded on the second
    assert ctx.report.misses == []
    assert ctx.recording.conn(1).used and ctx.recording.conn(2).used
    assert sum("a connection that opened alike" in note for note in ctx.report.notes) == 2
    second.data_received(_result(3)[0])  # recorded nowhere
    assert [m.api for m in ctx.report.misses] == ["Basic.Publish"]


def test_a_pool_member_may_send_what_a_member_not_connected_yet_was_recorded_sending(tmp_path):
    """The child recorded publishing result 1 connects live only after the other child has
    published it (a live connection bound to a recorded one has not set it up yet)."""
    ctx = _recorded(tmp_path / "c", [OPEN_1, _result(0)], [OPEN_1, _result(1), _result(2)])
    first, _ = _connect(ctx)
    for pair in [OPEN_1, _result(2), _result(0)]:  # result 2: recorded after result 1
        first.data_received(pair[0])
    second, _ = _connect(ctx)
    for pair in [OPEN_1, _result(1)]:
        second.data_received(pair[0])
    assert ctx.report.misses == []


def test_an_answer_recorded_after_another_channels_request_answers_its_own_at_once(tmp_path):
    """Recorded, two threads cancelled their consumers back to back: the broker's CancelOk for
    channel 1 came after channel 2's Basic.Cancel. Live, the thread on channel 1 waits for its
    CancelOk before the other cancels: it is answered at once."""
    cancel_1 = _m(cmd.Basic.Cancel(consumer_tag="c1"), 1)
    cancel_2 = _m(cmd.Basic.Cancel(consumer_tag="c2"), 2)
    ok_1 = _m(cmd.Basic.CancelOk(consumer_tag="c1"), 1)
    ok_2 = _m(cmd.Basic.CancelOk(consumer_tag="c2"), 2)
    pairs = [OPEN_1, OPEN_2, (cancel_1, b""), (cancel_2, ok_1 + ok_2)]
    ctx = _recorded(tmp_path / "c", pairs)
    session, link = _connect(ctx)
    for client in (OPEN_1[0], OPEN_2[0], cancel_1):
        session.data_received(client)
    served = b"".join(a.data for a in link.take() if isinstance(a, Send))
    assert served.endswith(ok_1)
    session.data_received(cancel_2)
    assert b"".join(a.data for a in link.take() if isinstance(a, Send)) == ok_2
    assert ctx.report.misses == []


def _event_recording(path: Path, cancel: bytes, answer: bytes) -> tuple[ReplayContext, bytes]:
    """A worker (consumer `c2` on channel 2) and a publisher: recorded, the broker delivered the
    publisher's event to `c2` just before it answered the worker's `cancel` with `answer`.
    Returns the context and the delivery's bytes."""
    body = b'{"type": "worker-offline"}'
    deliver = _m(cmd.Basic.Deliver("c2", 1, False, "", "events"), 2)
    deliver += pamqp.frame.marshal(pamqp.header.ContentHeader(0, len(body)), 2)
    deliver += pamqp.frame.marshal(pamqp.body.ContentBody(body), 2)
    writer = CassetteWriter.create(path)
    recs = []
    for _ in range(2):
        conn = writer.open_connection("amqp", "127.0.0.1:15673", "127.0.0.1:5672")
        recs.append(recorder_for(writer, conn, "amqp"))
        for direction, raw in _handshake():
            recs[-1].feed(direction, raw)
    worker, publisher = recs
    for client, broker in [OPEN_1, OPEN_2, (CONSUME_2, _m(cmd.Basic.ConsumeOk("c2"), 2))]:
        worker.feed(C2S, client)
        worker.feed(S2C, broker)
    publisher.feed(C2S, OPEN_1[0])
    publisher.feed(S2C, OPEN_1[1])
    worker.feed(C2S, cancel)
    publisher.feed(C2S, _publish_event(body))
    worker.feed(S2C, deliver + answer)
    worker.close("client closed")
    publisher.close("client closed")
    writer.finalize()
    recording = Recording.open(path, classify=client_kind)
    ports = PortMap({port: port for _proto, port in recording.listeners()})
    ctx = ReplayContext(recording, ReplayOptions(), Tally(), ports)
    protocol_for(Proto.AMQP).prepare(ctx)
    return ctx, deliver


CONSUME_2 = _m(cmd.Basic.Consume(queue="events", consumer_tag="c2"), 2)


def _publish_event(body: bytes) -> bytes:
    publish = _m(cmd.Basic.Publish(exchange="", routing_key="events"), 1)
    publish += pamqp.frame.marshal(pamqp.header.ContentHeader(0, len(body)), 1)
    return publish + pamqp.frame.marshal(pamqp.body.ContentBody(body), 1)


def _sends(link) -> bytes:
    return b"".join(a.data for a in link.take() if isinstance(a, Send))


def _before_the_event(
    tmp_path: Path, request: bytes, answer: bytes
) -> tuple[ReplayContext, bytes, list[bytes]]:
    """Live, the worker sends `request` (recorded answered with `answer` just after the event
    was delivered), then the publisher publishes the event: what the worker was served after
    each (the context, the recorded delivery, the two)."""
    ctx, deliver = _event_recording(tmp_path / "c", request, answer)
    live_worker, worker_link = _connect(ctx)
    live_publisher, _ = _connect(ctx)
    for client in (OPEN_1[0], OPEN_2[0], CONSUME_2):
        live_worker.data_received(client)
    live_publisher.data_received(OPEN_1[0])
    worker_link.take()
    live_worker.data_received(request)
    after_request = _sends(worker_link)
    live_publisher.data_received(_publish_event(b'{"type": "worker-offline"}'))
    return ctx, deliver, [after_request, _sends(worker_link)]


def _cancel_before_the_event(
    tmp_path: Path, channel: int, tag: str
) -> tuple[ReplayContext, bytes, list[bytes]]:
    cancel = _m(cmd.Basic.Cancel(consumer_tag=tag), channel)
    return _before_the_event(tmp_path, cancel, _m(cmd.Basic.CancelOk(consumer_tag=tag), channel))


def test_a_delivery_held_for_its_publish_holds_back_no_other_channels_answer(tmp_path):
    """Live, the event's publisher publishes only once the worker's cancel on channel 1 is
    answered (a worker's shutdown): the CancelOk goes at once, the delivery when its publish
    has matched."""
    ctx, deliver, served = _cancel_before_the_event(tmp_path, 1, "c1")
    assert served == [_m(cmd.Basic.CancelOk(consumer_tag="c1"), 1), deliver]
    assert ctx.report.misses == []


def test_a_consumer_cancelled_before_the_publish_gets_no_delivery_and_its_cancel_ok(tmp_path):
    """The cancel is of the consumer the event was delivered to: live, the event is published
    after the cancel, so the consumer gets none (a broker delivers nothing to a cancelled
    consumer), and the CancelOk goes at once."""
    ctx, _deliver, served = _cancel_before_the_event(tmp_path, 2, "c2")
    assert served == [_m(cmd.Basic.CancelOk(consumer_tag="c2"), 2), b""]
    assert ctx.report.misses == []


def test_a_consumer_cancelled_again_is_answered_cancel_ok(tmp_path):
    """A framework's shutdown may cancel a consumer twice; a broker answers CancelOk to a
    cancel of a consumer it does not know (any longer)."""
    cancel = _m(cmd.Basic.Cancel(consumer_tag="c1"), 1)
    ok = _m(cmd.Basic.CancelOk(consumer_tag="c1"), 1)
    ctx = _recorded(tmp_path / "c", [OPEN_1, (cancel, ok)])
    served, report = _live(ctx, [OPEN_1, (cancel, ok), (cancel, ok)])
    assert served == OPEN_1[1] + ok + ok
    assert report.misses == [] and ("synthesized", "Basic.Cancel") in report.events


def test_a_channel_closed_before_the_publish_gets_no_delivery_and_its_close_ok(tmp_path):
    """As for a cancel: a channel the worker closes live before the event is published gets
    no delivery (nothing goes out on a closed channel) and its CloseOk at once."""
    close, ok = _m(cmd.Channel.Close(200, "", 0, 0), 2), _m(cmd.Channel.CloseOk(), 2)
    ctx, _deliver, served = _before_the_event(tmp_path, close, ok)
    assert served == [ok, b""]
    assert ctx.report.misses == []


OPEN_3 = (_m(cmd.Channel.Open(), 3), _m(cmd.Channel.OpenOk(), 3))


def _consume(queue: str, tag: str, channel: int) -> tuple[bytes, bytes]:
    return (
        _m(cmd.Basic.Consume(queue=queue, consumer_tag=tag), channel),
        _m(cmd.Basic.ConsumeOk(tag), channel),
    )


def _delivery(tag: str, queue: str, body: bytes, channel: int) -> bytes:
    deliver = _m(cmd.Basic.Deliver(tag, 1, False, "", queue), channel)
    deliver += pamqp.frame.marshal(pamqp.header.ContentHeader(0, len(body)), channel)
    return deliver + pamqp.frame.marshal(pamqp.body.ContentBody(body), channel)


def test_a_delivery_waits_for_its_consumer_when_another_channels_thread_is_ahead(tmp_path):
    """Recorded (a Celery worker): the events thread consumed `ev` on channel 2, the control
    thread then opened channel 3 and consumed `ctl`, and an event already in `ev`'s queue was
    delivered just after (released by the `ctl` consume). Live the control thread got channel
    2 and consumed before the events thread opened channel 3: the event waits until `ev` is
    consumed live, then goes to the live channel of `ev`, after its ConsumeOk (a broker
    delivers nothing to a consumer that does not exist; before, it went out at once on live
    channel 2, to the control consumer's channel)."""
    consume_ev_2, consume_ctl_3 = _consume("ev", "ev", 2), _consume("ctl", "ctl", 3)
    event = _delivery("ev", "ev", b'{"type": "worker-online"}', 2)
    ctx = _recorded(
        tmp_path / "c", [OPEN_2, consume_ev_2, OPEN_3, (consume_ctl_3[0], consume_ctl_3[1] + event)]
    )
    live = [OPEN_2, _consume("ctl", "ctl", 2), OPEN_3, _consume("ev", "ev", 3)]
    session, link = _connect(ctx)
    served = []
    for client, _answer in live:
        session.data_received(client)
        served.append(_sends(link))
    assert ctx.report.misses == []
    assert served == [
        OPEN_2[1],
        _m(cmd.Basic.ConsumeOk("ctl"), 2),
        OPEN_3[1],
        _m(cmd.Basic.ConsumeOk("ev"), 3) + _delivery("ev", "ev", b'{"type": "worker-online"}', 3),
    ]
