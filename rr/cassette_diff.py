"""What differs between two cassettes, frame by frame, as decoded values (never base64).

`rrlab diff A B` reviews a re-recording. Connections pair by id (ids are numbered in open
order); each direction of a pair is aligned on its own by the frames' names with difflib, so a
frame added or lost shows as one, not as every later frame shifted. The two directions of a
connection are two ordered streams: how the client's frames interleave with the broker's (a
PUBACK before or after the next PUBLISH arrives) is timing, and is not compared. An aligned pair is
compared as the protocol's view of it (`WireProtocol.content`: the summary, a Kafka body by
`entity_view` and its records by key, value and headers, a message body by `rr.diff.value_of`)
with `rr.diff.differences`. Seq, timing and raw bytes are not behaviour and are not compared
(a Kafka batch's timestamps and CRC change every run; its records are compared instead).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rrlab.rr import diff
from rrlab.rr.cassette import CassetteReader, FrameRecord
from rrlab.rr.codecs.base import Direction
from rrlab.rr.protocols import protocol_for

#: field differences listed per frame at most (the first say what changed)
MAX_FIELDS = diff.MAX_LINES


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One leaf that differs: its path in the frame's view, and each side's value (ABSENT:
    that side has no such field)."""

    path: str
    a: Any
    b: Any

    def line(self) -> str:
        return f"{self.path}: {diff.show(self.a)} -> {diff.show(self.b)}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        for side, value in (("a", self.a), ("b", self.b)):
            if value is not diff.ABSENT:
                out[side] = value
        return out


@dataclass(frozen=True, slots=True)
class FrameChange:
    """A frame that differs: `changed` (aligned, with field changes), `removed` (only in A),
    `added` (only in B). `what` is the protocol's description of the frame."""

    conn: int
    change: str
    dir: str
    what: str
    seq_a: int | None = None
    seq_b: int | None = None
    fields: tuple[FieldChange, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "conn": self.conn,
            "dir": self.dir,
            "fields": [f.to_dict() for f in self.fields],
            "seq_a": self.seq_a,
            "seq_b": self.seq_b,
            "what": self.what,
        }


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """A connection only one side has (`removed`: only in A, `added`: only in B), or whose
    protocol differs (`proto`)."""

    conn: int
    change: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"change": self.change, "conn": self.conn, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ArtifactChange:
    """An artifact (a file the recorded command wrote) whose digest differs, or that only one
    side has (`removed`: only in A, `added`: only in B)."""

    name: str
    change: str

    def to_dict(self) -> dict[str, Any]:
        return {"change": self.change, "name": self.name}


@dataclass(slots=True)
class CassetteDiff:
    connections: list[ConnectionChange] = field(default_factory=list)
    frames: list[FrameChange] = field(default_factory=list)
    artifacts: list[ArtifactChange] = field(default_factory=list)
    #: frames compared on each side, and pairs found equal
    counted: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0, "same": 0})

    @property
    def equal(self) -> bool:
        return not self.connections and not self.frames and not self.artifacts

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifacts": [a.to_dict() for a in self.artifacts],
            "connections": [c.to_dict() for c in self.connections],
            "equal": self.equal,
            "frames": [f.to_dict() for f in self.frames],
            "frames_a": self.counted["a"],
            "frames_b": self.counted["b"],
            "frames_same": self.counted["same"],
        }

    def lines(self) -> list[str]:
        """The human report: one line per connection or frame change, its fields indented."""
        out = [f"artifact {a.name}: {a.change}" for a in self.artifacts]
        out += [f"conn {c.conn}: {c.change} ({c.detail})" for c in self.connections]
        for f in self.frames:
            arrow = "->" if f.dir == "c2s" else "<-"
            seqs = f"seq {_seq(f.seq_a)} / {_seq(f.seq_b)}"
            out.append(f"conn {f.conn} {arrow} {f.what}: {f.change} ({seqs})")
            out += [f"    {field_change.line()}" for field_change in f.fields]
        return out


def _seq(seq: int | None) -> str:
    return "-" if seq is None else str(seq)


def frame_view(frame: FrameRecord) -> dict[str, Any]:
    """The frame as a value: what its protocol says it carries (`WireProtocol.content`)."""
    return protocol_for(frame.proto).content(frame.dir, frame.summary, frame.raw)


def _key(frame: FrameRecord) -> str:
    return protocol_for(frame.proto).describe(frame.summary).what


def compare_frames(
    conn: int,
    a: Sequence[FrameRecord],
    b: Sequence[FrameRecord],
    ignore: Iterable[diff.Path] = (),
) -> tuple[list[FrameChange], int]:
    """The changes between two connections' frames (in order of A's seq, then B's), and how
    many aligned pairs are equal. Each direction is aligned on its own."""
    ignore = tuple(ignore)
    changes: list[FrameChange] = []
    same = 0
    for direction in (Direction.C2S, Direction.S2C):
        found, equal = _compare_stream(
            conn, [f for f in a if f.dir is direction], [f for f in b if f.dir is direction], ignore
        )
        changes += found
        same += equal
    changes.sort(key=lambda c: (c.seq_a is None, c.seq_a or 0, c.seq_b or 0))
    return changes, same


def _compare_stream(
    conn: int, a: list[FrameRecord], b: list[FrameRecord], ignore: tuple[diff.Path, ...]
) -> tuple[list[FrameChange], int]:
    keys_a, keys_b = [_key(f) for f in a], [_key(f) for f in b]
    matcher = difflib.SequenceMatcher(None, keys_a, keys_b, autojunk=False)
    changes: list[FrameChange] = []
    same = 0
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for fa, fb in zip(a[i1:i2], b[j1:j2], strict=True):
                fields = _fields(fa, fb, ignore)
                if fields:
                    changes.append(_change(conn, "changed", fa, fb, fields))
                else:
                    same += 1
            continue
        # replace: frames of other names at one place; paired when the counts agree
        if op == "replace" and i2 - i1 == j2 - j1:
            for fa, fb in zip(a[i1:i2], b[j1:j2], strict=True):
                changes.append(_change(conn, "changed", fa, fb, _fields(fa, fb, ignore)))
            continue
        changes += [_change(conn, "removed", fa, None) for fa in a[i1:i2]]
        changes += [_change(conn, "added", None, fb) for fb in b[j1:j2]]
    return changes, same


def _fields(
    fa: FrameRecord, fb: FrameRecord, ignore: tuple[diff.Path, ...]
) -> tuple[FieldChange, ...]:
    if fa.raw == fb.raw and fa.summary == fb.summary:
        return ()  # the same bytes decode the same: most frames of a re-recording
    va, vb = frame_view(fa), frame_view(fb)
    for path in ignore:
        va, vb = diff.without(va, path), diff.without(vb, path)
    found = diff.differences(va, vb, whole="frame")
    return tuple(FieldChange(p, x, y) for p, x, y in found[:MAX_FIELDS])


def _change(
    conn: int,
    change: str,
    fa: FrameRecord | None,
    fb: FrameRecord | None,
    fields: tuple[FieldChange, ...] = (),
) -> FrameChange:
    shown = fb if fa is None else fa
    assert shown is not None
    what = protocol_for(shown.proto).describe(shown.summary).what
    if fa is not None and fb is not None:
        what_b = protocol_for(fb.proto).describe(fb.summary).what
        if what_b != what:
            what = f"{what} / {what_b}"
    return FrameChange(
        conn,
        change,
        shown.dir.value,
        what,
        None if fa is None else fa.seq,
        None if fb is None else fb.seq,
        fields,
    )


def compare(a: CassetteReader, b: CassetteReader, ignore: Iterable[str] = ()) -> CassetteDiff:
    """Every difference between two opened cassettes. `ignore`: rr.diff paths into a frame's
    view (`summary.correlation_id`, `body.member_id`, `records.value.ts`) left out on both
    sides; ValueError names a bad one."""
    paths = tuple(diff.parse_path(p) for p in ignore)
    result = CassetteDiff()
    arts_a, arts_b = a.manifest.artifacts, b.manifest.artifacts
    for name in sorted(arts_a.keys() | arts_b.keys()):
        if name not in arts_b:
            result.artifacts.append(ArtifactChange(name, "removed"))
        elif name not in arts_a:
            result.artifacts.append(ArtifactChange(name, "added"))
        elif arts_a[name] != arts_b[name]:
            result.artifacts.append(ArtifactChange(name, "changed"))
    conns_a = {c.id: c for c in a.manifest.connections}
    conns_b = {c.id: c for c in b.manifest.connections}
    for conn_id in sorted(conns_a.keys() | conns_b.keys()):
        ca, cb = conns_a.get(conn_id), conns_b.get(conn_id)
        if cb is None:
            assert ca is not None
            result.connections.append(
                ConnectionChange(conn_id, "removed", f"{ca.proto.value}, only in A")
            )
            result.counted["a"] += a.index().count(conn_id)
            continue
        if ca is None:
            result.connections.append(
                ConnectionChange(conn_id, "added", f"{cb.proto.value}, only in B")
            )
            result.counted["b"] += b.index().count(conn_id)
            continue
        if ca.proto is not cb.proto:
            result.connections.append(
                ConnectionChange(conn_id, "proto", f"{ca.proto.value} in A, {cb.proto.value} in B")
            )
            continue
        frames_a, frames_b = list(a.frames_for(conn_id)), list(b.frames_for(conn_id))
        result.counted["a"] += len(frames_a)
        result.counted["b"] += len(frames_b)
        changes, same = compare_frames(conn_id, frames_a, frames_b, paths)
        result.frames += changes
        result.counted["same"] += same
    return result
