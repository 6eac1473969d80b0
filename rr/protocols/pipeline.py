"""The frame pipeline of one connection, without a cassette writer behind it:
bytes -> frames (framer per direction) -> decoded (the connection's decoder) -> redacted.

The recorder writes what comes out. The replay sessions frame and decode live client bytes with
the same framer and decoder classes (not through this pipeline: nothing is redacted or written
there), so a live frame's summary is made as the recorded one was.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, NamedTuple

from rrlab.rr.cassette.format import EncodedSummary, summary_encoder
from rrlab.rr.codecs import DEFAULT_MAX_FRAME_BYTES, Decoded, Direction

if TYPE_CHECKING:
    from .base import WireProtocol

C2S, S2C = Direction.C2S, Direction.S2C


class PipelineFrame(NamedTuple):
    """One frame through the pipeline. The first three items are what a cassette holds (the
    shape `CassetteWriter.write_frames` takes); `wire` and `decoded` are the frame as it crossed
    the wire (the same objects as `raw` and the summary's Decoded when nothing was redacted)."""

    summary: dict[str, Any]  # of `raw`: re-read from the redacted bytes when redacted
    raw: bytes  # credentials replaced
    redacted: bool
    wire: bytes
    decoded: Decoded


_frame = tuple.__new__  # PipelineFrame without NamedTuple's argument handling (hot path)
#: distinct repeating frames remembered per direction of a connection (see `_remember`)
MEMO_MAX = 1024


class FrameConnection:
    """Frames, decodes and (unless `redact=False`) redacts both directions of one connection.

    `feed(direction, data)` is the whole pipeline; `split` (framing) and `process` (decode and
    redact) are its two halves, for a caller that changes frames in between (the recorder's
    Kafka address rewrite). Framing errors raise `FramingError` (the frames completed before
    the bad byte ride on it, `err.frames`); a frame that cannot be redacted raises
    `RedactionError` (the frames before it are in `process`'s `out`).
    """

    def __init__(
        self,
        protocol: WireProtocol,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        redact: bool = True,
    ) -> None:
        self.protocol = protocol
        self.proto = protocol.proto
        self.decoder = protocol.decoder()
        self.framers = {d: protocol.framer(d, max_frame_bytes) for d in (C2S, S2C)}
        self._redact = protocol.redact if redact else None
        self._memo_key = protocol.frame_memo_key
        #: the canonical JSON of this protocol's summaries (its cache and templates): for a
        #: remembered frame's summary here, and for the cassette lines the recorder writes
        self.encode_summary = summary_encoder(
            protocol.summary_cache_key, protocol.summary_fast_json
        )
        splicer = protocol.frame_splicer
        self._splice = (
            {d: splicer(d, self.decoder) for d in (C2S, S2C)} if splicer is not None else None
        )
        self._memo: dict[Direction, dict[Hashable, tuple[EncodedSummary, Decoded]]] = {
            C2S: {},
            S2C: {},
        }

    def feed(self, direction: Direction, data: bytes) -> list[PipelineFrame]:
        """Any chunk of `direction`'s stream in; every frame it completes out, in order."""
        return self.process(direction, self.split(direction, data))

    def split(self, direction: Direction, data: bytes) -> list[bytes]:
        """Framing only: the whole frames `data` completes (bytes as on the wire)."""
        return self.framers[direction].feed_raws(data)

    def process(
        self,
        direction: Direction,
        raws: list[bytes],
        out: list[PipelineFrame] | None = None,
    ) -> list[PipelineFrame]:
        """Decode and redact whole frames of `direction`, in stream order, appending to `out`
        (so a caller still has the frames before one that raised)."""
        if out is None:
            out = []
        append = out.append
        decoder = self.decoder
        decode = decoder.decode
        redact = self._redact
        memo_key = self._memo_key
        memo = self._memo[direction]
        splice = self._splice[direction] if self._splice is not None else None
        key = None
        for raw in raws:
            if memo_key is not None:
                key = memo_key(raw)
                if key is not None:
                    hit = memo.get(key)
                    if hit is not None:  # decoded, redacted (nothing) and encoded before
                        append(_frame(PipelineFrame, (hit[0], raw, False, raw, hit[1])))
                        continue
            if splice is not None:
                spliced = splice(raw)
                if spliced is not None:  # a repeat but for one number: nothing to redact
                    append(_frame(PipelineFrame, (spliced, raw, False, raw, Decoded(spliced))))
                    continue
            decoded = decode(direction, raw)
            if redact is None:
                summary = decoded.summary
                append(_frame(PipelineFrame, (summary, raw, decoded.redacted, raw, decoded)))
            else:
                new, final = redact(direction, raw, decoded, decoder)
                append(
                    _frame(
                        PipelineFrame,
                        (final.summary, new, decoded.redacted or final.redacted, raw, decoded),
                    )
                )
            if key is not None and out[-1][1] is raw and not out[-1][2]:
                self._remember(memo, key, decoded)
        return out

    def _remember(
        self, memo: dict[Hashable, tuple[EncodedSummary, Decoded]], key: Hashable, decoded: Decoded
    ) -> None:
        """Keep a repeating frame's summary, encoded, for the next frame with its key (the
        frame it came from was written unchanged: nothing redacted). Bounded: cleared when
        full."""
        if "error" in decoded.summary:
            return
        if len(memo) >= MEMO_MAX:
            memo.clear()
        summary = EncodedSummary(decoded.summary, self.encode_summary)
        memo[key] = (summary, Decoded(summary, body=decoded.body, extra=decoded.extra))

    def buffered(self, direction: Direction) -> int:
        """Bytes of `direction` waiting for the rest of a frame."""
        return self.framers[direction].buffered
