"""Which recorded deliveries a replay holds until a publish, read from a cassette without
serving it: `rrlab inspect` shows them. The links come from each protocol's own derivation at
cassette open (`WireProtocol.delivery_causes`: AMQP's `causes`, MQTT's `plan.Causes`), run on
a replay context as `rrlab serve` builds one, so inspect shows what the fake broker would do
and nothing decides it a second time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rrlab.rr.codecs import Proto
from rrlab.rr.protocols import protocol_for

from .recording import RecFrame, Recording
from .session import Miss, PortMap, ReplayContext, ReplayOptions


@dataclass(frozen=True, slots=True)
class Wait:
    """Recorded delivery `delivery` on connection `delivery_conn` goes out only once the live
    client frame standing for `publish` (on `publish_conn`) has matched: for AMQP the frame
    that completes the Basic.Publish (its last body frame), for MQTT the client's PUBLISH."""

    proto: Proto
    delivery_conn: int
    delivery: RecFrame
    publish_conn: int
    publish: RecFrame

    def label(self, frame: RecFrame) -> str:
        """The frame's API/method/packet name."""
        return protocol_for(self.proto).label(frame.summary)

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivery": self._ref(self.delivery_conn, self.delivery),
            "publish": self._ref(self.publish_conn, self.publish),
        }

    def _ref(self, conn: int, frame: RecFrame) -> dict[str, Any]:
        return {"api": self.label(frame), "conn": conn, "index": frame.index, "seq": frame.seq}


class _Uncounted:
    """A report for a context nothing is served from."""

    notes: list[str]

    def __init__(self) -> None:
        self.notes = []

    def matched(self, proto: Any, api: str, n: int = 1) -> None:
        pass

    def synthesized(self, proto: Any, api: str, n: int = 1) -> None:
        pass

    def connection(self, proto: Any, bound: bool) -> None:
        pass

    def miss(self, miss: Miss) -> None:
        pass


def delivery_waits(recording: Recording, options: ReplayOptions | None = None) -> list[Wait]:
    """Every recorded delivery a replay of `recording` holds for a publish, in recorded order.
    `options`: the replay's (a rules file's `exact_clock_fields` change which publishes are on
    a clock, and the deliveries of those wait for nothing); default: no rules."""
    ctx = ReplayContext(recording, options or ReplayOptions(), _Uncounted(), PortMap())
    causes: dict[tuple[int, int], tuple[int, int]] = {}
    for proto in sorted({rc.proto for rc in recording.conns}, key=lambda p: p.value):
        causes.update(protocol_for(proto).delivery_causes(ctx))
    waits = [
        Wait(
            recording.conn(d_conn).proto,
            d_conn,
            recording.conn(d_conn).frames[d_index],
            p_conn,
            recording.conn(p_conn).frames[p_index],
        )
        for (d_conn, d_index), (p_conn, p_index) in causes.items()
    ]
    waits.sort(key=lambda w: w.delivery.seq)
    return waits
