"""The buffer bookkeeping every incremental framer shares: bytes in, whole frames out."""

from __future__ import annotations

from .base import DEFAULT_MAX_FRAME_BYTES, Direction, Frame, FramingError, Proto

#: a pending frame at least this long keeps its chunks as they came (see `BufferedFramer`)
LARGE_FRAME = 1 << 16


class BufferedFramer:
    """Accumulates bytes and cuts frames; subclasses only say how long the next frame is.

    `_frame_length(buf, start, offset)` returns the length of the frame beginning at `buf[start]`
    (stream offset `offset`) once enough header bytes are present, or None to wait for more.
    `buf` is bytes or a bytearray. It must raise (via `_error`) before a huge frame is buffered,
    so memory stays bounded by the header size plus `max_frame_bytes`.

    The hot path (`feed_raws`) copies each frame's bytes once: straight out of the received
    chunk when no partial frame is pending (a chunk that is exactly one frame is not copied at
    all), out of the buffer through a memoryview otherwise. While the pending frame is known to
    be longer than what is buffered, a chunk is only appended; for a frame of `LARGE_FRAME`
    bytes or more it is not even copied (kept in a list), and the chunk that completes it joins
    them: the frame's bytes are copied once, not appended then sliced out again.
    """

    proto: Proto

    def __init__(
        self, direction: Direction, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    ) -> None:
        self.direction = Direction(direction)
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._offset = 0  # stream offset of _buf[0]
        self._need = 0  # length of the frame at _buf[0], once known (0: not known)
        self._parts: list[bytes] = []  # chunks of a large pending frame after _buf (not copied)
        self._parts_len = 0
        self._failed: FramingError | None = None
        cls = type(self)
        self._check = self._check_frame if cls._check_frame is not _BASE_CHECK else None
        self._run = self._run_frames if cls._run_frames is not _BASE_RUN else None

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf) + self._parts_len

    def held(self) -> memoryview:
        """The bytes held of the unfinished frame (read-only; valid until the next `feed`)."""
        if self._parts:
            return memoryview(b"".join((self._buf, *self._parts))).toreadonly()
        return memoryview(self._buf).toreadonly()

    def release(self) -> None:
        """Let go of the unfinished frame: its connection is gone and nothing more is fed. Its
        bytes go now, not when the garbage collector gets to whatever holds this framer in a
        cycle (the proxy's pair and its sides). New buffers, not clear(): a view from `held`
        may still be alive."""
        self._buf = bytearray()
        self._need = 0
        self._parts = []
        self._parts_len = 0

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet emitted as a frame."""
        return self._offset

    def _error(self, at: int, reason: str) -> FramingError:
        """Build the error for stream offset `at` and poison the framer (a stream stays broken)."""
        err = FramingError(self.proto.value, self.direction.value, at, reason)
        self._failed = err
        self._buf = bytearray()  # nothing more will be framed; release the memory (not clear():
        self._need = 0  # feed_raws may hold a memoryview of the old buffer)
        self._parts = []
        self._parts_len = 0
        return err

    def _frame_length(
        self, buf: bytes | bytearray, start: int, offset: int
    ) -> int | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_frame(self, raw: bytes, offset: int) -> None:
        """Hook: validate a whole frame (e.g. a trailer octet). Raise via `_error`."""

    def _run_frames(
        self,
        src: bytes | bytearray,
        view: memoryview | None,
        pos: int,
        end: int,
        offset: int,
        raws: list[bytes],
    ) -> int:
        """Hook, the fast path: append the ordinary whole frames from `src[pos]` (stream offset
        `offset`) up to `end` to `raws` in one loop (slice `src`, or `view` when not None);
        return where it stopped. Anything unusual (a partial frame, a bad or special header)
        it leaves to `_frame_length` and `_check_frame`, which decide and raise."""
        return pos

    def feed(self, data: bytes) -> list[Frame]:
        """Add `data`; return every frame completed by it, in stream order.

        On a framing error the frames this call completed before the bad byte ride on the
        error (`err.frames`); a later call raises the same error again, without them.
        """
        offset = self._offset
        frames = []
        for raw in self.feed_raws(data):
            frames.append(Frame(raw=raw, offset=offset))
            offset += len(raw)
        return frames

    def feed_raws(self, data: bytes) -> list[bytes]:
        """`feed`, returning only the frames' bytes (the first starts at the `offset` this call
        began with, each next one where the previous ended). `err.frames` as for `feed`."""
        if self._failed is not None:
            f = self._failed
            raise FramingError(f.proto, f.direction, f.offset, f.reason)
        buf = self._buf
        if buf:
            need = self._need
            if need >= LARGE_FRAME:
                if data.__class__ is not bytes:  # held as it came: must not change under us
                    data = bytes(data)
                have = len(buf) + self._parts_len
                if have + len(data) < need:  # still incomplete: kept, not copied
                    self._parts.append(data)
                    self._parts_len += len(data)
                    return []
                if self._parts:
                    return self._complete_large(data, need - have)
            buf += data
            if len(buf) < self._need:  # the pending frame is still incomplete
                return []
            src: bytes | bytearray = buf
        else:
            src = data
        end = len(src)
        view = None if src.__class__ is bytes else memoryview(src)
        frame_length, check, run = self._frame_length, self._check, self._run
        start = offset = self._offset
        raws: list[bytes] = []
        pos = need = 0
        try:
            while pos < end:
                if run is not None:
                    stop = run(src, view, pos, end, offset, raws)
                    offset += stop - pos
                    pos = stop
                    if pos == end:
                        break
                length = frame_length(src, pos, offset)
                if length is None:
                    break
                stop = pos + length
                if stop > end:
                    need = length
                    break
                raw = src[pos:stop] if view is None else view[pos:stop].tobytes()
                if check is not None:
                    check(raw, offset)
                raws.append(raw)
                offset += length
                pos = stop
        except FramingError as err:
            at = start
            err.frames = []
            for raw in raws:
                err.frames.append(Frame(raw=raw, offset=at))
                at += len(raw)
            raise
        finally:
            if view is not None:
                view.release()
            self._offset = offset
            if self._failed is None:
                if src is buf:
                    del buf[:pos]
                elif pos < end:
                    buf += memoryview(src)[pos:]
                self._need = need
        return raws

    def _complete_large(self, data: bytes, rest: int) -> list[bytes]:
        """The pending large frame ends `rest` bytes into `data`: join it (one copy), then frame
        what follows it as a chunk of its own."""
        offset = self._offset
        view = memoryview(data)
        try:
            raw = b"".join((self._buf, *self._parts, view[:rest]))
        finally:
            view.release()
        self._buf = bytearray()
        self._parts = []
        self._parts_len = 0
        self._need = 0
        try:
            if self._check is not None:
                self._check(raw, offset)
        except FramingError as err:
            err.frames = []
            raise
        self._offset = offset + len(raw)
        if rest == len(data):
            return [raw]
        try:
            more = self.feed_raws(data[rest:])
        except FramingError as err:
            err.frames.insert(0, Frame(raw=raw, offset=offset))
            raise
        more.insert(0, raw)
        return more


_BASE_CHECK = BufferedFramer._check_frame
_BASE_RUN = BufferedFramer._run_frames
