"""A live connection's channel numbers bound to its recorded connection's, by what each channel
does: a worker's threads open their channels in the order the scheduler lets them, so the
thread that got channel 2 live may be the one that got channel 3 when recorded. A live channel
is bound to the recorded channel of its number when it opens (or the lowest free one); while it
has matched nothing but its Channel.Open (fresh), it may move to another recorded channel whose
next message is its first, trading places with a live channel as fresh as itself. Frames served
on a recorded channel go out on the live channel bound to it."""

from __future__ import annotations

from .codec import frame_channel

CHANNEL_OPEN = "Channel.Open"


class Channels:
    """Live channel number <-> recorded channel number, for one live connection."""

    def __init__(self) -> None:
        self._to_rec: dict[int, int] = {}
        self._to_live: dict[int, int] = {}
        #: live channels that have matched only their Channel.Open: free to move
        self.fresh: set[int] = set()
        #: every channel on its recorded number (served bytes need no restamping); kept as
        #: state, as it is read for every frame and changes only when a channel is bound
        self.identity = True

    def recorded(self, live: int) -> int:
        return self._to_rec.get(live, live)

    def live(self, recorded: int) -> int:
        return self._to_live.get(recorded, recorded)

    def bound(self, live: int) -> bool:
        return live in self._to_rec

    def holder(self, recorded: int) -> int | None:
        """The live channel bound to a recorded one (None: no live channel is)."""
        return self._to_live.get(recorded)

    def bind(self, live: int, recorded: int) -> None:
        old = self._to_rec.get(live)
        if old is not None and self._to_live.get(old) == live:
            del self._to_live[old]
        self._to_rec[live] = recorded
        self._to_live[recorded] = live
        self.identity = all(live == rec for live, rec in self._to_rec.items())

    def swap(self, live: int, recorded: int) -> None:
        """Bind `live` to `recorded`; the live channel that held `recorded` takes the one
        `live` had."""
        mine = self.recorded(live)
        other = self.holder(recorded)
        self.bind(live, recorded)
        if other is not None and other != live:
            self.bind(other, mine)
        elif self._to_live.get(mine) == live:
            del self._to_live[mine]

    def restamp(self, raw: bytes) -> bytes:
        """A recorded frame with the live channel number of its recorded channel."""
        if len(raw) < 7 or raw[:1] == b"A":  # a protocol header has no channel
            return raw
        recorded = frame_channel(raw)
        live = self._to_live.get(recorded, recorded)
        return raw if live == recorded else raw[:1] + live.to_bytes(2, "big") + raw[3:]
