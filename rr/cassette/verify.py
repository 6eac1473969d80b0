"""verify: prove a cassette is whole and self-consistent; `repair` finishes a crashed recording.

Repair only ever removes: it keeps every frame line whose newline was written (a torn last line
is dropped) and, format 3, whose bytes are all in frames.raw (bytes past the last kept frame's
are dropped: the writer writes a batch's bytes before its lines), and the time of each
(frames.timing, formats 2 and 3: times past the last whole frame are dropped, a frame whose
time was still held by the writer gets the time before it), recounts,
rehashes and writes a finalized manifest marked `repaired: true`. It never touches a cassette
that was finalized: a digest mismatch there means the file changed after the recording ended
(tampering or corruption), which no repair can make trustworthy. It streams (one line in memory
at a time), holds the cassette's writer lock (`lock.py`), and writes only the cassette's own
top-level files through its directory, never through a link (`paths.py`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rrlab.rr.canonical import dumps_line
from rrlab.rr.policy import Budgets

from .errors import (
    CassetteError,
    CassetteWriteFailed,
    CompactedDamaged,
    CountMismatch,
    DigestMismatch,
    MalformedFrame,
    MalformedManifest,
    NotFinalized,
    RecordingInProgress,
    RepairedRefused,
    TruncatedFrames,
)
from .format import (
    CONNECTIONS_JOURNAL,
    FORMAT,
    FORMAT_V1,
    FORMAT_V2,
    FORMAT_V4,
    FRAMES_NAME,
    MANIFEST_NAME,
    RAW_NAME,
    TIMING_NAME,
    ConnectionInfo,
    Manifest,
    check_frame_budget,
    decode_frame_line,
    timing_line,
)
from .lock import WriterLock
from .paths import CassetteDir
from .reader import (
    CHUNK,
    check_artifact,
    check_raw_total,
    check_timing_count,
    fd_sha256,
    iter_lines,
    line_limit,
    open_checked_raw,
    open_frames,
    open_raw,
    open_stored_frames,
    read_manifest,
    read_timing,
)

#: connections.jsonl lines are one small event each
_JOURNAL_LINE = 1 << 20


@dataclass(slots=True)
class VerifyReport:
    path: Path
    frames: int
    connections: int
    raw_bytes: int
    artifacts: int
    repaired: bool = False  # this call repaired the cassette
    repaired_before: bool = False  # an earlier `verify --repair` finalized it
    unverified: bool = False  # repaired without a manifest: the frames were never checked
    dropped_bytes: int = 0  # torn tail removed by this repair
    dropped_artifacts: list[str] = field(default_factory=list)
    stopped: dict | None = None
    compacted: bool = False  # stored gzipped (format 4)

    def summary(self) -> str:
        text = (
            f"{self.path}: ok, {self.frames} frames on {self.connections} connections, "
            f"{self.raw_bytes} raw bytes, {self.artifacts} artifacts"
        )
        if self.compacted:
            text += f", stored compacted ({FORMAT_V4}; `rrlab migrate --expand` for plain files)"
        if self.stopped:
            text += f", recording stopped by budget {self.stopped.get('budget')}"
        if self.repaired:
            text += f"; repaired (dropped a torn tail of {self.dropped_bytes} bytes"
            if self.dropped_artifacts:
                text += f", unverifiable artifacts {', '.join(self.dropped_artifacts)}"
            text += ")"
        elif self.repaired_before:
            text += "; repaired earlier by verify --repair (a crashed or damaged recording)"
        if self.unverified:
            text += (
                "; frames unverified: repaired without a manifest, nothing to check them against"
            )
        return text


@dataclass(slots=True)
class _Scan:
    frames: int = 0
    raw_bytes: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"c2s": 0, "s2c": 0})
    conns: dict[int, ConnectionInfo] = field(default_factory=dict)
    line_bytes: int = 0  # of the lines accepted


class _RawShort(Exception):
    """frames.raw ends inside a frame (repair: that frame and the rest are dropped)."""


def raw_reader(
    fh: Any, path: Path, frame_budget: int, *, short_ok: bool = False
) -> Callable[[int], bytes]:
    """Reads frames.raw in order, a line's size at a time (never more than the frame budget);
    `short_ok`: raise _RawShort where the file ends inside a frame (repair)."""
    read = open(fh.fileno(), "rb", CHUNK, closefd=False).read  # noqa: SIM115

    def take(size: int) -> bytes:
        check_frame_budget(size, frame_budget, path, 0)
        data = read(size)
        if short_ok and len(data) != size:
            raise _RawShort
        return data

    return take


def _scan(
    path: Path,
    known: dict[int, ConnectionInfo],
    lines: Iterable[tuple[int, bytes]],
    frame_budget: int,
    *,
    learn: bool = False,
    timed: bool = False,
    raw: Callable[[int], bytes] | None = None,
) -> _Scan:
    """Decode and check every line (with its newline); count per connection. `learn`: accept
    unknown conn ids. `timed`: format 1 lines (each with its `t_us`). `raw`: format 3, where
    the lines' bytes are read from (`raw_reader`): where it raises _RawShort the scan ends."""
    scan = _Scan()
    t_us = None if timed else 0  # format 2 times are checked on their own (read_timing)
    for lineno, line in lines:
        try:
            rec = decode_frame_line(line, path=str(path), lineno=lineno, t_us=t_us, raw=raw)
        except _RawShort:
            break
        except MalformedFrame as exc:
            if exc.line == 0:  # from raw_reader, which knows no line number
                raise MalformedFrame(path, lineno, exc.reason) from None
            raise
        if rec.seq != scan.frames:
            raise MalformedFrame(
                path, lineno, f"seq {rec.seq}, expected {scan.frames} (not contiguous)"
            )
        if dumps_line(rec.to_dict(timed=timed, sidecar=raw is not None)) != line:
            raise MalformedFrame(path, lineno, "not canonical JSON (edited by hand?)")
        check_frame_budget(len(rec.raw), frame_budget, path, lineno)
        conn = scan.conns.get(rec.conn)
        if conn is None:
            base = known.get(rec.conn)
            if base is None:
                if not learn:
                    raise MalformedFrame(path, lineno, f"conn {rec.conn} not in the manifest")
                base = ConnectionInfo(rec.conn, rec.proto, None, None, opened_at_seq=rec.seq)
            conn = scan.conns[rec.conn] = replace(
                base, frames={"c2s": 0, "s2c": 0}, bytes={"c2s": 0, "s2c": 0}
            )
        if rec.proto is not conn.proto:
            raise MalformedFrame(
                path, lineno, f"proto {rec.proto} but conn {rec.conn} is {conn.proto}"
            )
        d = rec.dir.value
        conn.frames[d] += 1
        conn.bytes[d] += len(rec.raw)
        scan.counts[d] += 1
        scan.raw_bytes += len(rec.raw)
        scan.frames += 1
        scan.line_bytes += len(line)
    return scan


def _check_counts(root: Path, m: Manifest, scan: _Scan) -> None:
    pairs = [
        ("frame_count", m.frame_count, scan.frames),
        ("frame_counts", m.frame_counts, scan.counts),
        ("raw_bytes", m.raw_bytes, scan.raw_bytes),
    ]
    for conn in m.connections:
        seen = scan.conns.get(conn.id)
        pairs.append(
            (f"conn {conn.id} frames", conn.frames, seen.frames if seen else {"c2s": 0, "s2c": 0})
        )
        pairs.append(
            (f"conn {conn.id} bytes", conn.bytes, seen.bytes if seen else {"c2s": 0, "s2c": 0})
        )
    for what, expected, actual in pairs:
        if expected != actual:
            raise CountMismatch(root, what, expected, actual)


def _journal_connections(root: CassetteDir, known: dict[int, ConnectionInfo]) -> None:
    """Apply `connections.jsonl` (open/close events of a recording that never finalized) to
    `known`. A torn last line or an unreadable one is skipped: frames still name their
    connections, so nothing is invented and nothing recorded is lost."""
    try:
        fd = root.open(CONNECTIONS_JOURNAL)
    except FileNotFoundError:
        return
    path = root.path / CONNECTIONS_JOURNAL
    with open(fd, "rb") as fh:
        for _lineno, line in _whole_lines(iter_lines(fh, path, _JOURNAL_LINE), []):
            try:
                ev = json.loads(line)
                conn_id = int(ev["id"])
                if ev["event"] == "open":
                    known[conn_id] = ConnectionInfo.from_dict(
                        {**ev, "frames": {"c2s": 0, "s2c": 0}, "bytes": {"c2s": 0, "s2c": 0}}
                    )
                elif ev["event"] == "close" and conn_id in known:
                    info = known[conn_id]
                    if info.closed_at_seq is None:
                        info.closed_at_seq = int(ev["closed_at_seq"])
                        info.close_reason = ev.get("close_reason")
            except (ValueError, KeyError, TypeError, AttributeError):
                continue


def _whole_lines(
    lines: Iterator[tuple[int, bytes]], torn: list[int]
) -> Iterator[tuple[int, bytes]]:
    """`lines` up to a torn last line, whose length is appended to `torn`."""
    try:
        yield from lines
    except TruncatedFrames as exc:
        torn.append(exc.length)


def _artifact_ok(root: CassetteDir, name: str, expected: str) -> bool:
    try:
        check_artifact(root, name, expected)
    except CassetteError:
        return False
    return True


def _verify_finalized(root: CassetteDir, m: Manifest) -> VerifyReport:
    path = root.path / FRAMES_NAME
    with open_stored_frames(root, m, None) as fh:
        if not m.compacted:
            actual, size = fd_sha256(fh.fileno())
            if actual != m.frames_sha256:
                raise DigestMismatch(root.path, FRAMES_NAME, m.frames_sha256, actual)
            if size != m.frames_file_bytes:
                raise CountMismatch(root.path, f"{FRAMES_NAME} size", m.frames_file_bytes, size)
        known = {c.id: c for c in m.connections}
        if len(known) != len(m.connections):
            raise MalformedManifest(root.path / MANIFEST_NAME, "duplicate connection ids")
        frame_budget, limit = line_limit(m, None)
        lines = iter_lines(fh, path, limit)
        if m.sidecar:
            raw_fh, raw_size = open_checked_raw(root, m)
            with raw_fh:
                raw = raw_reader(raw_fh, path, frame_budget)
                scan = _scan(path, known, lines, frame_budget, raw=raw)
            check_raw_total(root.path, scan.raw_bytes, raw_size)
        else:
            scan = _scan(path, known, lines, frame_budget, timed=m.timed_lines)
    _check_counts(root.path, m, scan)
    if not m.timed_lines:
        check_timing_count(root.path, len(read_timing(root, m)), scan.frames)
    for name, expected in sorted(m.artifacts.items()):
        check_artifact(root, name, expected)
    return VerifyReport(
        root.path,
        scan.frames,
        len(m.connections),
        scan.raw_bytes,
        len(m.artifacts),
        stopped=m.stopped,
        repaired_before=m.repaired,
        unverified=m.unverified,
        compacted=m.compacted,
    )


def verify(
    path: str | os.PathLike[str], repair: bool = False, *, strict: bool = False
) -> VerifyReport:
    """Check a cassette completely; raise the precise CassetteError on the first problem.

    With `repair=True` an unfinalized (crashed) recording is finalized from what is on disk.
    With `strict=True` a repaired cassette (now or earlier) is refused (RepairedRefused).
    """
    report = _verify(Path(path), repair)
    if strict and (report.repaired or report.repaired_before):
        raise RepairedRefused(report.path, report.unverified)
    return report


def _verify(path: Path, repair: bool) -> VerifyReport:
    with CassetteDir(path) as root:
        if not repair:
            return _verify_finalized(root, read_manifest(root, require_finalized=True))
        with WriterLock.acquire(path):
            return _verify_or_repair(root)


def _verify_or_repair(root: CassetteDir) -> VerifyReport:
    try:
        manifest = read_manifest(root, require_finalized=True)
    except NotFinalized:
        try:
            return _repair(root)
        except OSError as exc:  # disk full, I/O error, read-only: one line, not a traceback
            raise CassetteWriteFailed(
                root.path,
                "the repaired cassette",
                exc,
                advice="it is still repairable: free space, then run `rrlab verify --repair "
                f"{root.path}` again",
            ) from None
    try:
        return _verify_finalized(root, manifest)
    except DigestMismatch as exc:
        raise DigestMismatch(
            root.path,
            exc.what,
            exc.expected,
            exc.actual,
            note="refusing to repair a finalized cassette: it changed after recording "
            "(tampering or corruption, not a crash) - record it again",
        ) from None


def _repair(root: CassetteDir) -> VerifyReport:
    provisional = None
    if root.kind(MANIFEST_NAME) is not None:
        provisional = read_manifest(root, require_finalized=False)  # format checked here
    path = root.path / FRAMES_NAME
    if provisional is not None and provisional.compacted:
        raise CompactedDamaged(
            root.path, MANIFEST_NAME, f"it declares {FORMAT_V4} but is not finalized"
        )
    if provisional is not None:
        found = provisional.format
    elif root.kind(RAW_NAME) is not None:  # no manifest to say: the format whose files are there
        found = FORMAT
    else:
        found = FORMAT_V1 if root.kind(TIMING_NAME) is None else FORMAT_V2
    timed, sidecar = found == FORMAT_V1, found == FORMAT
    with open_frames(root, os.O_RDWR) as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RecordingInProgress(root.path) from None
        frame_budget, limit = line_limit(provisional, None, sidecar=sidecar)
        torn: list[int] = []
        lines = _whole_lines(iter_lines(fh, path, limit), torn)
        known = {c.id: c for c in provisional.connections} if provisional else {}
        _journal_connections(root, known)
        # connections the provisional manifest lost are learned from their frames (never invented)
        if sidecar:
            with open_raw(root, os.O_RDWR) as raw_fh:
                raw = raw_reader(raw_fh, path, frame_budget, short_ok=True)
                scan = _scan(path, known, lines, frame_budget, learn=True, raw=raw)
                if os.fstat(raw_fh.fileno()).st_size != scan.raw_bytes:
                    raw_fh.truncate(scan.raw_bytes)  # bytes of frames whose lines never came
                os.fsync(raw_fh.fileno())
                raw_digest = fd_sha256(raw_fh.fileno())
        else:
            scan = _scan(path, known, lines, frame_budget, learn=True, timed=timed)
        for conn_id, info in known.items():
            scan.conns.setdefault(
                conn_id, replace(info, frames={"c2s": 0, "s2c": 0}, bytes={"c2s": 0, "s2c": 0})
            )
        kept = scan.line_bytes
        dropped = os.fstat(fh.fileno()).st_size - kept
        if dropped:
            fh.truncate(kept)
        os.fsync(fh.fileno())
        frames_digest = fd_sha256(fh.fileno())[0]
    timing = None if timed else _repair_timing(root, scan.frames)
    root.fsync()
    artifacts: dict[str, str] = {}
    lost: list[str] = []
    for name, expected in sorted((provisional.artifacts if provisional else {}).items()):
        if _artifact_ok(root, name, expected):
            artifacts[name] = expected
        else:
            lost.append(name)
    manifest = Manifest(
        tool_version=provisional.tool_version if provisional else "unknown",
        meta=provisional.meta if provisional else {},
        protocols=tuple(
            sorted(
                {c.proto.value for c in scan.conns.values()}
                | {r["proto"] for r in (provisional.routes if provisional else ())}
            )
        ),
        routes=provisional.routes if provisional else (),
        kafka_nodes=provisional.kafka_nodes if provisional else {},
        connections=tuple(scan.conns[k] for k in sorted(scan.conns)),
        frame_count=scan.frames,
        frame_counts=scan.counts,
        raw_bytes=scan.raw_bytes,
        frames_file_bytes=kept,
        frames_sha256=frames_digest,
        budgets=provisional.budgets if provisional else Budgets(),
        stopped=provisional.stopped if provisional else None,
        artifacts=artifacts,
        finalized=True,
        repaired=True,
        unverified=provisional is None,
        format=found,
        timing_file_bytes=None if timing is None else timing[0],
        timing_sha256=None if timing is None else timing[1],
        raw_file_bytes=raw_digest[1] if sidecar else None,
        raw_sha256=raw_digest[0] if sidecar else None,
    )
    root.write_atomic(MANIFEST_NAME, manifest.to_json())
    root.unlink(CONNECTIONS_JOURNAL)  # folded into the manifest
    return VerifyReport(
        root.path,
        scan.frames,
        len(manifest.connections),
        scan.raw_bytes,
        len(artifacts),
        repaired=True,
        dropped_bytes=dropped,
        dropped_artifacts=lost,
        stopped=manifest.stopped,
        unverified=manifest.unverified,
    )


def _repair_timing(root: CassetteDir, frames: int) -> tuple[int, str]:
    """Keep the first `frames` whole lines of frames.timing, one per kept frame: (size, sha256).

    The writer holds times a few KiB at a time (`writer.TIMING_HOLD`), so a crash may leave
    fewer times than frames (or more: a batch's times written, its frame lines not); a frame
    whose time is missing gets the time before it (its pacing is lost, never the frame)."""
    kept, last = bytearray(), 0
    try:
        fd = root.open(TIMING_NAME)
    except FileNotFoundError:
        fd = None
    if fd is not None:
        with open(fd, "rb") as fh:
            for _ in range(frames):
                line = fh.readline(32)
                if not line.endswith(b"\n") or not line[:-1].isdigit():
                    break
                last = int(line)
                kept += timing_line(last)
    count = kept.count(b"\n")
    kept += timing_line(last) * (frames - count)
    data = bytes(kept)
    root.write_atomic(TIMING_NAME, data)
    return len(data), hashlib.sha256(data).hexdigest()


__all__ = ["VerifyReport", "verify", "CassetteError"]
