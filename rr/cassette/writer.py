"""CassetteWriter: append frames as they cross the proxy; write the manifest at finalize.

Called from the proxy's reactor thread, so every call is synchronous and cheap: per call (a
frame, or the frames of one received chunk) one `write(2)` of their bytes to frames.raw, then
one of their lines to frames.jsonl, so a crash leaves only whole lines (each with its bytes
before it in frames.raw) plus at most one partly written batch at the end; their times go to
frames.timing a few KiB at a time (`TIMING_HOLD`: a write per chunk for them cost as much as the
frames'), so a crash may lose the pacing of the last frames, never a frame (repair gives each
the time before it); both digests are kept running, and counts live in memory (the proxy's
recorder has the digests and the per-connection counts made once the chunk was forwarded:
`write_frames(settle=False)`). A provisional manifest (`finalized: false`) is rewritten only on
rare structural events (routes, Kafka nodes, artifacts, a budget stop). Connection opens and
closes, which come by the thousand, are appended as one line each to `connections.jsonl`
instead (rewriting the manifest per event made each cost grow with the count of connections):
`rrlab verify --repair` reads both, so a crashed cassette still knows where every connection
went. Finalize folds them into the manifest and removes the journal.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from rrlab import rr
from rrlab.rr.atomic_file import fsync_dir, write_atomic
from rrlab.rr.canonical import dumps
from rrlab.rr.codecs.base import Direction, Proto
from rrlab.rr.policy import BudgetExceeded, Budgets, Policy, parse_compact_over

from .compact import compact, should_compact
from .errors import (
    CassetteError,
    CassetteExists,
    CassetteWriteFailed,
    NotACassette,
    WriterClosed,
)
from .format import (
    ARTIFACTS_DIR,
    CONNECTIONS_JOURNAL,
    FRAMES_NAME,
    GITATTRIBUTES,
    GITATTRIBUTES_NAME,
    GZ_NAMES,
    MANIFEST_NAME,
    RAW_NAME,
    REDACTED_SIZE,
    SIZE_KEY,
    SIZE_SUMMARY,
    TIMING_NAME,
    ConnectionInfo,
    EncodedSummary,
    Manifest,
    SummaryEncoder,
    frame_line_prefix,
    summary_json,
    timing_line,
)
from .lock import WriterLock
from .paths import CassetteDir
from .record_mode import RecordMode

_OUR_NAMES = (
    MANIFEST_NAME,
    FRAMES_NAME,
    ARTIFACTS_DIR,
    CONNECTIONS_JOURNAL,
    TIMING_NAME,
    RAW_NAME,
    GITATTRIBUTES_NAME,
    f".{MANIFEST_NAME}.tmp",
    *GZ_NAMES.values(),
    *(f".{name}.tmp" for name in GZ_NAMES.values()),
)


def copy_durably(src: str | os.PathLike[str], dest: Path) -> str:
    """Copy `src` to `dest` (temp file, fsync, rename, directory fsync); its sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        while chunk := fin.read(1 << 20):
            digest.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    return digest.hexdigest()


def existing_state(path: Path) -> str | None:
    """None (absent or empty dir), "finalized", "unfinalized", or raise NotACassette."""
    if not path.exists():
        return None
    if not path.is_dir():
        raise NotACassette(path)
    names = {p.name for p in path.iterdir()}
    if not names:
        return None
    if MANIFEST_NAME in names:
        try:
            if json.loads((path / MANIFEST_NAME).read_bytes()).get("finalized") is True:
                return "finalized"
        except (ValueError, AttributeError):
            pass
        return "unfinalized"
    if FRAMES_NAME in names:
        return "unfinalized"
    raise NotACassette(path)


def _artifact_relpath(name: str) -> str:
    rel = PurePosixPath(name)
    if not name or rel.is_absolute() or any(part in ("..", "") for part in rel.parts):
        raise ValueError(f"artifact name must be a relative path without '..': {name!r}")
    return rel.as_posix()


def _whole_batch(
    frames: Sequence[Sequence[Any]],
    prefix: bytes,
    encode: SummaryEncoder,
    max_frame: int,
    room: int,
) -> tuple[bytes, bytes, int] | None:
    """The sidecar bytes, the lines and the raw size of a whole batch that crosses no budget
    (`room`: the cassette bytes left), built in one loop that checks nothing per frame but the
    frame budget; None when a budget would be crossed or a summary does not encode, for the
    exact per-frame path to find out which frame (and write those before it). A repeating
    frame's line is two pieces, its prefix and its summary's `sized_tail`.
    """
    parts: list[bytes] = []
    append = parts.append
    raws: list[bytes] = []
    keep = raws.append
    raw_bytes = 0
    try:
        for frame in frames:
            summary, raw = frame[0], frame[1]
            size = len(raw)
            if size > max_frame:
                return None
            append(prefix)
            if summary.__class__ is EncodedSummary and not frame[2]:
                tail = summary.sized.get(size)
                append(tail if tail is not None else summary.sized_tail(size))
            else:
                append(REDACTED_SIZE if frame[2] else SIZE_KEY)
                append(b"%d" % size)
                append(SIZE_SUMMARY)
                append(encode(summary))
                append(b"}\n")
            keep(raw)
            raw_bytes += size
    except Exception:
        return None
    lines = b"".join(parts)
    if len(lines) + raw_bytes > room:
        return None
    return b"".join(raws), lines, raw_bytes


#: frames.timing bytes held before they are written (~800 frames' times), and before any
#: manifest: a write(2) per received chunk for them cost as much as the frames' own. A crash
#: loses the times of the frames after the last such write: `verify --repair` gives each of them
#: the time before it (their pacing is lost, never a frame).
TIMING_HOLD = 4096


class CassetteWriter:
    """Write one cassette directory. Use `CassetteWriter.create(...)`, not the constructor."""

    _lock: WriterLock | None = None  # taken by `create`, released by `finalize`

    def __init__(
        self,
        path: Path,
        *,
        budgets: Budgets,
        meta: Mapping[str, Any],
        clock_ns: Callable[[], int],
        compact_over: int | None = None,
    ) -> None:
        self.path = path
        self.budgets = budgets
        self.compact_over = compact_over  # see finalize
        #: what compacting at finalize cost (seconds), and the error that left it plain
        self.compact_seconds = 0.0
        self.compact_failed: CassetteError | OSError | None = None
        self._meta = dict(meta)
        dumps(self._meta)  # fail now, not at finalize, if meta is not canonical-JSON-able
        self._clock_ns = clock_ns
        self._t0 = clock_ns()
        self._routes: list[dict[str, str]] = []
        self._kafka_nodes: dict[str, dict[str, Any]] = {}
        self._conns: dict[int, ConnectionInfo] = {}
        self._next_conn = 1
        self._seq = 0
        self._frame_counts = {"c2s": 0, "s2c": 0}
        self._raw_bytes = 0
        self._file_bytes = 0
        self._hash = hashlib.sha256()
        self._timing_hash = hashlib.sha256()
        self._raw_hash = hashlib.sha256()
        self._timing_bytes = 0
        self._timing_held = bytearray()  # times not yet written (see TIMING_HOLD)
        self._artifacts: dict[str, str] = {}
        self._stopped: BudgetExceeded | None = None
        self._failed: CassetteWriteFailed | None = None
        self._released = False
        self._manifest: Manifest | None = None
        self._prefixes: dict[tuple[int, Direction], bytes] = {}
        #: a batch written with `settle=False` whose digests and counts wait for `settle`:
        #: (direction value, connection, frames, raw bytes, sidecar bytes, lines)
        self._pending: tuple[str, ConnectionInfo, int, int, bytes, bytes] | None = None
        self._fd = os.open(
            path / FRAMES_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644
        )
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            raise CassetteError(path, "another recording holds this cassette") from None
        self._timing = os.open(
            path / TIMING_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644
        )
        self._raw = os.open(
            path / RAW_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644
        )
        self._journal = os.open(
            path / CONNECTIONS_JOURNAL, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644
        )
        try:
            self._write_manifest(finalized=False)
            write_atomic(path / GITATTRIBUTES_NAME, GITATTRIBUTES, durable=False)
        except CassetteWriteFailed:
            self._release()
            raise
        except OSError as exc:
            self._release()
            raise CassetteWriteFailed(path, GITATTRIBUTES_NAME, exc) from None

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        budgets: Budgets | None = None,
        policy: Policy | None = None,
        mode: str | RecordMode = RecordMode.ONCE,
        meta: Mapping[str, Any] | None = None,
        base: str | os.PathLike[str] | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        compact_over: int | None | str = "policy",
    ) -> CassetteWriter:
        """Start a recording in directory `path`.

        `policy` (if given) must allow writing there (its write roots, relative to `base` or the
        cwd) and supplies the budgets unless `budgets` is given, and the compaction threshold
        unless `compact_over` is given (bytes of frames.jsonl over which the finalized
        cassette is stored compacted, "never" or None, "always" or 0; without a policy: never).
        `mode` "once" refuses any existing cassette, "rewrite" replaces it (only the cassette's
        own files are removed).
        `meta` is stored verbatim in the manifest: keep clock values out of it.
        """
        record_mode = RecordMode.parse(mode)
        target = policy.check_write_path(path, base) if policy is not None else Path(path)
        if budgets is None:
            budgets = policy.budgets if policy is not None else Budgets()
        if compact_over == "policy":
            compact_over = policy.compact_over_bytes if policy is not None else None
        else:
            compact_over = parse_compact_over(compact_over)
        lock = WriterLock.acquire(target)  # one writer per cassette, until finalize (lock.py)
        try:
            state = existing_state(target)
            if state is not None:
                if record_mode is RecordMode.ONCE:
                    raise CassetteExists(target, state)
                for name in _OUR_NAMES:
                    victim = target / name
                    if victim.is_dir() and not victim.is_symlink():
                        shutil.rmtree(victim)
                    elif victim.exists() or victim.is_symlink():
                        victim.unlink()
            target.mkdir(parents=True, exist_ok=True)
            (target / ARTIFACTS_DIR).mkdir(exist_ok=True)
            writer = cls(
                target,
                budgets=budgets,
                meta=meta or {},
                clock_ns=clock_ns,
                compact_over=compact_over,
            )
        except BaseException:
            lock.release()
            raise
        writer._lock = lock
        return writer

    # -- structure (rare; each rewrites the provisional manifest) ------------------------------

    def add_route(self, proto: str | Proto, listen: str, upstream: str) -> None:
        """A listener the proxy serves: `listen` and `upstream` as "host:port"."""
        self._check_open()
        route = {"listen": listen, "proto": Proto(proto).value, "upstream": upstream}
        if route not in self._routes:
            self._routes.append(route)
            self._write_manifest(finalized=False)

    def set_kafka_node(self, node_id: int, upstream: str, listen_port: int) -> None:
        """Kafka broker `node_id` (advertised as `upstream`) is served on `listen_port`."""
        self._check_open()
        entry = {"listen_port": int(listen_port), "upstream": upstream}
        if self._kafka_nodes.get(str(node_id)) != entry:
            self._kafka_nodes[str(int(node_id))] = entry
            self._write_manifest(finalized=False)

    def open_connection(self, proto: str | Proto, listen: str | None, upstream: str | None) -> int:
        """Register a client connection; returns its id (1, 2, ... in open order)."""
        self._check_open()
        if self._failed is not None:
            raise self._failed
        conn_id = self._next_conn
        self._next_conn += 1
        self._conns[conn_id] = ConnectionInfo(
            id=conn_id,
            proto=Proto(proto),
            listen=listen,
            upstream=upstream,
            opened_at_seq=self._seq,
        )
        self._journal_line(
            {
                "event": "open",
                "id": conn_id,
                "listen": listen,
                "opened_at_seq": self._seq,
                "proto": Proto(proto).value,
                "upstream": upstream,
            }
        )
        return conn_id

    def close_connection(self, conn_id: int, reason: str | None = None) -> None:
        """Mark a connection closed (idempotent: the first close wins)."""
        if self._manifest is not None:
            return  # late close after finalize (reactor shutdown order): nothing to record
        self.settle()
        conn = self._conn(conn_id)
        if conn.closed_at_seq is None:
            conn.closed_at_seq = self._seq
            conn.close_reason = reason
            if self._failed is not None:
                return  # nothing can be written any more; repair learns it from the frames
            self._journal_line(
                {
                    "close_reason": reason,
                    "closed_at_seq": self._seq,
                    "event": "close",
                    "id": conn_id,
                }
            )

    def add_artifact(self, src: str | os.PathLike[str], name: str) -> str:
        """Copy file `src` to artifacts/`name`; returns its sha256 (also recorded)."""
        self._check_open()
        rel = _artifact_relpath(name)
        self._artifacts[rel] = copy_durably(src, self.path / ARTIFACTS_DIR / rel)
        self._write_manifest(finalized=False)
        return self._artifacts[rel]

    # -- the hot path -------------------------------------------------------------------------

    def write_frame(
        self,
        conn: int,
        direction: str | Direction,
        proto: str | Proto,
        summary: Mapping[str, Any],
        raw: bytes,
        redacted: bool = False,
    ) -> int:
        """Append one whole frame; returns its seq (0, 1, ...).

        Raises BudgetExceeded when this frame would cross a budget: the frame is not written and
        every later call raises the same error; `finalize()` still works.
        """
        seq = self._seq
        self.write_frames(conn, direction, proto, ((summary, raw, redacted),))
        return seq

    def write_frames(
        self,
        conn: int,
        direction: str | Direction,
        proto: str | Proto,
        frames: Iterable[Sequence[Any]],
        encode: SummaryEncoder = summary_json,
        *,
        settle: bool = True,
    ) -> int:
        """Append whole frames of one connection leg with one write(2): each a sequence that
        starts (summary, raw, redacted), e.g. a tuple or an `rr.protocols.PipelineFrame`.
        `encode` makes a summary's canonical JSON (`format.summary_encoder`: maybe cached).

        The frames of one received chunk go out together: fewer system calls, and still only
        whole lines reach the file, each after its bytes. Returns how many were written. A
        frame that would cross a budget (or whose summary is not JSON-able) is not written, the
        frames before it are, then the error is raised (BudgetExceeded: also by every later
        call).

        With `settle=False` only what the file and the budgets need happens now (the writes,
        `frame_count`, the byte counts); the digests and the per-connection and per-direction
        counts wait for `settle()`, which the caller makes once the chunk was forwarded (the
        next write, a manifest, a close settle it too).
        """
        if self._pending is not None:
            self.settle()
        if self._stopped is not None:
            raise self._stopped
        if self._failed is not None:
            raise self._failed
        if self._manifest is not None:
            raise WriterClosed(self.path)
        info = self._conns.get(conn) or self._conn(conn)
        d = direction if direction.__class__ is Direction else Direction(direction)
        p = proto if proto.__class__ is Proto else Proto(proto)
        if p is not info.proto:
            raise ValueError(f"connection {conn} is {info.proto}, frame says {p}")
        key = (conn, d)
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = self._prefixes[key] = frame_line_prefix(conn, d, p)
        budgets = self.budgets
        max_frame, max_frames = budgets.max_frame_bytes, budgets.max_frames
        max_bytes = budgets.max_cassette_bytes
        seq0 = seq = self._seq
        file_bytes = self._file_bytes
        cassette_bytes = file_bytes + self._raw_bytes  # lines and sidecar: the budget's bytes
        if frames.__class__ is list and seq0 + len(frames) <= max_frames:  # type: ignore[attr-defined]
            whole = _whole_batch(frames, prefix, encode, max_frame, max_bytes - cassette_bytes)  # type: ignore[arg-type]
            if whole is not None:
                raw_data, lines, raw_bytes = whole
                n = len(frames)  # type: ignore[arg-type]
                self._commit(d, info, n, file_bytes + len(lines), raw_bytes, raw_data, lines)
                if settle:
                    self.settle()
                return n
        raw_bytes = 0
        parts: list[bytes] = []  # the lines' pieces, joined once for the one write
        raws: list[bytes] = []  # the frames' bytes, likewise
        head = len(prefix)
        stop: tuple[str, int, int] | None = None
        try:
            for frame in frames:
                summary, raw, redacted = frame[0], frame[1], frame[2]
                size = len(raw)
                if size > max_frame:
                    stop = ("max_frame_bytes", max_frame, size)
                    break
                if seq + 1 > max_frames:
                    stop = ("max_frames", max_frames, seq + 1)
                    break
                # frame_line's pieces, inline (the hot path): prefix, size, the rest
                size_text = b"%d" % size
                if summary.__class__ is EncodedSummary:
                    tail = summary.tail
                else:
                    tail = b"".join((SIZE_SUMMARY, encode(summary), b"}\n"))
                key = REDACTED_SIZE if redacted else SIZE_KEY
                length = head + len(key) + len(size_text) + len(tail)
                if cassette_bytes + length + size > max_bytes:
                    stop = ("max_cassette_bytes", max_bytes, cassette_bytes + length + size)
                    break
                parts += (prefix, key, size_text, tail)
                raws.append(raw)
                seq += 1
                file_bytes += length
                cassette_bytes += length + size
                raw_bytes += size
        finally:  # also when a summary is not JSON-able: the frames before it are written
            if parts:
                self._commit(
                    d, info, seq - seq0, file_bytes, raw_bytes, b"".join(raws), b"".join(parts)
                )
            if settle:
                self.settle()
        if stop is not None:
            self._stop(*stop)
        return seq - seq0

    def _commit(
        self,
        d: Direction,
        info: ConnectionInfo,
        n: int,
        file_bytes: int,
        raw_bytes: int,
        raw_data: bytes,
        lines: bytes,
    ) -> None:
        """Write `n` frames of one leg: their bytes, then their lines (see write_frames); their
        digests and counts are left to `settle`. A digest covers what reached its file: the
        sidecar's still does when the lines' write fails."""
        # every frame of the batch crossed in this one read: one time for all of them
        held = self._timing_held
        held += timing_line((self._clock_ns() - self._t0) // 1000) * n
        if len(held) >= TIMING_HOLD:
            self._write_timing()
        # the bytes before the lines that need them; os.write inline (it writes all at once
        # but on a full disk or a signal: then _write_all, which also names a failure)
        fd = self._raw
        try:
            done = os.write(fd, raw_data)
        except OSError as exc:
            self._fail(RAW_NAME, exc)
        if done != len(raw_data):
            self._write_all(fd, memoryview(raw_data)[done:], RAW_NAME)
        fd = self._fd
        try:
            done = os.write(fd, lines)
            if done != len(lines):
                self._write_all(fd, memoryview(lines)[done:], FRAMES_NAME)
        except OSError as exc:  # the sidecar bytes did reach frames.raw: digested
            self._raw_hash.update(raw_data)
            self._fail(FRAMES_NAME, exc)
        except CassetteWriteFailed:  # _write_all's: likewise
            self._raw_hash.update(raw_data)
            raise
        self._seq += n
        self._file_bytes = file_bytes
        self._raw_bytes += raw_bytes
        # the leg as d._value_: an enum's .value is a descriptor call (~0.3 us each)
        self._pending = (d._value_, info, n, raw_bytes, raw_data, lines)

    def settle(self) -> None:
        """Fold the batch written last (`write_frames(..., settle=False)`) into the digests and
        the per-connection and per-direction counts; nothing to do when there is none."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        d, info, n, raw_bytes, raw_data, lines = pending
        self._raw_hash.update(raw_data)
        self._hash.update(lines)
        self._frame_counts[d] += n
        info.frames[d] += n
        info.bytes[d] += raw_bytes

    # -- finish -------------------------------------------------------------------------------

    def finalize(self) -> Manifest:
        """fsync the frames, write the final manifest atomically. Idempotent.

        After a write error (or one now) it raises CassetteWriteFailed and finalizes nothing:
        the provisional manifest and the connection journal stay for `verify --repair`.
        """
        if self._manifest is not None:
            return self._manifest
        try:
            if self._failed is not None:
                raise self._failed
            try:
                self._write_timing()
                os.fsync(self._timing)
            except OSError as exc:
                self._fail(TIMING_NAME, exc)
            try:
                os.fsync(self._raw)
            except OSError as exc:
                self._fail(RAW_NAME, exc)
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._fail(FRAMES_NAME, exc)
            manifest = self._write_manifest(finalized=True)
        except CassetteWriteFailed:
            self._release()
            raise
        self._manifest = manifest
        os.close(self._timing)
        os.close(self._raw)
        os.close(self._journal)  # folded into the manifest: no longer needed
        (self.path / CONNECTIONS_JOURNAL).unlink(missing_ok=True)
        if should_compact(manifest.frames_file_bytes, self.compact_over):
            self._manifest = self._compact(manifest)
        fcntl.flock(self._fd, fcntl.LOCK_UN)  # released last: a repair never sees a half finish
        os.close(self._fd)
        self._released = True
        self._release_lock()
        return self._manifest

    def _compact(self, manifest: Manifest) -> Manifest:
        """The finalized cassette stored compacted (compact.py), still under the writer lock;
        if that fails (disk full) it stays plain, finalized and whole (`compact_failed` says
        why; `rrlab migrate --compact` can do it later)."""
        started = time.perf_counter()
        try:
            with CassetteDir(self.path) as root:
                return compact(root, manifest)
        except (OSError, CassetteError) as exc:
            self.compact_failed = exc
            return manifest
        finally:
            self.compact_seconds = time.perf_counter() - started

    @property
    def finalized(self) -> bool:
        return self._manifest is not None

    @property
    def failed(self) -> CassetteWriteFailed | None:
        """The write error that stopped recording, if any."""
        return self._failed

    @property
    def stopped(self) -> BudgetExceeded | None:
        """The budget error that stopped recording, if any."""
        return self._stopped

    @property
    def frame_count(self) -> int:
        return self._seq

    def __enter__(self) -> CassetteWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finalize()

    # -- internals ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._manifest is not None:
            raise WriterClosed(self.path)

    def _write_timing(self) -> None:
        held = self._timing_held
        if held:
            data = bytes(held)
            held.clear()
            self._write_all(self._timing, data, TIMING_NAME)
            self._timing_hash.update(data)
            self._timing_bytes += len(data)

    def _write_all(self, fd: int, data: bytes, name: str) -> None:
        """Every byte of `data` to `fd` (os.write may take part of it); a failure names the file."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            self._fail(name, exc)

    def _journal_line(self, event: dict[str, Any]) -> None:
        """One connection event, one write(2) of one whole line (O_APPEND)."""
        line = dumps(event) + b"\n"
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self._journal, view) :]
        except OSError as exc:
            self._fail(CONNECTIONS_JOURNAL, exc)

    def _fail(self, what: str, exc: OSError) -> NoReturn:
        """A write error: recording stops for good (a torn last line is what repair drops);
        this and every later write raises the same CassetteWriteFailed."""
        if self._failed is None:
            self._failed = CassetteWriteFailed(self.path, what, exc)
        raise self._failed from exc

    def _release(self) -> None:
        """Close the files and drop the lock without finalizing (after a write error)."""
        if self._released:
            return
        self._released = True
        for fd in (self._journal, self._timing, self._raw, self._fd):
            try:
                os.close(fd)  # closing frames.jsonl releases its flock
            except OSError:
                pass
        self._release_lock()

    def _release_lock(self) -> None:
        """Let another writer (a repair, a new recording) have the cassette."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _conn(self, conn_id: int) -> ConnectionInfo:
        try:
            return self._conns[conn_id]
        except KeyError:
            raise ValueError(f"unknown connection id {conn_id!r}") from None

    def _stop(self, budget: str, limit: int, value: int) -> None:
        self._stopped = BudgetExceeded(budget, limit, value)
        self._write_manifest(finalized=False)
        raise self._stopped

    def build_manifest(self, *, finalized: bool) -> Manifest:
        self.settle()
        protocols = {r["proto"] for r in self._routes} | {
            c.proto.value for c in self._conns.values()
        }
        return Manifest(
            tool_version=rr.__version__,
            meta=self._meta,
            protocols=tuple(sorted(protocols)),
            routes=tuple(dict(r) for r in self._routes),
            kafka_nodes={k: dict(v) for k, v in self._kafka_nodes.items()},
            connections=tuple(ConnectionInfo.from_dict(c.to_dict()) for c in self._conns.values()),
            frame_count=self._seq,
            frame_counts=dict(self._frame_counts),
            raw_bytes=self._raw_bytes,
            frames_file_bytes=self._file_bytes,
            frames_sha256=self._hash.hexdigest(),
            budgets=self.budgets,
            stopped=self._stopped.to_dict() if self._stopped else None,
            artifacts=dict(self._artifacts),
            finalized=finalized,
            timing_file_bytes=self._timing_bytes,
            timing_sha256=self._timing_hash.hexdigest(),
            raw_file_bytes=self._raw_bytes,
            raw_sha256=self._raw_hash.hexdigest(),
        )

    def _write_manifest(self, *, finalized: bool) -> Manifest:
        self._write_timing()  # the manifest counts every time so far
        manifest = self.build_manifest(finalized=finalized)
        try:
            write_atomic(self.path / MANIFEST_NAME, manifest.to_json(), durable=finalized)
        except OSError as exc:
            self._fail(MANIFEST_NAME, exc)
        return manifest
