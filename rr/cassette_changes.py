"""What changed between two recordings of the same thing, in frame summaries (never base64).

A re-recording differs in ids, timestamps and batch boundaries even when nothing that matters
changed, so the comparison is of each connection's frame names (`describe().what`: API and
version, AMQP method, MQTT packet) with how often each occurs, in order of first appearance.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from rrlab.rr.cassette import CassetteReader, FrameRecord
from rrlab.rr.protocols import protocol_for

MAX_LINES = 40


def outline(frames: Iterable[FrameRecord]) -> list[str]:
    """One line per frame name of each connection, with its count (connections in the order
    they were numbered)."""
    per_conn: dict[int, dict[str, int]] = {}
    for frame in frames:
        what = protocol_for(frame.proto).describe(frame.summary).what
        names = per_conn.setdefault(frame.conn, {})
        key = f"{frame.proto} {frame.dir} {what}"
        names[key] = names.get(key, 0) + 1
    return [
        f"conn {n}: {name}" + (f" x{count}" if count > 1 else "")
        for n, (_conn, names) in enumerate(sorted(per_conn.items()), start=1)
        for name, count in names.items()
    ]


def cassette_outline(path: str | Path) -> list[str]:
    return outline(CassetteReader.open(path, check_digest=False).frames())


def changes(old: list[str], new: list[str], max_lines: int = MAX_LINES) -> list[str]:
    """A short unified diff of two outlines ([] when they are the same)."""
    diff = list(difflib.unified_diff(old, new, "previous", "new", lineterm="", n=1))
    if len(diff) > max_lines:
        diff = diff[:max_lines] + [f"... ({len(diff) - max_lines} more diff lines)"]
    return diff
