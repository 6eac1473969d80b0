"""How the proxy and the fake broker hold out against hostile or unlucky peers: the decisions,
made once from `rr.policy.Limits`, without a reactor.

- `ReadGate`: one connection's reads, paused while any reason holds. Registered as a Twisted
  push producer, it turns "the peer's write buffer is full" into one such reason, so flow
  control and the buffered-bytes budget never resume what the other paused.
- `BufferBudget`: unfinished-frame bytes held across every connection against
  `max_buffered_bytes`: who stops reading, and when everyone may read again.
- `peer_closed`: whether a paused connection's peer has gone (a paused transport reads no
  end-of-file: without this, what it held would stay for good).
- `raise_open_file_limit`: the soft open-file limit up to the hard one, at start.
- `dropped_unfinished`: a closed connection's large unfinished frame, once let go, handed back
  to the system (glibc keeps it in the process otherwise).

The Twisted shells (`proxy/`, `replayer/server.py`) call these and move bytes.
"""

from __future__ import annotations

import resource
import socket
from typing import Any

#: why a connection's reads are paused (ReadGate reasons)
PEER_FULL = "peer write buffer full"
BUDGET = "buffered-bytes budget"
CONNECTING = "upstream not connected yet"

#: below this many open files a proxy or fake broker says its limit is low at start
LOW_OPEN_FILES = 4096


class ReadGate:
    """Reads of one transport: paused while any reason holds, resumed when none does.

    Also a Twisted `IPushProducer`: registered with a transport that writes (the peer's, or its
    own for a server answering its client), a full write buffer pauses these reads until it
    drains (`PEER_FULL`). `stopProducing` (the consumer's connection is gone) closes this one.
    """

    __slots__ = ("transport", "reasons")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.reasons: set[str] = set()

    @property
    def paused(self) -> bool:
        return bool(self.reasons)

    def pause(self, reason: str) -> None:
        if not self.reasons:
            self.transport.pauseProducing()
        self.reasons.add(reason)

    def resume(self, reason: str) -> None:
        """(A transport that is closing ignores the resume: Twisted's own check, in
        `FileDescriptor.resumeProducing`.)"""
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons:
            self.transport.resumeProducing()

    # -- IPushProducer (for the transport this gate is registered with) -------------------------

    def pauseProducing(self) -> None:
        self.pause(PEER_FULL)

    def resumeProducing(self) -> None:
        self.resume(PEER_FULL)

    def stopProducing(self) -> None:
        self.transport.loseConnection()


class BufferBudget:
    """Bytes of unfinished frames held by every connection together, against one limit.

    While the total is over the limit, a connection that reads and holds at least its share
    (limit / connections holding any) stops reading: the ones filling memory wait, a client
    with a small unfinished frame is not held up by them. Past a quarter over the limit, every
    connection holding unfinished bytes stops. Once the total is back under the limit (frames
    complete, connections close), every paused connection reads again. A paused connection
    whose peer has gone is `drain`ed: read to its end (never paused again), so it closes and
    lets go of what it held.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.ceiling = limit + limit // 4
        self.total = 0
        self._held: dict[ReadGate, int] = {}
        self._paused: set[ReadGate] = set()
        self._draining: set[ReadGate] = set()

    @property
    def paused(self) -> int:
        """Connections waiting for the total to fall."""
        return len(self._paused)

    def drain_abandoned(self) -> None:
        """`drain` every paused connection whose peer has gone (seen without reading: a paused
        transport reads no end-of-file); the owners' periodic sweep calls this."""
        for gate in [g for g in self._paused if peer_closed(g.transport)]:
            self.drain(gate)

    def account(self, gate: ReadGate, held: int) -> bool:
        """`gate`'s connection now holds `held` bytes of unfinished frames. Pauses it, or
        resumes every paused one; True when this call paused it (the caller may say so)."""
        before = self._held.get(gate, 0)
        if held != before:
            self.total += held - before
            if held:
                self._held[gate] = held
            else:
                self._held.pop(gate, None)
        if self.total <= self.limit:
            self._resume_all()
            return False
        if not held or gate in self._paused or gate in self._draining:
            return False
        if self.total <= self.ceiling and held * len(self._held) < self.limit:
            return False  # under its share: let it finish its frame
        gate.pause(BUDGET)
        self._paused.add(gate)
        return True

    def drain(self, gate: ReadGate) -> None:
        """Read a paused connection to its end (its peer closed: nothing it sends can finish a
        frame any more, but its end-of-file must be read for it to close)."""
        self._paused.discard(gate)
        self._draining.add(gate)
        gate.resume(BUDGET)

    def forget(self, gate: ReadGate) -> None:
        """A connection closed: its bytes no longer count (and others may read again)."""
        self.total -= self._held.pop(gate, 0)
        self._paused.discard(gate)
        self._draining.discard(gate)
        if self.total <= self.limit:
            self._resume_all()

    def _resume_all(self) -> None:
        if self._paused:
            paused, self._paused = self._paused, set()
            for gate in paused:
                gate.resume(BUDGET)


#: Linux TCP states (tcp_states.h) in which the peer has closed its side or reset
_PEER_GONE = (7, 8)  # TCP_CLOSE, TCP_CLOSE_WAIT


def peer_closed(transport: Any) -> bool:
    """Whether the peer of a TCP transport has closed or reset the connection, seen without
    reading (Linux TCP_INFO); False where that cannot be told."""
    try:
        sock = transport.getHandle()
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)
    except (AttributeError, OSError):
        return False
    return bool(info) and info[0] in _PEER_GONE


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one (each connection is a file: the usual
    soft limit of 1,024 caps a proxy or fake broker near 1,000 clients). Returns (soft, hard)
    after it; an unlimited hard limit is capped at the kernel's per-process maximum."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if target == resource.RLIM_INFINITY:
        target = _nr_open()
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # the caller reports the limit it is left with
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def open_file_limit_note(soft: int, hard: int) -> str | None:
    """A line for the person when the open-file limit is low, else None."""
    if soft == resource.RLIM_INFINITY or soft >= LOW_OPEN_FILES:
        return None
    hard_text = "unlimited" if hard == resource.RLIM_INFINITY else f"{hard:,}"
    return (
        f"open-file limit {soft:,} (hard limit {hard_text}): about {max(soft - 24, 0):,} "
        "connections at most, later ones are refused; raise the hard limit (ulimit -Hn, "
        "LimitNOFILE=) for more"
    )


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 1 << 20


#: an unfinished frame this large, once dropped, is memory worth handing back to the system
RETURN_FREED_AFTER = 8 << 20


def dropped_unfinished(held: int) -> None:
    """A closed connection's unfinished frame of `held` bytes has just been let go (nothing
    refers to it any more): from `RETURN_FREED_AFTER` on, hand the memory back to the system.
    The proxy and the fake broker both call this, so both trim at the same size."""
    if held >= RETURN_FREED_AFTER:
        return_freed_memory()


def return_freed_memory() -> None:
    """Hand memory freed inside the process back to the system (glibc's malloc_trim). A partial
    frame grows from many reads; once glibc has raised its mmap threshold those pieces live on
    the heap, and freeing them left the process's RSS where a hostile client had pushed it (the
    fake broker: about one close in five; the proxy: every time, while another connection's
    pieces sat among them). Elsewhere (no glibc) nothing."""
    import ctypes  # here, not at import: start-up pays nothing for it

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError):
        return
    trim(0)
