"""What every protocol's replay session gets and gives, without sockets or a reactor (sans-IO).

Events in: `data_received(bytes)` (the session frames the client's bytes itself), a `Timer`
fired, `connection_lost()`, and `read_ahead()` once the answers to a read are out. Actions out,
handed to the session's `Link` one by one as they are decided: `Send(bytes)`, `Close(reason)`,
`Schedule(delay, timer)`; what was matched, synthesized or missed is counted into the run's
`Report`. The fake broker's Twisted protocol (`replayer/server.py`) runs the actions; a playbook
test records them (tests/unit/test_replay_playbooks.py). Also here: the shared context and the
base class with the helpers each protocol uses (answer, miss, pace)."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rrlab.rr.cassette.errors import printable
from rrlab.rr.codecs import DEFAULT_MAX_FRAME_BYTES, Direction, Framer, FramingError, Proto

from .bindings import Bindings, Origin, Recognizer, clock
from .recording import RecFrame, RecordedConn, Recording


class MatchMode(enum.StrEnum):
    """transcript: a live connection follows its recorded one in order; lookup: the earliest
    unused recorded frame with the same key answers (order within a connection may differ)."""

    TRANSCRIPT = "transcript"
    LOOKUP = "lookup"


class Pace(enum.StrEnum):
    """fast: answer at once; recorded: server frames keep their recorded delay after the
    client frame that released them, and never overtake one released before them."""

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
    #: fields (view paths, e.g. `properties.timestamp`) whose recorded clock value must equal
    #: the live one (by default a clock value matches any live one of the same form)
    exact_clock_fields: tuple[str, ...] = ()


@dataclass(slots=True)
class Miss:
    """A live client frame the recording could not answer, or a recorded behaviour frame the
    live command never sent (then `live` is empty and `closest` the recorded summary)."""

    proto: str
    live_conn: int | None  # None: a recorded frame no live connection sent (never bound)
    recorded_conn: int | None
    api: str
    reason: str
    live: dict[str, Any]
    closest: dict[str, Any] | None = None
    diff: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "closest": self.closest,
            "diff": list(self.diff),
            "live": self.live,
            "live_conn": self.live_conn,
            "proto": self.proto,
            "reason": self.reason,
            "recorded_conn": self.recorded_conn,
        }

    def line(self) -> str:
        """One line for a terminal or a log; recorded and live values in it are escaped (a
        cassette or a client may carry terminal control sequences)."""
        where = "no live conn" if self.live_conn is None else f"live conn {self.live_conn}"
        if self.recorded_conn is not None:
            where += f" (recorded conn {self.recorded_conn})"
        head = f"MISS {self.proto} {printable(self.api)} on {where}: {printable(self.reason)}"
        return head + "".join(f"\n    {printable(d)}" for d in self.diff[:10])


class Report(Protocol):
    """Where a session counts what it did (the fake broker's `ReplayReport`)."""

    notes: list[str]

    def matched(self, proto: Proto | str, api: str, n: int = 1) -> None: ...

    def synthesized(self, proto: Proto | str, api: str, n: int = 1) -> None: ...

    def connection(self, proto: Proto | str, bound: bool) -> None: ...

    def miss(self, miss: Miss) -> None: ...


@dataclass(frozen=True, slots=True)
class Send:
    """Write these bytes to the client."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection once what was sent is out; `reason` says why for the log ("" when
    the client or the recording ended it)."""

    reason: str = ""


@dataclass(eq=False, slots=True)
class Timer:
    """A callback the shell runs `fire` on after its delay, unless it was cancelled first."""

    fn: Callable[[], None]
    cancelled: bool = False

    def fire(self) -> None:
        if not self.cancelled:
            self.fn()

    def cancel(self) -> None:
        self.cancelled = True


@dataclass(frozen=True, slots=True)
class Schedule:
    """Fire `timer` after `delay` seconds (on the shell's injected clock)."""

    delay: float
    timer: Timer


Action = Send | Close | Schedule


class Link(Protocol):
    """The live client connection, as a session sees it: where its actions go (the Twisted
    protocol runs them; a playbook test records them)."""

    live_id: int

    def act(self, action: Action) -> None: ...


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
        report: Report,
        ports: PortMap,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        first_live_id: int = 1,
    ) -> None:
        self.recording = recording
        self.options = options
        self.report = report
        self.ports = ports
        self.shared: dict[Proto, Any] = {}
        #: values the clients chose, recorded -> live, for every connection of the run
        self.bindings = Bindings(
            Recognizer(Origin.of(recording.manifest.meta)), clock(options.exact_clock_fields)
        )
        #: the longest client frame a session frames (the policy's frame budget)
        self.max_frame_bytes = max_frame_bytes
        #: live connection ids go on across `serve --repeat` sessions (one per accepted one)
        self._next_live = first_live_id

    @property
    def live_connections(self) -> int:
        """Live connections accepted so far (by this fake broker, every session)."""
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


@dataclass(slots=True)
class _Paced:
    """A recorded frame handed to `send_recorded`, waiting for its delay and its turn."""

    data: bytes
    ready: bool


class Session:
    """One live connection of one protocol. Subclasses name their client-side framer
    (`framer_cls`), implement `on_frame` (a whole client frame) and may override `on_close`;
    they answer with `send`/`send_recorded`, and `call_later`/`close` for the rest."""

    proto: Proto
    #: the protocol's framer class, one instance per connection for the client's bytes
    framer_cls: Callable[[Direction, int], Framer]

    def __init__(self, ctx: ReplayContext, listener: Listener, link: Link) -> None:
        self.ctx = ctx
        self.listener = listener
        self.link = link
        self.bound: RecordedConn | None = None
        self.closed = False
        self.framer: Framer | None = self.framer_cls(Direction.C2S, ctx.max_frame_bytes)
        #: `--pace recorded`: recorded frames handed over and not sent yet, in that order
        self._paced: deque[_Paced] = deque()

    # -- events --------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> int:
        """Bytes from the client, framed here (split by the protocol's framing, never by
        reads); each whole frame served in order. Returns how many whole frames there were.
        Bytes that cannot be framed: the frames before them served, a miss, the connection
        closed."""
        framer = self.framer
        if framer is None or self.closed:
            return 0
        try:
            raws = framer.feed_raws(data)
        except FramingError as err:
            for frame in err.frames:
                if self.closed:
                    break
                self.on_frame(frame.raw)
            reason = f"client bytes cannot be framed: {err}"
            self.miss("unframeable", reason, {})
            self.close(reason)
            return len(err.frames)
        for raw in raws:
            if self.closed:
                break
            self.on_frame(raw)
        return len(raws)

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished client frame held (the shell's buffer budget counts them)."""
        return self.framer.buffered if self.framer is not None else 0

    def read_ahead(self) -> None:
        """The answers to a read are out: prepare what the next client frame will be compared
        with (read the recording ahead), while the client is busy with them rather than while
        it waits. Never sends or counts anything: only what the session would do anyway on the
        next frame, done earlier (by default nothing)."""

    def connection_lost(self) -> None:
        """The client's connection is gone: what an unfinished frame held goes now."""
        self.framer = None
        self.on_close()

    def on_frame(self, raw: bytes) -> None:
        raise NotImplementedError

    def on_close(self) -> None:
        self.closed = True

    # -- helpers -------------------------------------------------------------------------------

    @property
    def report(self) -> Report:
        return self.ctx.report

    def send(self, data: bytes) -> None:
        if not self.closed and data:
            self.link.act(Send(data))

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        """Run `fn` after `delay` seconds (a `Schedule` action: the shell's clock)."""
        timer = Timer(fn)
        self.link.act(Schedule(delay, timer))
        return timer

    def send_recorded(
        self,
        frames: Iterable[tuple[RecFrame, bytes]],
        after: RecFrame | None,
    ) -> None:
        """Send server frames (recorded frame, bytes to send) released by the client frame
        `after`: at once, or with `--pace recorded` at their recorded delay after it. Either
        way in the order they are handed over, as from a broker's socket: a frame recorded with
        a shorter delay (PUBREL 2 answered faster than PUBREL 1) waits for the ones before it,
        or the client would ack, and be matched, in an order no broker caused."""
        pairs = list(frames)
        if not pairs:
            return
        paced = self.ctx.options.pace is Pace.RECORDED and after is not None
        if not paced and not self._paced:
            self.send(b"".join(data for _f, data in pairs))
            return
        for frame, data in pairs:
            delay = max(0.0, (frame.t_us - after.t_us) / 1e6) if after is not None else 0.0
            slot = _Paced(data, ready=not paced or delay <= 0)
            self._paced.append(slot)
            if not slot.ready:
                self.call_later(delay, lambda s=slot: self._ready(s))
        self._send_ready()

    def _ready(self, slot: _Paced) -> None:
        slot.ready = True
        self._send_ready()

    def _send_ready(self) -> None:
        """Send the paced frames that are due, up to the first one that is not."""
        out = []
        while self._paced and self._paced[0].ready:
            out.append(self._paced.popleft().data)
        if out:
            self.send(b"".join(out))

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

    def close(self, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            self.link.act(Close(reason))
