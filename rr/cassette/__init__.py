"""Cassette format 3: a directory with cassette.json, frames.jsonl, frames.raw, frames.timing
and artifacts/ (formats 1 and 2 are still read; `rrlab migrate` rewrites them).

writer (record), reader (replay, inspect), verify (integrity and crash repair), migrate (old
formats to the current one), paths (every entry read inside the cassette, no link followed),
lock (one writer per cassette).

The names below are imported when first used (PEP 562): a replay that needs the reader does
not pay for the writer's imports at start-up. `verify` is the exception: it is also the name of
a submodule, which importing it anywhere would bind here in place of the function, so it is
imported now (it needs the reader and the lock, not the writer).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import (
        ArtifactMissing,
        CassetteError,
        CassetteExists,
        CassetteLocked,
        CassetteNotFound,
        CountMismatch,
        DigestMismatch,
        InvalidRecordMode,
        MalformedFrame,
        MalformedManifest,
        NotACassette,
        NotFinalized,
        RecordingInProgress,
        RepairedRefused,
        TruncatedFrames,
        UnsafePath,
        UnsupportedFormat,
        WriterClosed,
    )
    from .format import FORMAT, ConnectionInfo, FrameRecord, Manifest
    from .lock import WriterLock
    from .reader import CassetteReader, read_artifact
    from .record_mode import RecordMode
    from .writer import CassetteWriter

from .verify import VerifyReport, verify

_ERRORS = (
    "ArtifactMissing",
    "CassetteError",
    "CassetteExists",
    "CassetteLocked",
    "CassetteNotFound",
    "CountMismatch",
    "DigestMismatch",
    "InvalidRecordMode",
    "MalformedFrame",
    "MalformedManifest",
    "NotACassette",
    "NotFinalized",
    "RecordingInProgress",
    "RepairedRefused",
    "TruncatedFrames",
    "UnsafePath",
    "UnsupportedFormat",
    "WriterClosed",
)
#: public name -> the submodule that defines it
_WHERE = {name: "errors" for name in _ERRORS} | {
    "FORMAT": "format",
    "ConnectionInfo": "format",
    "FrameRecord": "format",
    "Manifest": "format",
    "WriterLock": "lock",
    "CassetteReader": "reader",
    "read_artifact": "reader",
    "RecordMode": "record_mode",
    "CassetteWriter": "writer",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "FORMAT",
    "ArtifactMissing",
    "CassetteError",
    "CassetteExists",
    "CassetteLocked",
    "CassetteNotFound",
    "CassetteReader",
    "CassetteWriter",
    "ConnectionInfo",
    "CountMismatch",
    "DigestMismatch",
    "FrameRecord",
    "InvalidRecordMode",
    "MalformedFrame",
    "MalformedManifest",
    "Manifest",
    "NotACassette",
    "NotFinalized",
    "RecordMode",
    "RecordingInProgress",
    "RepairedRefused",
    "TruncatedFrames",
    "UnsafePath",
    "UnsupportedFormat",
    "VerifyReport",
    "WriterClosed",
    "WriterLock",
    "read_artifact",
    "verify",
]
