"""An AMQP recorded connection as the replay session reads it: steps (one client message and
the server frames it released), read lazily, keyed on demand, let go once used."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from rrlab.rr.codecs import Direction
from rrlab.rr.replay.recording import RecFrame, RecordedConn

from . import normalize as norm


@dataclass(slots=True)
class Step:
    """One recorded client message and the server frames it released."""

    pos: int
    message: norm.Message
    indexes: list[int]
    trigger: RecFrame
    replies: list[RecFrame] = field(default_factory=list)
    key_: bytes | None = None


class Transcript:
    """A recorded connection as steps, read from the cassette only as far as the live
    connection has come (a long recording binds at once) and, once `compact` is called, let go
    behind it (memory stays flat however long the recording). Keys are computed when first
    compared; lookup indexes unused steps by key as far as it had to search."""

    def __init__(
        self, rc: RecordedConn, opts: norm.Options, skip: frozenset[int] = frozenset()
    ) -> None:
        self.rc = rc
        self.skip = skip  # frames completing a message that is no step (a clock-driven publish)
        self.opts = opts
        self.steps: list[Step | None] = []  # None: used and let go
        self._last: Step | None = None
        self._released = 0  # steps[:_released] are let go
        self._source: Iterator[RecFrame] | None = rc.stream()
        self._assembler = norm.Assembler()
        self._indexes: list[int] = []
        self.next = 0  # first unused step (transcript order)
        self.done: set[int] = set()
        self._by_key: dict[bytes, deque[int]] = {}
        self._indexed = 0  # steps[:_indexed] are in _by_key (if unused)

    def _read(self) -> bool:
        """One more complete step (its replies are complete once the next one is); False at
        the end of the recording."""
        if self._source is None:
            return False
        for frame in self._source:
            if frame.dir is Direction.S2C:  # told apart by its bytes: its summary stays unread
                if self._last is not None and not norm.is_heartbeat(frame.raw):
                    self._last.replies.append(frame)
                continue
            raw = frame.raw
            if norm.is_heartbeat(raw):  # liveness (`is_liveness`), told by its bytes
                continue
            self._indexes.append(frame.index)
            message = self._assembler.feed_recorded(frame)
            if message is not None and frame.index in self.skip:
                self._indexes = []
                continue
            if message is not None:
                self._last = Step(len(self.steps), message, self._indexes, frame)
                self.steps.append(self._last)
                self._indexes = []
                return True
        self._source = None
        return False

    def step(self, pos: int) -> Step | None:
        """Step `pos` with all its replies, or None past the end of the recording (or let
        go: ask only for steps at or after `next`)."""
        while len(self.steps) < pos + 2 and self._read():
            pass
        return self.steps[pos] if pos < len(self.steps) else None

    def head(self, n: int) -> list[Step]:
        """The first n steps (all read and none let go: binding time only)."""
        steps = [self.step(pos) for pos in range(n)]
        assert all(s is not None for s in steps)
        return steps  # type: ignore[return-value]

    def key(self, step: Step) -> bytes:
        if step.key_ is None:
            step.key_ = norm.match_key(step.message, self.opts)
        return step.key_

    def use(self, step: Step) -> None:
        self.done.add(step.pos)
        self.rc.used.update(step.indexes)
        if step.pos < self._indexed:
            queue = self._by_key.get(self.key(step))
            if queue is not None and step.pos in queue:
                queue.remove(step.pos)
        while self.next in self.done:
            self.done.discard(self.next)  # below `next` everything is used
            self.next += 1

    def exchange(self, used: Step, unused: Step) -> bool:
        """Count `unused` as used instead of `used` (two steps alike, e.g. the Channel.Open of
        two channels: the live channel turned out to be the other one). False: `used` is let go
        already (nothing changes)."""
        if used.pos < self._released or not self.is_used(used.pos) or self.is_used(unused.pos):
            return False
        self.use(unused)
        if used.pos < self.next:
            self.done.update(range(used.pos + 1, self.next))
            self.next = used.pos
        else:
            self.done.discard(used.pos)
        self.rc.used.difference_update(used.indexes)
        if used.pos < self._indexed:
            queue = self._by_key.setdefault(self.key(used), deque())
            queue.append(used.pos)
            self._by_key[self.key(used)] = deque(sorted(queue))
        return True

    def is_used(self, pos: int) -> bool:
        return pos < self.next or pos in self.done

    def compact(self) -> None:
        """Let go of the used steps behind `next` (nothing can match them again)."""
        while self._released < self.next:
            self.steps[self._released] = None
            self._released += 1

    def forget(self) -> None:
        """Undo every use (the live connection moved to another recorded one; never after
        `compact`)."""
        assert self._released == 0
        for step in self.steps:
            if step is not None and self.is_used(step.pos):
                self.rc.used.difference_update(step.indexes)
        self.done.clear()
        self.next = 0
        self._by_key = {}
        self._indexed = 0

    def upcoming(self) -> Step | None:
        return self.step(self.next)

    def earliest(self, key: bytes) -> Step | None:
        """The first unused step with this key, searching (and indexing) no further than it."""
        while True:
            queue = self._by_key.get(key)
            if queue:
                return self.step(queue[0])
            self._indexed = max(self._indexed, self.next)
            step = self.step(self._indexed)
            if step is None:
                return None
            self._indexed += 1
            if not self.is_used(step.pos):
                self._by_key.setdefault(self.key(step), deque()).append(step.pos)

    def unused(self) -> Iterator[Step]:
        """Unused steps in recorded order (reads to the end as it goes)."""
        pos = self.next
        while (step := self.step(pos)) is not None:
            if pos not in self.done:
                yield step
            pos += 1


def same_way(a: Transcript, b: Transcript, n: int) -> bool:
    """The first n steps of two recordings look alike: same keys, same served bytes."""
    if n and (a.step(n - 1) is None or b.step(n - 1) is None):
        return False
    for x, y in zip(a.head(n), b.head(n), strict=True):
        if a.key(x) != b.key(y) or [f.raw for f in x.replies] != [f.raw for f in y.replies]:
            return False
    return True


def reset_to(tr: Transcript, n: int) -> None:
    """The transcript as if its first n steps had been matched (and nothing else)."""
    tr.forget()
    for step in tr.head(n):
        tr.use(step)
