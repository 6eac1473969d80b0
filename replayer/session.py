"""What every protocol's replay session gets and gives: the shared context, the link to the live
client, and the base class with the helpers each protocol uses (answer, miss, pace)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rr.codecs import Proto

from .recording import RecFrame, RecordedConn, Recording
from .report import Miss, ReplayReport


class MatchMode(enum.StrEnum):
    """transcript: a live connection follows its recorded one in order; lookup: the earliest
    unused recorded frame with the same key answers (order within a connection may differ)."""

    TRANSCRIPT = "transcript"
    LOOKUP = "lookup"


class Pace(enum.StrEnum):
    """fast: answer at once; recorded: server frames keep their recorded delay after the
    client frame that released them."""

    FAST = "fast"
    RECORDED = "recorded"


@dataclass(slots=True)
class ReplayOptions:
    match: MatchMode = MatchMode.TRANSCRIPT
    pace: Pace = Pace.FAST
    strict: bool = False
    #: payload fields (dotted paths into JSON payloads) and Kafka header names to ignore
    ignore_fields: tuple[str, ...] = ()
    ignore_headers: tuple[str, ...] = ()


class Cancellable(Protocol):
    def cancel(self) -> None: ...

    def active(self) -> bool: ...


class Link(Protocol):
    """The live client connection, as a session sees it (implemented by the Twisted protocol)."""

    live_id: int

    def send(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> Cancellable: ...


@dataclass(slots=True)
class PortMap:
    """Recorded listen port -> live listen port (identity unless moved)."""

    moves: dict[int, int] = field(default_factory=dict)
    listen_host: str = "127.0.0.1"

    def live(self, recorded: int) -> int:
        return self.moves.get(recorded, recorded)

    @property
    def identity(self) -> bool:
        return all(a == b for a, b in self.moves.items())

    def port_for(self, host: str, port: int, node_id: int | None = None) -> int:
        """The Kafka rewriter's NodeMap interface: a served address -> the live listener."""
        return self.live(int(port))


class ReplayContext:
    """One `rrlab serve` run: the recording, options, report, port map, and per-protocol state
    shared by all live connections (e.g. Kafka's partition logs)."""

    def __init__(
        self,
        recording: Recording,
        options: ReplayOptions,
        report: ReplayReport,
        ports: PortMap,
    ) -> None:
        self.recording = recording
        self.options = options
        self.report = report
        self.ports = ports
        self.shared: dict[Proto, Any] = {}
        self._next_live = 1

    @property
    def live_connections(self) -> int:
        """Live connections accepted so far."""
        return self._next_live - 1

    def next_live_id(self) -> int:
        live = self._next_live
        self._next_live += 1
        return live


@dataclass(frozen=True, slots=True)
class Listener:
    proto: Proto
    recorded_port: int
    live_port: int


class Session:
    """One live connection of one protocol. Subclasses implement `on_frame` (a whole client
    frame) and may override `on_close`; they answer with `send`/`send_recorded`."""

    proto: Proto

    def __init__(self, ctx: ReplayContext, listener: Listener, link: Link) -> None:
        self.ctx = ctx
        self.listener = listener
        self.link = link
        self.bound: RecordedConn | None = None
        self.closed = False

    # -- called by the server ------------------------------------------------------------------

    def on_frame(self, raw: bytes) -> None:
        raise NotImplementedError

    def on_close(self) -> None:
        self.closed = True

    # -- helpers -------------------------------------------------------------------------------

    @property
    def report(self) -> ReplayReport:
        return self.ctx.report

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.link.send(data)

    def send_recorded(
        self,
        frames: Iterable[tuple[RecFrame, bytes]],
        after: RecFrame | None,
    ) -> None:
        """Send server frames (recorded frame, bytes to send) released by the client frame
        `after`: at once, or with `--pace recorded` at their recorded delay after it."""
        pairs = list(frames)
        if not pairs:
            return
        if self.ctx.options.pace is Pace.FAST or after is None:
            self.send(b"".join(data for _f, data in pairs))
            return
        for frame, data in pairs:
            delay = max(0.0, (frame.t_us - after.t_us) / 1e6)
            if delay <= 0:
                self.send(data)
            else:
                self.link.call_later(delay, lambda d=data: self.send(d))

    def miss(
        self,
        api: str,
        reason: str,
        live: dict[str, Any],
        closest: dict[str, Any] | None = None,
        diff: list[str] | None = None,
    ) -> Miss:
        miss = Miss(
            proto=str(self.proto),
            live_conn=self.link.live_id,
            recorded_conn=self.bound.id if self.bound is not None else None,
            api=api,
            reason=reason,
            live=live,
            closest=closest,
            diff=list(diff or ()),
        )
        self.report.miss(miss)
        return miss

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.link.close()
