"""Connections that open alike form a pool: a live AMQP connection binds to the first recorded
one that opened like it, and may move to another that went the same way so far (the session's
`_rebind`) only while it keeps its matched steps. It keeps them for REBIND_WINDOW steps, and
past that for as long as another recorded connection still goes the same way as its own (same
keys, same served bytes, step by step): a pool member that does the same work as the others for
a long while (a framework's periodic events) is bound by what its own frames do once they
differ, never by which member connected first."""

from __future__ import annotations

from .transcript import Step, Transcript, same_way

#: The most steps a pool member keeps to move (they are not let go meanwhile: memory).
POOL_WINDOW = 100_000


class Alike:
    """The other recorded connections that went the same way as one live connection's
    recording so far."""

    def __init__(self, mine: Transcript, others: list[Transcript], n: int) -> None:
        self.mine = mine
        #: (a transcript another session let go of the start of cannot be compared: it is past
        #: moving anyway)
        self.others = [tr for tr in others if tr.step(0) is not None and same_way(mine, tr, n)]

    def goes_on(self, step: Step) -> bool:
        """After `step`, the next step of `mine`: whether another recording still goes the
        same way."""
        key, served = self.mine.key(step), [f.raw for f in step.replies]
        self.others = [
            tr
            for tr in self.others
            if (other := tr.step(step.pos)) is not None
            and tr.key(other) == key
            and [f.raw for f in other.replies] == served
        ]
        return bool(self.others)
