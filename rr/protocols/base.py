"""What every protocol object offers (`WireProtocol`), and the parts they share.

A protocol object is the one place the recorder, `rrlab inspect` and the replayer get anything
protocol-specific from: framer, per-connection decoder, redaction, a frame's short name and
description, the key under which a summary's encoding may be cached, its replay match-key rules
(`normalize`) and its replay session. Every part is required: a class attribute left out is a
TypeError when the subclass is defined, an abstract method left out one when the protocol object
is made, both at import (never a KeyError at record or inspect time).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Hashable, Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from rrlab.rr.codecs import (
    DEFAULT_MAX_FRAME_BYTES,
    Decoded,
    Decoder,
    Direction,
    Framer,
    JsonSummary,
    Proto,
)
from rrlab.rr.diff import value_of

if TYPE_CHECKING:
    from rrlab.rr.replay.recording import Role
    from rrlab.rr.replay.session import Link, Listener, ReplayContext, Session

    from .pipeline import FrameConnection

#: a recorded frame: (recorded connection id, frame index within that connection)
FrameRef = tuple[int, int]
#: summary -> a hashable key that stands for its encoding exactly, or None (see `summary_cache_key`)
CacheKey = Callable[[Mapping[str, Any]], tuple[Any, ...] | None]
#: raw frame -> its spliced summary, or None: decode it (see `WireProtocol.frame_splicer`)
Splicer = Callable[[bytes], JsonSummary | None]


class Description(NamedTuple):
    """What a frame is (`what`: API/method/packet, with a version) and the ids that place it
    (`ids`: correlation id, channel, packet id). `str()` gives the one line."""

    what: str
    ids: str

    def __str__(self) -> str:
        return f"{self.what} {self.ids}".rstrip()


#: class attributes every protocol sets (checked when its class is defined)
REQUIRED_ATTRIBUTES = ("proto", "label_keys", "framer_cls", "decoder_cls", "redact", "normalize")


class WireProtocol(abc.ABC):
    """The interface of a protocol object: class attributes (`REQUIRED_ATTRIBUTES`) and the
    abstract methods below; the rest has defaults each protocol may override."""

    proto: Proto
    #: summary keys naming a frame, most specific first (`label`)
    label_keys: tuple[str, ...]
    #: a function keying the summaries whose encoding repeats (None: nothing cached)
    summary_cache_key: CacheKey | None = None
    #: summary -> its exact canonical JSON from a template, for shapes that recur but for a
    #: field or two (a packet id, a sequence header), or None (see `format.summary_encoder`);
    #: tried for summaries `summary_cache_key` has no key for (None: none)
    summary_fast_json: Callable[[Mapping[str, Any]], bytes | None] | None = None
    #: raw frame -> a hashable key, or None: frames of one direction with equal keys decode to
    #: equal summaries whatever came before them on the connection and hold no credential, so
    #: the recorder decodes, redacts and encodes each distinct one once (None: none repeat)
    frame_memo_key: Callable[[bytes], Hashable | None] | None = None
    #: frame_splicer(direction, decoder) makes, per direction of a connection (`decoder`: the
    #: connection's, for a protocol whose summaries depend on what came before, e.g. Kafka's
    #: request/response pairing), raw frame -> its summary (a `JsonSummary`) or None: for
    #: frames that repeat but for one number (a delivery tag, a correlation id), whose summary
    #: and encoding are spliced from the first one's; such a frame holds no credential, and
    #: the splice changes `decoder`'s state as decoding the frame would. It may make None for
    #: a direction where nothing splices (None here: none anywhere)
    frame_splicer: Callable[[Direction, Decoder], Splicer | None] | None = None

    #: the framer class (one instance per direction of a connection) and the decoder class
    framer_cls: Callable[[Direction, int], Framer]
    decoder_cls: Callable[[], Decoder]

    def framer(
        self, direction: Direction | str, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    ) -> Framer:
        """A fresh incremental framer for one direction of one connection."""
        return self.framer_cls(Direction(direction), max_frame_bytes)

    def decoder(self) -> Decoder:
        """A fresh decoder for one connection (both directions)."""
        return self.decoder_cls()

    #: redact(direction, raw, decoded, decoder) -> (raw, decoded): credentials out of one frame
    #: (`rr.protocols.<proto>.redact`), the summary re-read by the connection's `decoder`;
    #: frames without credentials come back as the same objects
    redact: Callable[[Direction, bytes, Decoded, Decoder | None], tuple[bytes, Decoded]]

    def connection(
        self, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, redact: bool = True
    ) -> FrameConnection:
        """The frame pipeline of one connection: bytes -> frames -> decoded -> redacted."""
        from .pipeline import FrameConnection

        return FrameConnection(self, max_frame_bytes=max_frame_bytes, redact=redact)

    #: the protocol's replay match-key rules (`rr.protocols.<proto>.normalize`)
    normalize: ModuleType

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [name for name in REQUIRED_ATTRIBUTES if not hasattr(cls, name)]
        if missing:
            raise TypeError(f"protocol {cls.__name__} does not set {', '.join(missing)}")

    def rewriter(self, conn: FrameConnection, node_map: Any, on_event: Any = None) -> Any:
        """What rewrites broker addresses in `conn`'s responses as the proxy forwards them (a
        protocol whose brokers advertise addresses: Kafka), or None."""
        return None

    # -- replay ------------------------------------------------------------------------------

    @abc.abstractmethod
    def session(self, ctx: ReplayContext, listener: Listener, link: Link) -> Session:
        """The sans-IO replay session of one live connection (`rr.replay.session`)."""

    def prepare(self, ctx: ReplayContext) -> None:
        """State shared by every live connection of one run, built before listening (e.g.
        Kafka's partition logs); a recording it cannot model raises. None by default."""
        return None

    def delivery_causes(self, ctx: ReplayContext) -> Mapping[FrameRef, FrameRef]:
        """Each recorded delivery (a broker push) a replay holds until the live publish that
        produced it in the recording has matched -> that publish's frame, both as (recorded
        connection, frame index): the links `prepare` derived (run here if it was not), read
        by `rrlab inspect`. Empty by default (Kafka serves consumers from its partition logs)."""
        return {}

    @abc.abstractmethod
    def is_liveness(self, summary: Mapping[str, Any]) -> bool:
        """A client frame sent on a clock (heartbeats, pings, polls): never reported unused."""

    @abc.abstractmethod
    def role(self, summary: Mapping[str, Any]) -> Role:
        """What a recorded client frame stands for if the live command never sends it
        (`rr.protocols.<proto>.roles.client_role`): behaviour (a miss in every profile),
        liveness or closing (never reported), setup (fails only a strict profile)."""

    @abc.abstractmethod
    def is_closing(self, summary: Mapping[str, Any]) -> bool:
        """A graceful close (MQTT DISCONNECT, AMQP Connection/Channel.Close, Kafka LeaveGroup):
        how a client tears down is not behaviour, a recorded one it skipped is never reported
        unused."""

    # -- inspect -------------------------------------------------------------------------------

    def label(self, summary: Mapping[str, Any]) -> str:
        """A short, low-cardinality name for a frame (metrics): API, method, packet type."""
        for key in self.label_keys:
            value = summary.get(key)
            if value and isinstance(value, str):  # absent keys (the usual miss) stop at `value`
                return value
        return "unknown"

    @abc.abstractmethod
    def detail(self, summary: Mapping[str, Any]) -> str:
        """What the decoder knows of a frame beyond its name and ids, for `rrlab inspect`
        (topics and record counts, exchange and routing key, topic and QoS); "" if nothing."""

    def payload(self, summary: Mapping[str, Any], raw: bytes) -> bytes:
        """The message body where the protocol frames one (`rrlab inspect --payload`), else the
        whole frame as recorded."""
        return raw

    def payload_lines(
        self, direction: Direction, summary: Mapping[str, Any], raw: bytes
    ) -> list[str] | None:
        """A frame's messages as lines for a person (`inspect --payload text`) where one frame
        holds many (Kafka records: key, headers and value each); None: `payload` is the text."""
        return None

    def content(
        self, direction: Direction, summary: Mapping[str, Any], raw: bytes
    ) -> dict[str, Any]:
        """A frame as a value for `rrlab diff` (`rr.cassette_diff`): its summary and, where the
        protocol frames a message body, that body by `rr.diff.value_of` (never raw bytes:
        ids, timestamps and checksums inside them are not what a reviewer compares)."""
        view: dict[str, Any] = {"summary": dict(summary)}
        body = self.payload(summary, raw)
        if body is not raw:
            view["payload"] = value_of(body)
        return view

    @abc.abstractmethod
    def describe(self, summary: Mapping[str, Any]) -> Description:
        """(what, ids) of one frame for `rrlab inspect`; a summary of an unknown shape gives
        whatever is there (`describe_any`)."""


def describe_any(summary: Mapping[str, Any]) -> Description:
    """The fallback: a name from the usual keys, up to two scalar `...id` fields."""
    s = summary
    keys = ("api", "method", "packet", "type", "frame", "kind")
    what = next((str(s[k]) for k in keys if k in s), "?")
    ids = [f"{k}={s[k]}" for k in sorted(s) if k.endswith("id") and _scalar(s[k])][:2]
    return finish(s, what, ids)


def finish(summary: Mapping[str, Any], what: str, ids: Iterable[str]) -> Description:
    if "error" in summary:
        what += " (undecoded)"
    return Description(what, " ".join(ids))


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"
