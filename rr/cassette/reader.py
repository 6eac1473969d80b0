"""CassetteReader: open a finalized cassette (format and digest checked), stream its frames.

Nothing is loaded whole: the digest is hashed in 1 MiB chunks and frames are decoded line by line,
so a cassette near the byte budget costs one frame of memory at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
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
    ARTIFACTS_DIR,
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
        """The frames of one connection, both directions, in seq order."""
        return (f for f in self.frames() if f.conn == conn)

    def artifact_path(self, name: str) -> Path:
        """Where the recorded artifact `name` (a key of manifest.artifacts) lives."""
        if name not in self.manifest.artifacts:
            raise KeyError(f"no artifact {name!r} in {self.path}")
        return self.path / ARTIFACTS_DIR / name
