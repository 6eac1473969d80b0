"""Drive a sans-IO replay session without sockets: a `Link` that records its actions, a report
that records what it counted, and the recorded frames of a committed cassette to feed it
(mitmproxy's playbooks: events in, the exact actions out)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import client_kind, protocol_for
from rrlab.rr.replay.recording import RecFrame, RecordedConn, Recording
from rrlab.rr.replay.session import (
    Action,
    Close,
    Listener,
    Miss,
    PortMap,
    ReplayContext,
    ReplayOptions,
    Schedule,
    Send,
    Session,
)

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"


class Playbook:
    """One live connection's `Link`: the actions its session took, in order."""

    def __init__(self, live_id: int) -> None:
        self.live_id = live_id
        self.actions: list[Action] = []

    def act(self, action: Action) -> None:
        self.actions.append(action)

    def take(self) -> list[Action]:
        """The actions since the last `take`."""
        out, self.actions = self.actions, []
        return out


class Tally:
    """The run's `Report`: matched counts, and synthesized answers and misses in order."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.matched_by: Counter[str] = Counter()
        self.events: list[tuple[str, str]] = []  # ("synthesized", api) / ("miss", api)
        self.misses: list[Miss] = []
        self.bound: list[bool] = []

    def matched(self, proto: Proto | str, api: str, n: int = 1) -> None:
        self.matched_by[api] += n

    def synthesized(self, proto: Proto | str, api: str, n: int = 1) -> None:
        self.events.extend([("synthesized", api)] * n)

    def connection(self, proto: Proto | str, bound: bool) -> None:
        self.bound.append(bound)

    def miss(self, miss: Miss) -> None:
        self.misses.append(miss)
        self.events.append(("miss", miss.api))

    def take(self) -> list[tuple[str, str]]:
        out, self.events = self.events, []
        return out


def serve(cassette: str, options: ReplayOptions | None = None) -> ReplayContext:
    """The fake broker's context for a committed cassette, each protocol prepared."""
    recording = Recording.open(CASSETTES / cassette, classify=client_kind)
    ports = PortMap({port: port for _proto, port in recording.listeners()})
    ctx = ReplayContext(recording, options or ReplayOptions(), Tally(), ports)
    for proto in {proto for proto, _port in recording.listeners()}:
        protocol_for(proto).prepare(ctx)
    return ctx


def connect(ctx: ReplayContext, proto: Proto, port: int) -> tuple[Session, Playbook]:
    """A live connection accepted on the recorded `port`: its session and its playbook."""
    link = Playbook(ctx.next_live_id())
    return protocol_for(proto).session(ctx, Listener(proto, port, port), link), link


def frames(ctx: ReplayContext, conn: int, direction: Direction) -> list[RecFrame]:
    return [f for f in ctx.recording.conn(conn).frames if f.dir is direction]


def sent(actions: list[Action]) -> bytes:
    """What the actions wrote to the client, joined (they must all be `Send`s)."""
    assert all(isinstance(a, Send) for a in actions), actions
    return b"".join(a.data for a in actions)  # type: ignore[union-attr]


def run_at_once(link: Any, action: Action) -> None:
    """For a test's own link with send/close/call_later: run each action at once."""
    if isinstance(action, Send):
        link.send(action.data)
    elif isinstance(action, Close):
        link.close()
    elif isinstance(action, Schedule):
        link.call_later(action.delay, action.timer.fire)


def count_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """How many times each recorded connection's frames are read (`RecordedConn.stream`) from
    now on, by connection id: what a prepare that reads the recording once must keep at 1."""
    reads: Counter[int] = Counter()
    stream = RecordedConn.stream

    def counted(self: RecordedConn) -> Iterator[RecFrame]:
        reads[self.id] += 1
        return stream(self)

    monkeypatch.setattr(RecordedConn, "stream", counted)
    return reads
