"""CassetteReader: open a finalized cassette, check all of it once, then read frames on demand.

A cassette is untrusted input (it arrives in a pull request like any file), so `open` checks
everything a replay will rely on before anything runs, in one streaming pass over frames.jsonl:
the digests (frames.jsonl and, formats 2 and 3, frames.timing: one time per frame; format 3,
frames.raw: exactly the bytes the lines' sizes add up to), every line's
shape (what `decode_frame_line` accepts, without decoding payloads), the frame budget (lines
are read with a bound: an over-long one is refused before it is read whole), contiguous seqs
(format 1) and connections the manifest knows; and the artifacts' digests. Every
entry is reached through `CassetteDir` (inside the cassette, no link followed). A bad cassette
is one CassetteError at open, not a failure halfway through a replay.

The same pass builds the `FrameIndex`: where each line starts, each connection's lines, and a
small code per client frame (its `kind`, from a classifier the caller passes: the replayer's
label and liveness), so counting what a replay left unused needs no frame decoded. Memory is
about 16 bytes a frame (24 in format 3: where each frame's bytes start); frames are read back
one at a time (`os.pread` on the descriptors opened at `open`, so the file read is the file
checked), and a frame's summary is parsed only when asked for (`parts_of`).
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from rrlab.rr.codecs.base import Proto
from rrlab.rr.policy import Budgets

from .compact import check_declared, inflate, inflate_to_file
from .errors import (
    ArtifactMissing,
    CassetteError,
    CassetteNotFound,
    CountMismatch,
    DigestMismatch,
    MalformedFrame,
    MalformedManifest,
    NotFinalized,
    TruncatedFrames,
)
from .format import (
    ARTIFACTS_DIR,
    FRAMES_NAME,
    MANIFEST_NAME,
    MEMO_MAX,
    RAW_NAME,
    TIMING_NAME,
    FrameParts,
    FrameRecord,
    Manifest,
    check_frame_line,
    check_frame_line_v3,
    max_line_bytes,
    parse_timing,
    read_frame_line,
    read_frame_parts,
)
from .paths import CassetteDir

CHUNK = 1 << 20
#: cassette.json is read whole: a manifest of 100,000 connections is about 30 MB
MAX_MANIFEST_BYTES = 64 << 20
#: an artifact is read whole to be compared (replay) and hashed in chunks when checked
MAX_ARTIFACT_BYTES = 1 << 30

#: (proto, summary) of a client frame -> a hashable kind kept in the index (see FrameIndex.kind)
Classifier = Callable[[Proto, dict[str, Any]], Hashable]


def load_manifest(path: str | os.PathLike[str], *, require_finalized: bool = True) -> Manifest:
    """Read cassette.json; the errors say whether the cassette is absent, crashed or foreign."""
    with CassetteDir(path) as root:
        return read_manifest(root, require_finalized=require_finalized)


def read_manifest(root: CassetteDir, *, require_finalized: bool = True) -> Manifest:
    if root.kind(MANIFEST_NAME) is None:
        if root.kind(FRAMES_NAME) is not None:
            raise NotFinalized(root.path, f"{MANIFEST_NAME} is missing")
        raise CassetteNotFound(
            root.path, f"not a cassette ({MANIFEST_NAME} and {FRAMES_NAME} missing)"
        )
    manifest_path = root.path / MANIFEST_NAME
    data = root.read(MANIFEST_NAME, MAX_MANIFEST_BYTES)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedManifest(manifest_path, f"not JSON ({exc})") from None
    manifest = Manifest.from_dict(doc, path=manifest_path)
    if require_finalized and not manifest.finalized:
        raise NotFinalized(root.path, "manifest says finalized: false")
    return manifest


def open_frames(root: CassetteDir, flags: int = os.O_RDONLY) -> BinaryIO:
    """frames.jsonl as an unbuffered binary file (inside the cassette, not a link)."""
    try:
        fd = root.open(FRAMES_NAME, flags)
    except FileNotFoundError:
        raise CassetteNotFound(root.path / FRAMES_NAME, f"{FRAMES_NAME} is missing") from None
    mode = "r+b" if flags & os.O_RDWR else "rb"
    return open(fd, mode, buffering=0)  # noqa: SIM115 (the caller owns it)


def open_raw(root: CassetteDir, flags: int = os.O_RDONLY) -> BinaryIO:
    """frames.raw (format 3) as an unbuffered binary file (inside the cassette, not a link)."""
    try:
        fd = root.open(RAW_NAME, flags)
    except FileNotFoundError:
        raise CassetteError(
            root.path, f"{RAW_NAME} is missing: a format 3 cassette keeps its frames' bytes there"
        ) from None
    mode = "r+b" if flags & os.O_RDWR else "rb"
    return open(fd, mode, buffering=0)  # noqa: SIM115 (the caller owns it)


def check_raw(root: CassetteDir, manifest: Manifest, fd: int, *, check_digest: bool = True) -> int:
    """frames.raw's size (and with `check_digest` its sha256) against the manifest's: its size."""
    if check_digest:
        actual, size = fd_sha256(fd)
        if actual != manifest.raw_sha256:
            raise DigestMismatch(root.path, RAW_NAME, manifest.raw_sha256 or "", actual)
    else:
        size = os.fstat(fd).st_size
    if size != manifest.raw_file_bytes:
        raise CountMismatch(root.path, f"{RAW_NAME} size", manifest.raw_file_bytes, size)
    return size


def open_stored_frames(
    root: CassetteDir, manifest: Manifest, budgets: Budgets | None, *, check_digest: bool = True
) -> BinaryIO:
    """frames.jsonl to read: a compacted cassette's inflated into a temporary file (its declared
    sizes within the cassette budget first, its digests checked as it is decompressed), a plain
    one's own file (its digest left to the caller, who reads it anyway)."""
    if manifest.compacted:
        check_declared(root, manifest, budgets)
        return inflate_to_file(root, manifest, FRAMES_NAME, check_digest=check_digest)
    return open_frames(root)


def open_checked_raw(
    root: CassetteDir, manifest: Manifest, *, check_digest: bool = True
) -> tuple[BinaryIO, int]:
    """frames.raw (formats 3 and 4) to read by offset, checked against the manifest (size and,
    with `check_digest`, sha256; a compacted one's as it is decompressed), and its size."""
    if manifest.compacted:
        raw = inflate_to_file(root, manifest, RAW_NAME, check_digest=check_digest)
        return raw, manifest.raw_file_bytes or 0
    raw = open_raw(root)
    try:
        return raw, check_raw(root, manifest, raw.fileno(), check_digest=check_digest)
    except BaseException:
        raw.close()
        raise


def check_raw_total(root: Path, total: int, size: int) -> None:
    """The lines' sizes add up to frames.raw's size, or CassetteError."""
    if total != size:
        raise CassetteError(
            root,
            f"the sizes in {FRAMES_NAME} add up to {total} bytes, but {RAW_NAME} has {size}",
        )


#: the longest frames.timing line: 19 digits of microseconds (an int64) and a newline
MAX_TIMING_LINE = 20


def read_timing(root: CassetteDir, manifest: Manifest, *, check_digest: bool = True) -> array:
    """frames.timing of a format 2 cassette (one time a frame, microseconds since start),
    checked against the manifest's digest (`check_digest`); each line a canonical integer.
    How many: `check_timing_count` against the frame lines."""
    limit = max(manifest.frame_count, 0) * MAX_TIMING_LINE
    if manifest.compacted:  # checked (digests, declared size) as it is decompressed
        if (manifest.timing_file_bytes or 0) > limit:
            raise CassetteError(
                root.path,
                f"{TIMING_NAME} declares {manifest.timing_file_bytes} bytes, more than "
                f"{manifest.frame_count} frames' times take",
            )
        data = b"".join(inflate(root, manifest, TIMING_NAME, check_digest=check_digest))
        return array("q", parse_timing(data, path=str(root.path)))
    try:
        data = root.read(TIMING_NAME, limit)  # longer than frame_count times: refused
    except FileNotFoundError:
        raise CassetteError(
            root.path,
            f"{TIMING_NAME} is missing: a format 2 cassette keeps its frames' times there",
        ) from None
    if check_digest:
        actual = hashlib.sha256(data).hexdigest()
        if actual != manifest.timing_sha256:
            raise DigestMismatch(root.path, TIMING_NAME, manifest.timing_sha256 or "", actual)
    return array("q", parse_timing(data, path=str(root.path)))


def check_timing_count(root: Path, times: int, frames: int) -> None:
    """One time per frame line, or MalformedFrame."""
    if times != frames:
        raise MalformedFrame(
            root,
            min(times, frames) + 1,
            f"{times} times for {frames} frames (one line per line of {FRAMES_NAME})",
            TIMING_NAME,
        )


def fd_sha256(fd: int) -> tuple[str, int]:
    """(hex sha256, size) of an open file from its start, hashed in chunks."""
    digest = hashlib.sha256()
    size = 0
    while chunk := os.pread(fd, CHUNK, size):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def iter_lines(fh: BinaryIO, path: Path, limit: int) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line with its newline) from the current position, each read with a
    bound: a line of `limit` bytes or more (newline included) is refused (MalformedFrame) having
    read `limit` bytes of it, and a last line lacking its newline is torn (TruncatedFrames)."""
    reader = fh if hasattr(fh, "peek") else open(fh.fileno(), "rb", CHUNK, closefd=False)  # noqa: SIM115
    readline = reader.readline
    lineno = 0
    while line := readline(limit):
        lineno += 1
        if line[-1] != 10:
            _bad_end(path, lineno, line, limit)
        yield lineno, line


def _bad_end(path: Path, lineno: int, line: bytes, limit: int) -> None:
    if len(line) >= limit:
        raise MalformedFrame(
            path,
            lineno,
            f"{limit} bytes or longer, more than a frame within the frame budget makes; "
            "refused without reading it whole",
        )
    raise TruncatedFrames(path, lineno, len(line))


def line_limit(
    manifest: Manifest | None, budgets: Budgets | None, *, sidecar: bool | None = None
) -> tuple[int, int]:
    """(frame budget, line bound) for reading: the reader's budget (`budgets`, by default the
    policy's default), lowered by the cassette's own; a manifest can never raise it.
    `sidecar`: format 3 lines (default: the manifest's format)."""
    frame = (budgets or Budgets()).max_frame_bytes
    if manifest is not None:
        frame = min(frame, manifest.budgets.max_frame_bytes)
    if sidecar is None:
        sidecar = manifest is not None and manifest.sidecar
    return frame, max_line_bytes(frame, sidecar=sidecar)


class CassetteReader:
    """A finalized cassette, checked and indexed. Use `CassetteReader.open(path)`; close it (or
    use it as a context manager) to release its two file descriptors."""

    def __init__(self, root: CassetteDir, manifest: Manifest, index: FrameIndex) -> None:
        self.root = root
        self.path = root.path
        self.manifest = manifest
        self._index = index

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        check_digest: bool = True,
        check_artifacts: bool = True,
        budgets: Budgets | None = None,
        classify: Classifier | None = None,
    ) -> CassetteReader:
        """Check the format version, finalization, every frame line, the frames digest and (with
        `check_artifacts`) every artifact's digest; build the index. `budgets`: the reader's
        frame budget (default: the policy default). `classify`: see `FrameIndex.kind`."""
        root = CassetteDir(path)
        try:
            manifest = read_manifest(root)
            frame_budget, limit = line_limit(manifest, budgets)
            times = (
                None
                if manifest.timed_lines
                else read_timing(root, manifest, check_digest=check_digest)
            )
            fh = open_stored_frames(root, manifest, budgets, check_digest=check_digest)
            raw = None
            try:
                # a compacted cassette's frames.jsonl was checked as it was decompressed
                digest = hashlib.sha256() if check_digest and not manifest.compacted else None
                raw_size = None
                if manifest.sidecar:
                    raw, raw_size = open_checked_raw(root, manifest, check_digest=check_digest)
                try:
                    index = FrameIndex.scan(
                        fh,
                        root.path / FRAMES_NAME,
                        manifest,
                        frame_budget,
                        limit,
                        classify,
                        digest,
                        times,
                        raw,
                        raw_size,
                    )
                except MalformedFrame:
                    if digest is not None:  # a file changed after recording says so first
                        _check_digest(root, manifest, fd_sha256(fh.fileno())[0])
                    raise
                if digest is not None:
                    _check_digest(root, manifest, digest.hexdigest())
                if check_artifacts:
                    for name, expected in sorted(manifest.artifacts.items()):
                        check_artifact(root, name, expected)
            except BaseException:
                fh.close()
                if raw is not None:
                    raw.close()
                raise
        except BaseException:
            root.close()
            raise
        return cls(root, manifest, index)

    def close(self) -> None:
        self._index.close()
        self.root.close()

    def __enter__(self) -> CassetteReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frames(self) -> Iterator[FrameRecord]:
        """Every frame in seq order, decoded (raw as bytes). Streams; safe on large cassettes."""
        return self._index.all_frames()

    def frames_for(self, conn: int) -> Iterator[FrameRecord]:
        """The frames of one connection, both directions, in seq order."""
        return self._index.frames_of(conn)

    def index(self) -> FrameIndex:
        """The index built at open: each connection's frames, and client frames' kinds."""
        return self._index

    def artifact(self, name: str) -> bytes:
        """The bytes of artifact `name`, checked against the manifest's digest now."""
        expected = self.manifest.artifacts.get(name)
        if expected is None:
            raise ArtifactMissing(self.path, name)
        return read_artifact(self.root, name, expected)


def _check_digest(root: CassetteDir, manifest: Manifest, actual: str) -> None:
    if actual != manifest.frames_sha256:
        raise DigestMismatch(root.path, FRAMES_NAME, manifest.frames_sha256, actual)


# -- artifacts -----------------------------------------------------------------------------------


def _open_artifact(root: CassetteDir, name: str) -> int:
    try:
        return root.open(f"{ARTIFACTS_DIR}/{name}")
    except FileNotFoundError:
        raise ArtifactMissing(root.path, name) from None


def check_artifact(root: CassetteDir, name: str, expected: str) -> None:
    """Artifact `name` is a plain file inside the cassette whose sha256 is `expected`."""
    fd = _open_artifact(root, name)
    try:
        if os.fstat(fd).st_size > MAX_ARTIFACT_BYTES:
            raise CassetteError(root.path, f"artifact {name!r} is over {MAX_ARTIFACT_BYTES} bytes")
        actual, _size = fd_sha256(fd)
    finally:
        os.close(fd)
    if actual != expected:
        raise DigestMismatch(root.path, f"{ARTIFACTS_DIR}/{name}", expected, actual)


def read_artifact(cassette: CassetteDir | str | os.PathLike[str], name: str, sha256: str) -> bytes:
    """The bytes of artifact `name` (a manifest key), read inside the cassette without following
    a link and checked against `sha256` (the manifest's digest) before they are returned:
    ArtifactMissing, UnsafePath or DigestMismatch otherwise. This is what a replay compares
    a command's output with."""
    root = cassette if isinstance(cassette, CassetteDir) else CassetteDir(cassette)
    try:
        data = root.read(f"{ARTIFACTS_DIR}/{name}", MAX_ARTIFACT_BYTES)
    except FileNotFoundError:
        raise ArtifactMissing(root.path, name) from None
    finally:
        if root is not cassette:
            root.close()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise DigestMismatch(root.path, f"{ARTIFACTS_DIR}/{name}", sha256, actual)
    return data


# -- the index -----------------------------------------------------------------------------------


class FrameIndex:
    """Where every frame line starts, each connection's lines in seq order, and a kind code per
    frame (0 for a server frame; for a client frame the interned `classify(proto, summary)`, or
    True without a classifier), with each connection's client frames counted per kind.

    Built by `scan` in the pass that checks the lines; frames are then read one at a time with
    `os.pread` (no shared file position: any number of readers interleave)."""

    def __init__(
        self,
        path: Path,
        fh: BinaryIO,
        offsets: array,
        lines: dict[int, array],
        kinds: dict[int, array],
        kind_table: list[Hashable],
        kind_counts: dict[int, dict[int, int]],
        times: array | None = None,
        raw: BinaryIO | None = None,
        raw_offsets: array | None = None,
    ) -> None:
        self.path = path
        self._times = times  # format 2: each line's time (format 1 lines carry their own)
        self._fh = fh
        self._fd = fh.fileno()
        self._raw = raw  # format 3: frames.raw
        self._raw_fd = raw.fileno() if raw is not None else -1
        self._raw_offsets = raw_offsets  # frame g's bytes start at raw_offsets[g] (format 3)
        self._offsets = offsets  # line g starts at offsets[g]; offsets[-1] is the file size
        self._lines = lines  # conn -> its line numbers (from 0: seq)
        self._kinds = kinds  # conn -> kind code of each of its frames
        self._kind_table = kind_table  # code -> kind (code 0: a server frame, None)
        self._kind_counts = kind_counts  # conn -> {code: client frames}

    @classmethod
    def scan(
        cls,
        fh: BinaryIO,
        path: Path,
        manifest: Manifest,
        frame_budget: int,
        limit: int,
        classify: Classifier | None = None,
        digest: Any = None,
        times: array | None = None,
        raw: BinaryIO | None = None,
        raw_size: int | None = None,
    ) -> FrameIndex:
        """Check every line of `fh` (from its start) and index it. MalformedFrame, with the line
        number, on the first bad one; `digest` (a hashlib object) is fed every byte read.
        `times`: frames.timing (formats 2, 3); None reads format 1 lines (each with its time).
        `raw`: frames.raw of a format 3 cassette, `raw_size` bytes (checked by the caller),
        which the lines' sizes must add up to."""
        timed = times is None
        sidecar = raw is not None
        raw_offsets = array("q", [0]) if sidecar else None
        add_raw = raw_offsets.append if raw_offsets is not None else None
        raw_position = 0
        known = {c.id: c.proto for c in manifest.connections}
        if len(known) != len(manifest.connections):
            raise MalformedManifest(path.parent / MANIFEST_NAME, "duplicate connection ids")
        offsets = array("q", [0])
        add_offset = offsets.append
        lines: dict[int, array] = {}
        kinds: dict[int, array] = {}
        table: list[Hashable] = [None]
        codes: dict[Hashable, int] = {}
        update = digest.update if digest is not None else None
        check = check_frame_line
        where = str(path)
        position = seq = 0
        last_conn, last_proto = -1, None
        conn_lines = conn_kinds = array("I")  # replaced at the first line
        memo: dict[bytes, dict[str, Any]] = {}  # summary bytes -> summary (format.MEMO_MAX)
        known_codes: dict[tuple[Proto, bytes], int] = {}  # (proto, summary bytes) -> kind code
        readline = open(fh.fileno(), "rb", CHUNK, closefd=False).readline  # noqa: SIM115
        while line := readline(limit):  # the hot loop: one pass, one line in memory
            if line[-1] != 10:
                _bad_end(path, seq + 1, line, limit)
            if update is not None:
                update(line)
            if add_raw is not None:  # format 3: the line's size, not its seq
                conn, client, proto, size, summary, raw_summary = check_frame_line_v3(
                    line, frame_budget, where, seq + 1, memo
                )
                raw_position += size
                add_raw(raw_position)
            else:
                conn, client, proto, line_seq, summary, raw_summary = check(
                    line, frame_budget, where, seq + 1, memo, timed=timed
                )
                if line_seq != seq:
                    raise MalformedFrame(
                        path, seq + 1, f"seq {line_seq}, expected {seq} (not contiguous)"
                    )
            if conn != last_conn or proto is not last_proto:
                if known.get(conn) is not proto:
                    if conn not in known:
                        raise MalformedFrame(path, seq + 1, f"conn {conn} not in the manifest")
                    raise MalformedFrame(
                        path, seq + 1, f"proto {proto} but conn {conn} is {known[conn]}"
                    )
                if conn not in lines:
                    lines[conn], kinds[conn] = array("I"), array("I")
                conn_lines, conn_kinds = lines[conn], kinds[conn]
                last_conn, last_proto = conn, proto
            conn_lines.append(seq)
            if client:
                key = (proto, raw_summary)
                code = known_codes.get(key) if raw_summary is not None else None
                if code is None:
                    kind = classify(proto, summary) if classify is not None else True
                    code = codes.get(kind)
                    if code is None:
                        code = codes[kind] = len(table)
                        table.append(kind)
                    if raw_summary is not None:
                        if len(known_codes) >= MEMO_MAX:
                            known_codes.clear()
                        known_codes[key] = code
                conn_kinds.append(code)
            else:
                conn_kinds.append(0)
            seq += 1
            position += len(line)
            add_offset(position)
        counts = {conn: Counter(codes_of) for conn, codes_of in kinds.items()}  # in C: quick
        for counted in counts.values():
            counted.pop(0, None)  # server frames
        if times is not None:
            check_timing_count(path.parent, len(times), seq)
        if sidecar:
            check_raw_total(path.parent, raw_position, raw_size or 0)
        return cls(path, fh, offsets, lines, kinds, table, counts, times, raw, raw_offsets)

    def close(self) -> None:
        self._fh.close()
        if self._raw is not None:
            self._raw.close()

    def __del__(self) -> None:  # a reader nobody closed (the index lives as long as a replay)
        for name in ("_fh", "_raw"):
            fh = getattr(self, name, None)
            if fh is not None:
                fh.close()

    @property
    def connections(self) -> list[int]:
        return sorted(self._lines)

    @property
    def frame_count(self) -> int:
        return len(self._offsets) - 1

    def count(self, conn: int) -> int:
        return len(self._lines.get(conn, ()))

    def kind(self, conn: int, position: int) -> Hashable | None:
        """What the classifier said of frame `position` of `conn` (None: a server frame)."""
        return self._kind_table[self._kinds[conn][position]]

    def client_kinds(self, conn: int) -> dict[Hashable, int]:
        """How many client frames of `conn` there are of each kind."""
        table = self._kind_table
        return {table[code]: n for code, n in self._kind_counts.get(conn, {}).items()}

    def client_positions(self, conn: int) -> Iterator[tuple[int, Hashable]]:
        """(position, kind) of each client frame of `conn`, in order, read from the index only."""
        table = self._kind_table
        for position, code in enumerate(self._kinds.get(conn, ())):
            if code:
                yield position, table[code]

    def read(self, conn: int, position: int) -> FrameRecord:
        """Frame number `position` (from 0) of connection `conn`, read on its own."""
        lines = self._lines.get(conn)
        if lines is None or not 0 <= position < len(lines):
            raise IndexError(f"connection {conn} has no frame {position}")
        return self._decode(lines[position])

    def frames_of(self, conn: int) -> Iterator[FrameRecord]:
        """The frames of `conn` in seq order, read and decoded one at a time."""
        return self._frames(self._lines.get(conn, ()))

    def all_frames(self) -> Iterator[FrameRecord]:
        """Every frame in seq order."""
        return self._frames(range(self.frame_count))

    def parts_of(self, conn: int) -> Iterator[FrameParts]:
        """`frames_of` as `read_frame_parts` (summaries left as their JSON text until asked
        for: a replay never looks at most server frames' summaries)."""
        return self._frames(self._lines.get(conn, ()), read_frame_parts)

    def _decode(self, line_index: int) -> FrameRecord:
        start, end = self._offsets[line_index], self._offsets[line_index + 1]
        line = os.pread(self._fd, end - start, start)
        raw = None
        if self._raw_offsets is not None:
            start, end = self._raw_offsets[line_index], self._raw_offsets[line_index + 1]
            raw = os.pread(self._raw_fd, end - start, start)
        return read_frame_line(
            line, path=str(self.path), lineno=line_index + 1, t_us=self._time(line_index), raw=raw
        )

    def _time(self, line_index: int) -> int | None:
        return None if self._times is None else self._times[line_index]

    def _frames(
        self, line_indexes: Iterable[int], decode: Callable[..., Any] = read_frame_line
    ) -> Iterator[Any]:
        """Decode lines in order (`decode`: a line with its path, number and time, and in format
        3 its bytes); runs of adjacent lines are read together (up to CHUNK), and their bytes."""
        offsets, fd, path, time = self._offsets, self._fd, str(self.path), self._time
        raw_offsets, raw_fd = self._raw_offsets, self._raw_fd
        for first, last in _runs(line_indexes, offsets, raw_offsets):
            base = offsets[first]
            data = os.pread(fd, offsets[last + 1] - base, base)
            if raw_offsets is None:
                for g in range(first, last + 1):
                    line = data[offsets[g] - base : offsets[g + 1] - base]
                    yield decode(line, path=path, lineno=g + 1, t_us=time(g))
                continue
            raw_base = raw_offsets[first]
            raws = os.pread(raw_fd, raw_offsets[last + 1] - raw_base, raw_base)
            for g in range(first, last + 1):
                line = data[offsets[g] - base : offsets[g + 1] - base]
                raw = raws[raw_offsets[g] - raw_base : raw_offsets[g + 1] - raw_base]
                yield decode(line, path=path, lineno=g + 1, t_us=time(g), raw=raw)


def _runs(
    line_indexes: Iterable[int], offsets: array, raw_offsets: array | None
) -> Iterator[tuple[int, int]]:
    """(first, last) of each run of adjacent line indexes whose lines, and in format 3 their
    bytes in frames.raw, span at most CHUNK each."""
    pending = iter(line_indexes)
    first = next(pending, None)
    while first is not None:
        last = first
        nxt = next(pending, None)
        while (
            nxt == last + 1
            and offsets[nxt + 1] - offsets[first] <= CHUNK
            and (raw_offsets is None or raw_offsets[nxt + 1] - raw_offsets[first] <= CHUNK)
        ):
            last = nxt
            nxt = next(pending, None)
        yield first, last
        first = nxt
