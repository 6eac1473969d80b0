"""A worker's threads share one AMQP connection, each on its own channel: how their messages
interleave on the socket is the scheduler's, each channel's own order is behaviour (`lanes`).
Playbooks (no sockets) on a cassette written from the handshake of a committed recording and
two channels' frames made with pamqp, as the proxy records them."""

from __future__ import annotations

from pathlib import Path

import pamqp.commands as cmd
import pamqp.frame
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


def _recorded(path: Path, pairs: list[tuple[bytes, bytes]]) -> ReplayContext:
    writer = CassetteWriter.create(path)
    conn = writer.open_connection("amqp", "127.0.0.1:15673", "127.0.0.1:5672")
    rec = recorder_for(writer, conn, "amqp")
    for direction, raw in _handshake():
        rec.feed(direction, raw)
    for client, broker in pairs:
        rec.feed(C2S, client)
        rec.feed(S2C, broker)
    rec.close("client closed")
    writer.finalize()
    recording = Recording.open(path, classify=client_kind)
    ports = PortMap({port: port for _proto, port in recording.listeners()})
    ctx = ReplayContext(recording, ReplayOptions(), Tally(), ports)
    protocol_for(Proto.AMQP).prepare(ctx)
    return ctx


def _live(ctx: ReplayContext, pairs: list[tuple[bytes, bytes]]) -> tuple[bytes, Tally]:
    session, link = connect(ctx, Proto.AMQP, 15673)
    for frame in frames(ctx, 1, C2S)[:4]:  # header, StartOk, TuneOk, Open
        session.data_received(frame.raw)
    link.take()
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
