"""The buffer bookkeeping every incremental framer shares: bytes in, whole frames out."""

from __future__ import annotations

from .base import DEFAULT_MAX_FRAME_BYTES, Direction, Frame, FramingError, Proto


class BufferedFramer:
    """Accumulates bytes and cuts frames; subclasses only say how long the next frame is.

    `_frame_length(buf, start, offset)` returns the length of the frame beginning at `buf[start]`
    (stream offset `offset`) once enough header bytes are present, or None to wait for more.
    It must raise (via `_error`) before a huge frame is buffered, so memory stays bounded by
    the header size plus `max_frame_bytes`.
    """

    proto: Proto

    def __init__(
        self, direction: Direction, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    ) -> None:
        self.direction = Direction(direction)
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._offset = 0  # stream offset of _buf[0]
        self._failed: FramingError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet emitted as a frame."""
        return self._offset

    def _error(self, at: int, reason: str) -> FramingError:
        """Build the error for stream offset `at` and poison the framer (a stream stays broken)."""
        err = FramingError(self.proto.value, self.direction.value, at, reason)
        self._failed = err
        self._buf.clear()  # nothing more will be framed; release the memory
        return err

    def _frame_length(
        self, buf: bytearray, start: int, offset: int
    ) -> int | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_frame(self, raw: bytes, offset: int) -> None:
        """Hook: validate a whole frame (e.g. a trailer octet). Raise via `_error`."""

    def feed(self, data: bytes) -> list[Frame]:
        """Add `data`; return every frame completed by it, in stream order.

        On a framing error the frames this call completed before the bad byte ride on the
        error (`err.frames`); a later call raises the same error again, without them.
        """
        if self._failed is not None:
            f = self._failed
            raise FramingError(f.proto, f.direction, f.offset, f.reason)
        self._buf += data
        frames: list[Frame] = []
        pos = 0
        try:
            while pos < len(self._buf):
                length = self._frame_length(self._buf, pos, self._offset)
                if length is None or len(self._buf) - pos < length:
                    break
                raw = bytes(self._buf[pos : pos + length])
                self._check_frame(raw, self._offset)
                frames.append(Frame(raw=raw, offset=self._offset))
                self._offset += length
                pos += length
        except FramingError as err:
            err.frames = frames
            raise
        finally:
            if self._failed is None:
                del self._buf[:pos]
        return frames
