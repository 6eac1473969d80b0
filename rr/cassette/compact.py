"""Compaction: readable where people read, compact where nobody does.

A frame line of a small-frame protocol (an AMQP ack, an MQTT PUBACK) is longer than the frame
itself, so no layout with one plain readable line per frame stays near the wire's bytes. The
lines are what a reviewer reads in a diff, and nobody reviews a diff of ten thousand lines: a
cassette whose frames.jsonl is over a threshold (`rr.policy.COMPACT_OVER_BYTES` by default, a
record option) is stored compacted once its recording finalized. Its frames.jsonl, frames.raw and
frames.timing are gzipped (deterministically: no name, mtime 0, a fixed level) as
frames.jsonl.gz, frames.raw.gz and frames.timing.gz; the same content, so `rrlab migrate
--expand` gives back exactly the plain format 3 files. Recording itself is unchanged (plain
appends, crash-safe): only a finalized cassette is ever compacted, so a damaged .gz is corruption,
never a crash to repair.

The manifest declares format 4 (an older rrlab refuses it: "a newer rrlab wrote it?") and, for
each file, the gzipped file's size and sha256 beside those of its plain content (`Manifest.
stored`). Readers decompress a file as a stream, a chunk of output at a time, never past the
size the manifest declares (a gzip bomb stops there) and never past the cassette budget; the
frames and their bytes go to an unlinked temporary file (frames are read back at random, by
offset), so memory stays what a plain cassette costs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from rrlab.rr.policy import Budgets

from .errors import CassetteError, CompactedDamaged, CountMismatch, DigestMismatch
from .format import (
    FORMAT,
    FORMAT_V4,
    FRAMES_NAME,
    GITATTRIBUTES,
    GITATTRIBUTES_COMPACT,
    GITATTRIBUTES_NAME,
    GZ_NAMES,
    MANIFEST_NAME,
    RAW_NAME,
    TIMING_NAME,
    Manifest,
)
from .paths import CassetteDir

#: zlib's level: 6 compresses frame lines about as well as 9 at a third of its time
GZIP_LEVEL = 6
#: gzip framing (header with no name and mtime 0, CRC-32 and size trailer)
_GZIP_WBITS = 31
CHUNK = 1 << 20
#: the order files are written in: the frame lines last, like a recording
_NAMES = (TIMING_NAME, RAW_NAME, FRAMES_NAME)


def should_compact(frames_file_bytes: int, over: int | None) -> bool:
    """Whether a cassette with `frames_file_bytes` of frame lines is stored compacted when the
    threshold is `over` (None: never; 0: always)."""
    if over is None:
        return False
    return frames_file_bytes > over or over == 0


def declared_over_budget(manifest: Manifest, budgets: Budgets | None) -> tuple[int, int] | None:
    """(declared bytes, limit) when a compacted cassette's frame lines and sidecar would
    decompress past the cassette budget (the reader's, lowered by the cassette's own), else None."""
    limit = min((budgets or Budgets()).max_cassette_bytes, manifest.budgets.max_cassette_bytes)
    declared = manifest.frames_file_bytes + (manifest.raw_file_bytes or 0)
    return (declared, limit) if declared > limit else None


def check_declared(root: CassetteDir, manifest: Manifest, budgets: Budgets | None) -> None:
    """A compacted cassette's declared frame lines and bytes fit the cassette budget: what
    decompressing them may write at most."""
    if over := declared_over_budget(manifest, budgets):
        declared, limit = over
        raise CassetteError(
            root.path,
            f"compacted frames declare {declared} bytes, over the cassette budget this rrlab "
            f"reads ({limit} bytes, lowered by the cassette's own): refused before "
            "decompressing (a manifest cannot raise it, like the frame budget). If you trust "
            "it, `rrlab migrate --expand` gives back its plain files, which are read at any size",
        )


def _gz_chunks(root: CassetteDir, name: str) -> Iterator[bytes]:
    fd = root.open(GZ_NAMES[name])
    try:
        offset = 0
        while chunk := os.pread(fd, CHUNK, offset):
            offset += len(chunk)
            yield chunk
    finally:
        os.close(fd)


def check_stored(root: CassetteDir, manifest: Manifest, name: str) -> None:
    """The gzipped file of `name` has the size and sha256 the manifest gives it."""
    size, expected = (manifest.stored or {})[name]
    digest, actual_size = hashlib.sha256(), 0
    try:
        for chunk in _gz_chunks(root, name):
            digest.update(chunk)
            actual_size += len(chunk)
    except FileNotFoundError:
        raise CompactedDamaged(root.path, GZ_NAMES[name], "it is missing") from None
    if digest.hexdigest() != expected:
        raise DigestMismatch(root.path, GZ_NAMES[name], expected, digest.hexdigest())
    if actual_size != size:
        raise CountMismatch(root.path, f"{GZ_NAMES[name]} size", size, actual_size)


def inflate(
    root: CassetteDir, manifest: Manifest, name: str, *, check_digest: bool = True
) -> Iterator[bytes]:
    """The plain content of compacted file `name`, a chunk (at most CHUNK bytes) at a time:
    never more than its declared size (one byte past it and CompactedDamaged is raised: a
    gzip bomb costs a chunk of memory, no more). With `check_digest` the gzipped file is checked
    against its digest first and the plain content against its own at the end."""
    if check_digest:
        check_stored(root, manifest, name)
    limit, expected = manifest.plain_file(name)
    gz = GZ_NAMES[name]
    inflater = zlib.decompressobj(_GZIP_WBITS)
    digest = hashlib.sha256() if check_digest else None
    total = 0

    def take(data: bytes) -> bytes:
        """Output of at most CHUNK bytes for `data` (b"": what zlib still holds)."""
        nonlocal total
        if inflater.eof and data:
            raise CompactedDamaged(root.path, gz, "bytes after the end of its gzip stream")
        out = inflater.decompress(data, CHUNK)
        total += len(out)
        if total > limit:
            raise CompactedDamaged(
                root.path, gz, f"it decompresses past the {limit} bytes its manifest says"
            )
        if digest is not None:
            digest.update(out)
        return out

    try:
        for data in _gz_chunks(root, name):
            while data:
                if out := take(data):
                    yield out
                data = inflater.unused_data or inflater.unconsumed_tail
        while not inflater.eof and (out := take(b"")):  # output held when a chunk filled up
            yield out
    except FileNotFoundError:
        raise CompactedDamaged(root.path, gz, "it is missing") from None
    except zlib.error as exc:
        raise CompactedDamaged(root.path, gz, f"not a valid gzip stream ({exc})") from None
    if not inflater.eof:
        raise CompactedDamaged(root.path, gz, "its gzip stream ends early (truncated)")
    if total != limit:
        raise CompactedDamaged(
            root.path, gz, f"it decompresses to {total} bytes, its manifest says {limit}"
        )
    if digest is not None and digest.hexdigest() != expected:
        raise DigestMismatch(root.path, f"{name} (in {gz})", expected, digest.hexdigest())


def inflate_to_file(
    root: CassetteDir, manifest: Manifest, name: str, *, check_digest: bool = True
) -> BinaryIO:
    """`inflate` into an unlinked temporary file (read by offset like the plain file would be),
    positioned at its start; the caller closes it."""
    tmp = tempfile.TemporaryFile(prefix="rrlab-cassette-", buffering=0)  # noqa: SIM115
    try:
        fd = tmp.fileno()
        for chunk in inflate(root, manifest, name, check_digest=check_digest):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        tmp.close()
        raise
    return tmp  # type: ignore[return-value]


def _deflate(root: CassetteDir, name: str, digest: hashlib._Hash) -> Iterator[bytes]:
    """Plain file `name` gzipped (deterministic bytes), a chunk at a time; `digest` is fed the
    plain bytes read."""
    deflater = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    fd = root.open(name)
    try:
        offset = 0
        while chunk := os.pread(fd, CHUNK, offset):
            offset += len(chunk)
            digest.update(chunk)
            if out := deflater.compress(chunk):
                yield out
    finally:
        os.close(fd)
    yield deflater.flush()


class _Hashing:
    """Chunks passed through, their size and sha256 kept."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.digest = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.digest.update(chunk)
            self.size += len(chunk)
            yield chunk


def compact(root: CassetteDir, manifest: Manifest) -> Manifest:
    """Store the finalized plain (format 3) cassette at `root` compacted (format 4): each file
    gzipped by an atomic rename, then the manifest, then the plain files removed. A crash
    before the manifest leaves the plain cassette (and stray .gz files, replaced next time);
    after it, the compacted one (and stray plain files nobody reads). The caller holds the
    writer lock. CassetteError if a plain file is not what the manifest says."""
    if manifest.format != FORMAT or not manifest.finalized:
        raise CassetteError(root.path, f"only a finalized {FORMAT} cassette is compacted")
    if over := declared_over_budget(manifest, None):
        declared, limit = over
        raise CassetteError(
            root.path,
            f"its frames are {declared} bytes, over the {limit} bytes an rrlab with the default "
            "budget decompresses: compacted, it could not be replayed; it stays plain",
        )
    stored: dict[str, tuple[int, str]] = {}
    for name in _NAMES:
        plain = hashlib.sha256()
        out = _Hashing(_deflate(root, name, plain))
        root.write_atomic(GZ_NAMES[name], out)
        expected = manifest.plain_file(name)[1]
        if plain.hexdigest() != expected:
            root.unlink(GZ_NAMES[name])
            raise DigestMismatch(root.path, name, expected, plain.hexdigest())
        stored[name] = (out.size, out.digest.hexdigest())
    new = dataclasses.replace(manifest, format=FORMAT_V4, stored=stored)
    root.write_atomic(GITATTRIBUTES_NAME, GITATTRIBUTES_COMPACT)
    root.write_atomic(MANIFEST_NAME, new.to_json())
    for name in _NAMES:
        root.unlink(name)
    root.fsync()
    return new


def expand(root: CassetteDir, manifest: Manifest) -> Manifest:
    """Give back the plain format 3 files of the compacted cassette at `root`, exactly the
    files it was compacted from (each checked against its digest), by atomic renames, the
    manifest after them; then remove the .gz files. The caller holds the writer lock."""
    if not manifest.compacted:
        raise CassetteError(root.path, f"not a compacted ({FORMAT_V4}) cassette")
    for name in _NAMES:
        root.write_atomic(name, inflate(root, manifest, name))
    new = dataclasses.replace(manifest, format=FORMAT, stored=None)
    root.write_atomic(GITATTRIBUTES_NAME, GITATTRIBUTES)
    root.write_atomic(MANIFEST_NAME, new.to_json())
    for name in _NAMES:
        root.unlink(GZ_NAMES[name])
    root.fsync()
    return new
