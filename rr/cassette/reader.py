"""CassetteReader: open a finalized cassette (format and digest checked), stream its frames.

Nothing is loaded whole: the digest is hashed in 1 MiB chunks and frames are decoded line by line,
so a cassette near the byte budget costs one frame of memory at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from collections.abc import Iterator
from pathlib import Path

from .errors import (
    CassetteNotFound,
    DigestMismatch,
    MalformedManifest,
    NotFinalized,
    TruncatedFrames,
)
from .format import (
    FRAMES_NAME,
    MANIFEST_NAME,
    FrameRecord,
    Manifest,
    decode_frame_line,
)

CHUNK = 1 << 20


def load_manifest(path: str | os.PathLike[str], *, require_finalized: bool = True) -> Manifest:
    """Read cassette.json; the errors say whether the cassette is absent, crashed or foreign."""
    root = Path(path)
    if not root.is_dir():
        raise CassetteNotFound(root, "no such cassette directory")
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        if (root / FRAMES_NAME).is_file():
            raise NotFinalized(root, f"{MANIFEST_NAME} is missing")
        raise CassetteNotFound(root, f"not a cassette ({MANIFEST_NAME} and {FRAMES_NAME} missing)")
    try:
        data = json.loads(manifest_path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedManifest(manifest_path, f"not JSON ({exc})") from None
    manifest = Manifest.from_dict(data, path=manifest_path)
    if require_finalized and not manifest.finalized:
        raise NotFinalized(root, "manifest says finalized: false")
    return manifest


def file_sha256(path: Path) -> tuple[str, int]:
    """(hex sha256, size) of a file, hashed in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line without newline); a last line lacking its newline is torn."""
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.endswith(b"\n"):
                raise TruncatedFrames(path, lineno, len(line))
            yield lineno, line[:-1]


class CassetteReader:
    """A finalized cassette, opened for reading. Use `CassetteReader.open(path)`."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, check_digest: bool = True) -> CassetteReader:
        """Check the format version, that it was finalized, and the frames.jsonl digest."""
        root = Path(path)
        manifest = load_manifest(root)
        frames_path = root / FRAMES_NAME
        if not frames_path.is_file():
            raise CassetteNotFound(frames_path, f"{FRAMES_NAME} is missing")
        if check_digest:
            actual, _size = file_sha256(frames_path)
            if actual != manifest.frames_sha256:
                raise DigestMismatch(root, FRAMES_NAME, manifest.frames_sha256, actual)
        return cls(root, manifest)

    def frames(self) -> Iterator[FrameRecord]:
        """Every frame in seq order, decoded (raw as bytes). Streams; safe on large cassettes."""
        frames_path = self.path / FRAMES_NAME
        for lineno, line in iter_lines(frames_path):
            yield decode_frame_line(line, path=str(frames_path), lineno=lineno)

    def frames_for(self, conn: int) -> Iterator[FrameRecord]:
        """The frames of one connection, both directions, in seq order (one scan per call; for
        many connections build a `FrameIndex` once with `index()`)."""
        return (f for f in self.frames() if f.conn == conn)

    def index(self) -> FrameIndex:
        """One pass over frames.jsonl: where each connection's lines start (8 bytes a frame)."""
        return FrameIndex.build(self.path / FRAMES_NAME)


_CONN_PREFIX = b'{"conn":'


class FrameIndex:
    """Byte offsets of every frame line, per connection, so one connection's frames are read
    without rescanning the file and without holding any frame in memory.

    Frame lines start with `{"conn":N,` (keys are in code-point order), so the scan reads that
    integer only; each frame is parsed in full (and checked) when `frames_of` reaches it.
    """

    def __init__(self, path: Path, offsets: dict[int, array], lines: dict[int, array]) -> None:
        self.path = path
        self._offsets = offsets
        self._lines = lines  # line numbers, for errors that say where

    @classmethod
    def build(cls, path: Path) -> FrameIndex:
        offsets: dict[int, array] = {}
        lines: dict[int, array] = {}
        position = 0
        with open(path, "rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.endswith(b"\n"):
                    raise TruncatedFrames(path, lineno, len(line))
                conn = _line_conn(line, path, lineno)
                slot = offsets.get(conn)
                if slot is None:
                    slot = offsets[conn] = array("q")
                    lines[conn] = array("q")
                slot.append(position)
                lines[conn].append(lineno)
                position += len(line)
        return cls(path, offsets, lines)

    @property
    def connections(self) -> list[int]:
        return sorted(self._offsets)

    def count(self, conn: int) -> int:
        return len(self._offsets.get(conn, ()))

    def read(self, conn: int, position: int) -> FrameRecord:
        """Frame number `position` (from 0) of connection `conn`, read on its own."""
        offsets = self._offsets.get(conn)
        if offsets is None or not 0 <= position < len(offsets):
            raise IndexError(f"connection {conn} has no frame {position}")
        with open(self.path, "rb") as fh:
            fh.seek(offsets[position])
            line = fh.readline()
        return decode_frame_line(line, path=str(self.path), lineno=self._lines[conn][position])

    def frames_of(self, conn: int) -> Iterator[FrameRecord]:
        """The frames of `conn` in seq order, read and decoded one at a time."""
        offsets = self._offsets.get(conn)
        if not offsets:
            return
        path = str(self.path)
        with open(self.path, "rb") as fh:
            for offset, lineno in zip(offsets, self._lines[conn], strict=True):
                fh.seek(offset)
                yield decode_frame_line(fh.readline(), path=path, lineno=lineno)


def _line_conn(line: bytes, path: Path, lineno: int) -> int:
    """The connection id at the head of a frame line (full validation comes at decode)."""
    if not line.startswith(_CONN_PREFIX):
        return decode_frame_line(line, path=str(path), lineno=lineno).conn
    end = line.find(b",", len(_CONN_PREFIX))
    try:
        return int(line[len(_CONN_PREFIX) : end])
    except ValueError:
        return decode_frame_line(line, path=str(path), lineno=lineno).conn
