"""The recording glue for one proxied connection: bytes in, frames on disk, bytes out.

`ConnectionRecorder.feed(direction, data, forward)` is the one call the proxy makes per chunk; the
frames a chunk completes are written before its bytes are forwarded. Behind it:
the connection's frame pipeline (`rr.protocols.FrameConnection`: framers, decoder, redaction)
and the cassette writer (one line per frame). It returns the bytes to forward, which are `data`
itself unless a `StreamRewriter` (Kafka address rewriting) holds a frame back and replaces it;
the cassette then holds the frame the client saw.

No sockets and no Twisted here: the proxy moves bytes, this module decides what gets written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

from rrlab.rr.cassette.writer import CassetteWriteFailed
from rrlab.rr.codecs import (
    DEFAULT_MAX_FRAME_BYTES,
    Direction,
    FramingError,
    JsonSummary,
    Proto,
)
from rrlab.rr.protocols import FrameConnection, PipelineFrame, protocol_for
from rrlab.rr.protocols.kafka.rewrite import NodeMap, RewriteEvent
from rrlab.rr.redact import RedactionError

C2S, S2C = Direction.C2S, Direction.S2C


class StreamRewriter(Protocol):
    """Changes some frames of one direction (`direction`), deciding from a frame's first
    `head_bytes` bytes whether to hold it back whole."""

    direction: Direction
    head_bytes: int

    def should_hold(self, head: bytes) -> bool:
        """Given the first `head_bytes` bytes of a frame (fewer: a frame that short), whether
        it must be held and rewritten."""

    def rewrite(self, raw: bytes) -> bytes:
        """The frame to forward (and record) instead of `raw` (a frame `should_hold` held)."""


#: on_frames(proto, direction, frames): told about the recorded frames of one chunk, each a
#: sequence starting (summary, raw, redacted), once per chunk (metrics), after the chunk's bytes
#: were forwarded.
FramesHook = Callable[[Proto, Direction, Sequence[Sequence[Any]]], None]


def _encoder(encode: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """`encode`, except that a `JsonSummary` (spliced by the frame pipeline) is its own JSON."""

    def encode_summary(summary: Any) -> bytes:
        if summary.__class__ is JsonSummary:
            return summary.json
        return encode(summary)

    return encode_summary


class RecordingBroken(Exception):
    """This connection cannot be recorded faithfully any more (e.g. a framing error): close it."""


class ConnectionRecorder:
    """Frames, decodes, redacts and writes one connection, both directions.

    Only what puts a chunk's frames into the cassette file runs before its bytes are forwarded:
    the writer's digests and counts of them (`CassetteWriter.settle`) and the hooks that merely
    watch (`on_frames`, the rewrite events given to `tell_later`: metrics) are made after the
    forward, so a peer waiting for the bytes does not wait for them.
    """

    def __init__(
        self,
        writer: Any,
        conn_id: int,
        connection: FrameConnection,
        *,
        rewriter: StreamRewriter | None = None,
        on_frames: FramesHook | None = None,
    ) -> None:
        self.writer = writer
        self.conn_id = conn_id
        self.connection = connection
        self.proto = connection.proto
        self.rewriter = rewriter
        self.on_frames = on_frames
        #: hooks held for the end of the current `feed` (after its forward): (hook, argument)
        self._later: list[tuple[Callable[[Any], None], Any]] = []
        self.framers = connection.framers
        self._encode = _encoder(connection.encode_summary)
        self.received = {C2S: 0, S2C: 0}  # stream bytes seen per direction
        self.frames = {C2S: 0, S2C: 0}
        self.closed = False
        self.broken: str | None = None
        self.unwritable = False  # the cassette refused a write: nothing more is forwarded
        # hold-back state of the rewritten direction (stream offsets of that direction)
        self._fwd = 0  # forwarded (or replaced) up to here
        self._hold: bool | None = None  # decision for the frame starting at _fwd
        self._head = b""  # bytes of that frame while still undecided (< head_bytes known)
        self._head_bytes = rewriter.head_bytes if rewriter is not None else 0

    def set_rewriter(self, rewriter: StreamRewriter) -> None:
        """Rewrite `rewriter.direction` from now on (before the first chunk: `recorder_for`
        makes the rewriter after the recorder, to hand it the recorder's `tell_later`)."""
        assert not any(self.received.values()), "a rewriter is set before anything is fed"
        self.rewriter = rewriter
        self._head_bytes = rewriter.head_bytes

    # -- the one call ---------------------------------------------------------------------------

    def feed(
        self,
        direction: Direction,
        data: bytes,
        forward: Callable[[bytes], None] | None = None,
    ) -> bytes:
        """Record `data` (any chunk of `direction`'s stream); return the bytes to forward.

        With `forward`, those bytes are handed to it *after* the frames they complete reached the
        cassette file (one write(2), no fsync): a peer never receives a frame that a SIGKILL
        right after could lose. They are forwarded even when writing raises. Raises
        RecordingBroken when the stream cannot be framed (the frames before the bad byte are
        written) or a held frame cannot be rewritten (the frames before it are written and
        forwarded), and BudgetExceeded when the cassette's
        budget is used up.

        Once broken or closed, bytes pass through unrecorded, except in the rewritten direction:
        those are dropped, since unrewritten they could show the client a real broker address.
        A cassette that cannot be written (CassetteWriteFailed: disk full, I/O error) is the
        exception: the chunk whose frames failed to reach the file is not forwarded, nor is
        anything after it (the proxy closes the connection).
        """
        if self.closed or self.broken:
            if self.unwritable or getattr(self.writer, "failed", None) is not None:
                return b""
            rw = self.rewriter
            if rw is not None and direction is rw.direction:
                return b""
            if forward is not None:
                forward(data)
            return data
        try:
            return self._record(direction, data, forward)
        finally:  # after the forward, also when recording raised: the digests and counts of
            self.writer.settle()  # what was written are made, the watchers are told
            if self._later:
                self._run_later()

    def tell_later(self, hook: Callable[[Any], None], arg: Any) -> None:
        """Call `hook(arg)` at the end of the current `feed`, once its bytes went out (the
        rewriter's events only happen inside one). For hooks that watch (metrics), not ones the
        cassette or the forward depend on."""
        self._later.append((hook, arg))

    def _run_later(self) -> None:
        later = self._later
        self._later = []
        for hook, arg in later:
            hook(arg)

    def _record(
        self,
        direction: Direction,
        data: bytes,
        forward: Callable[[bytes], None] | None,
    ) -> bytes:
        """`feed` of a connection still being recorded (its hooks held for after)."""
        start = self.received[direction]
        self.received[direction] = start + len(data)
        framer = self.framers[direction]
        rw = self.rewriter
        rewrite = rw is not None and direction is rw.direction
        # stream offset of the first frame this chunk completes (the rewriter's need)
        first = framer.offset if rewrite else 0
        try:
            raws = framer.feed_raws(data)
        except FramingError as err:
            whole = [frame.raw for frame in getattr(err, "frames", ())]
            if whole:  # whole frames before the bad byte
                self._write(direction, whole)
            self.broken = f"framing error: {err}"
            raise RecordingBroken(self.broken) from err
        if not rewrite:
            out = data
        else:
            parts: list[bytes] = []
            sent: list[bytes] = []
            try:
                self._rewrite_stream(data, start, first, raws, parts, sent)
            except Exception as exc:  # the frames before the failing one still go out and in
                if isinstance(exc, CassetteWriteFailed):  # a Kafka node's manifest entry
                    self.unwritable = True
                    self.broken = f"cassette write failed: {exc.words}"
                    raise
                self.broken = f"rewrite failed: {exc}"
                self._rewrite_failed(direction, parts, sent, forward)
                if isinstance(exc, RecordingBroken):
                    raise
                raise RecordingBroken(self.broken) from exc
            out = parts[0] if len(parts) == 1 else b"".join(parts)
            raws = sent
        self._write_then_forward(direction, raws, out, forward)
        return out

    def _write_then_forward(
        self,
        direction: Direction,
        raws: list[bytes],
        out: bytes,
        forward: Callable[[bytes], None] | None,
    ) -> None:
        """Written first: what the peer gets is on disk (a frame that is not: see _write). The
        bytes go out even when writing raised, unless the cassette could not be written."""
        try:
            if raws:
                self._write(direction, raws)
        except CassetteWriteFailed as exc:
            self.unwritable = True
            self.broken = f"cassette write failed: {exc.words}"
            raise
        except BaseException:
            if forward is not None and out:
                forward(out)
            raise
        if forward is not None and out:
            forward(out)

    def _rewrite_failed(
        self,
        direction: Direction,
        parts: list[bytes],
        raws: list[bytes],
        forward: Callable[[bytes], None] | None,
    ) -> None:
        """A rewrite raised: write and forward what the chunk completed before the failing frame
        (the caller then raises; the proxy closes the connection)."""
        self._write_then_forward(direction, raws, b"".join(parts), forward)

    def _rewrite_stream(
        self,
        data: bytes,
        start: int,
        first: int,
        frames: list[bytes],
        out: list[bytes],
        raws: list[bytes],
    ) -> None:
        """What may stream through goes out at once; frames that need it are held and rewritten.

        `frames` are the whole frames `data` completed, the first at stream offset `first`.
        Appends the bytes to forward to `out` and the frames to record (as the client sees
        them) to `raws`, frame by frame: if a rewrite raises, both hold what came before it.
        """
        rw = self.rewriter
        assert rw is not None
        head_bytes = self._head_bytes
        offset = first
        for frame in frames:
            raw = frame
            if offset < self._fwd:  # streaming through already: send the rest
                out.append(raw[self._fwd - offset :])
            else:
                hold = self._hold
                if hold is None:
                    hold = rw.should_hold(raw[:head_bytes])
                if hold:
                    raw = rw.rewrite(raw)
                out.append(raw)
            offset += len(frame)
            self._fwd = offset
            self._hold = None
            self._head = b""
            raws.append(raw)
        end = start + len(data)
        buffered = self.framers[rw.direction].buffered
        if buffered:
            tail = end - buffered
            if self._fwd > tail:  # the partial frame streams through
                out.append(data[self._fwd - start :])
                self._fwd = end
            elif self._hold is None:
                self._head += data[max(0, tail - start) :]
                if len(self._head) >= head_bytes:
                    self._hold = rw.should_hold(self._head[:head_bytes])
                    if not self._hold:
                        out.append(self._head)
                        self._fwd = end
                    self._head = b""

    # -- per frame ------------------------------------------------------------------------------

    def _write(self, direction: Direction, raws: list[bytes]) -> None:
        """Decode, redact and write the frames of one chunk: one cassette write for all of them.

        A frame that cannot be redacted stops the batch: the frames before it are written, it
        and the rest are not (RecordingBroken).
        """
        batch: list[PipelineFrame] = []
        try:
            self.connection.process(direction, raws, batch)
        except Exception as exc:  # a secret we cannot remove is never written
            what = "redaction" if isinstance(exc, RedactionError) else "decoding"
            self.broken = f"{what} failed: {exc}"
            raise RecordingBroken(self.broken) from exc
        finally:
            if batch:
                self._flush(direction, batch)

    def _flush(self, direction: Direction, batch: list[PipelineFrame]) -> None:
        writer = self.writer
        before = writer.frame_count
        written = -1
        try:
            written = writer.write_frames(
                self.conn_id, direction, self.proto, batch, self._encode, settle=False
            )
        finally:
            if written < 0:  # a budget may stop the batch part way: count what reached the file
                written = writer.frame_count - before
            self.frames[direction] += written
            if self.on_frames is not None and written:  # told after the forward (feed)
                self._later.append(
                    (
                        self._tell_frames,
                        (direction, batch[:written] if written < len(batch) else batch),
                    )
                )

    def _tell_frames(self, told: tuple[Direction, list[PipelineFrame]]) -> None:
        assert self.on_frames is not None
        self.on_frames(self.proto, told[0], told[1])

    @property
    def buffered(self) -> int:
        """Bytes of unfinished frames held for this connection (both directions)."""
        framers = self.framers
        return framers[C2S].buffered + framers[S2C].buffered

    # -- the end --------------------------------------------------------------------------------

    def partial_note(self) -> str | None:
        """Bytes of unfinished frames at close (not written as frames), if any."""
        notes = [
            f"{d.value} {self.framers[d].buffered} bytes of a partial frame not recorded"
            for d in (C2S, S2C)
            if not self.broken and self.framers[d].buffered
        ]
        return "; ".join(notes) or None

    def close(self, reason: str) -> str:
        """Close the connection in the cassette and let go of its unfinished frames; returns
        the full reason written."""
        if self.closed:
            return reason
        self.closed = True
        parts = [reason]
        if self.broken and self.broken not in reason:  # each cause said once
            parts.append(self.broken)
        note = self.partial_note()
        if note:
            parts.append(note)
        full = "; ".join(parts)
        for framer in self.framers.values():  # the unfinished frames, said above, go now
            framer.release()
        if not getattr(self.writer, "finalized", False):
            self.writer.close_connection(self.conn_id, full)
        return full


def recorder_for(
    writer: Any,
    conn_id: int,
    proto: Proto | str,
    *,
    node_map: NodeMap | None = None,
    on_rewrite: Callable[[RewriteEvent], None] | None = None,
    redact: bool = True,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    on_frames: FramesHook | None = None,
) -> ConnectionRecorder:
    """A recorder wired as `rrlab proxy` wires one: the protocol's frame pipeline and, for Kafka
    with a `node_map`, the address rewriter sharing the decoder's correlation tracker."""
    protocol = protocol_for(proto)
    connection = protocol.connection(max_frame_bytes=max_frame_bytes, redact=redact)
    recorder = ConnectionRecorder(writer, conn_id, connection, on_frames=on_frames)
    if node_map is not None:
        # rewrite events are metrics: told once the rewritten frame went out
        on_event = None if on_rewrite is None else partial(recorder.tell_later, on_rewrite)
        rewriter = protocol.rewriter(connection, node_map, on_event)
        if rewriter is not None:
            recorder.set_rewriter(rewriter)
    return recorder
