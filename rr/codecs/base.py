"""Types every framer and decoder shares."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


class Direction(enum.StrEnum):
    """Which way a frame travelled."""

    C2S = "c2s"  # client to server
    S2C = "s2c"  # server to client


class Proto(enum.StrEnum):
    KAFKA = "kafka"
    AMQP = "amqp"
    MQTT = "mqtt"


#: Default largest frame a framer accepts before refusing (bytes). Policies may lower it.
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024


class FramingError(ValueError):
    """A byte stream that cannot be split into frames. Says where, so a person can find it.

    `frames` holds the whole frames that the failing `feed()` call completed before the bad
    byte (they were valid and crossed the wire, so a recorder still writes them).
    """

    def __init__(
        self,
        proto: str,
        direction: str,
        offset: int,
        reason: str,
        frames: list[Frame] | None = None,
    ) -> None:
        self.proto = proto
        self.direction = direction
        self.offset = offset
        self.reason = reason
        self.frames: list[Frame] = frames or []
        super().__init__(f"{proto} {direction} stream, byte offset {offset}: {reason}")


@dataclass(frozen=True, slots=True)
class Frame:
    """One whole wire frame, exactly as it crossed the wire."""

    raw: bytes
    offset: int  # stream offset of the frame's first byte


@dataclass(slots=True)
class Decoded:
    """What a decoder makes of a frame: a JSON-able summary plus, where possible, a typed body."""

    summary: dict[str, Any]
    body: Any = None
    redacted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _read_only(self: Any, *args: Any, **kwargs: Any) -> Any:
    raise TypeError("a JsonSummary is read-only (its `json` is what it holds): copy it to edit it")


class JsonSummary(dict):
    """A frame summary that carries its own canonical JSON (`json`), made without an encoder
    (e.g. spliced from a template: `rr.protocols.amqp.codec.DeliveryTagSummaries`): read-only, so
    the two never differ. A cassette writer's encoder takes `json` as it is (`rr.record`)."""

    __slots__ = ("json",)
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __init__(self, summary: dict[str, Any], json: bytes) -> None:
        dict.__init__(self, summary)
        self.json = json


class Framer(Protocol):
    """Incremental splitter: feed any chunking of a stream, get the same whole frames."""

    def feed(self, data: bytes) -> list[Frame]: ...

    @property
    def buffered(self) -> int: ...
