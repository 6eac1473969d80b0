"""migrate: rewrite a format 1 or 2 cassette as the current format 3 (frame times out of the
frame lines, into frames.timing; the frames' bytes out of them, into frames.raw), so its next
re-recording diffs line by line against it and it takes about its wire bytes, not 1.5 to 7
times them.

Only a whole cassette is rewritten: it is opened as a replay opens it (every digest, line and
artifact checked), under its writer lock. The frames, connections and artifacts stay the same,
so replaying it gives the same run. The new files go in by atomic renames, the manifest last;
a crash before that leaves the old manifest, whose digest then refuses the new frames.jsonl
(record it again, or restore it from version control). Migrating twice changes nothing.

`--compact` stores a cassette compacted (format 4, compact.py), `--expand` gives back a compacted
one's plain format 3 files, byte for byte the ones it was compacted from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from rrlab.rr.canonical import dumps_line

from .compact import compact, expand
from .format import (
    FORMAT,
    FORMAT_V4,
    FRAMES_NAME,
    GITATTRIBUTES,
    GITATTRIBUTES_NAME,
    MANIFEST_NAME,
    RAW_NAME,
    TIMING_NAME,
    Manifest,
    timing_line,
)
from .lock import WriterLock
from .reader import CassetteReader


@dataclass(frozen=True, slots=True)
class MigrateReport:
    path: Path
    found: str  # the format it had
    frames: int
    frames_bytes_before: int
    frames_bytes_after: int
    result: str = FORMAT  # the format it has now

    @property
    def migrated(self) -> bool:
        return self.found != self.result

    def summary(self) -> str:
        if not self.migrated:
            return f"{self.path}: already {self.result}, unchanged"
        if self.result == FORMAT_V4:
            return f"{self.path}: {self.found} -> {self.result}, {self.frames} frames, compacted"
        if self.found == FORMAT_V4:
            return (
                f"{self.path}: {self.found} -> {self.result}, {self.frames} frames, expanded "
                f"to the plain {FRAMES_NAME}, {RAW_NAME} and {TIMING_NAME}"
            )
        return (
            f"{self.path}: {self.found} -> {self.result}, {self.frames} frames; {FRAMES_NAME} "
            f"{self.frames_bytes_before} -> {self.frames_bytes_after} bytes, times in "
            f"{TIMING_NAME}, bytes in {RAW_NAME}"
        )


def migrate(path: str | os.PathLike[str], storage: str | None = None) -> MigrateReport:
    """Rewrite the cassette at `path` in the current format (nothing to do if it is already);
    `storage` "compact" stores it compacted (format 4), "plain" gives back a compacted one's
    plain format 3 files, None keeps how it is stored. The CassetteError of
    `CassetteReader.open` if it is not a whole, finalized cassette."""
    if storage not in (None, "compact", "plain"):
        raise ValueError(f"storage must be compact, plain or None, not {storage!r}")
    target = Path(path)
    with WriterLock.acquire(target), CassetteReader.open(target) as reader:
        manifest = found = reader.manifest
        root = reader.root
        if manifest.compacted and storage == "plain":
            manifest = expand(root, manifest)
        elif manifest.format not in (FORMAT, FORMAT_V4):
            manifest = _rewrite(reader)
        if storage == "compact" and not manifest.compacted:
            manifest = compact(root, manifest)
        return MigrateReport(
            target,
            found.format,
            found.frame_count,
            found.frames_file_bytes,
            manifest.frames_file_bytes,
            manifest.format,
        )


def _rewrite(reader: CassetteReader) -> Manifest:
    """A format 1 or 2 cassette rewritten as format 3: its new manifest."""
    manifest = reader.manifest
    frames, times, raws = bytearray(), bytearray(), bytearray()
    for frame in reader.frames():
        frames += dumps_line(frame.to_dict(sidecar=True))
        times += timing_line(frame.t_us)
        raws += frame.raw
    new = dataclasses.replace(
        manifest,
        format=FORMAT,
        frames_file_bytes=len(frames),
        frames_sha256=hashlib.sha256(frames).hexdigest(),
        timing_file_bytes=len(times),
        timing_sha256=hashlib.sha256(times).hexdigest(),
        raw_file_bytes=len(raws),
        raw_sha256=hashlib.sha256(raws).hexdigest(),
    )
    root = reader.root
    root.write_atomic(TIMING_NAME, bytes(times))
    root.write_atomic(RAW_NAME, bytes(raws))
    root.write_atomic(GITATTRIBUTES_NAME, GITATTRIBUTES)
    root.write_atomic(FRAMES_NAME, bytes(frames))
    root.write_atomic(MANIFEST_NAME, new.to_json())
    return new
