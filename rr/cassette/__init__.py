"""Cassette format v1: a directory with cassette.json, frames.jsonl and artifacts/.

writer (record), reader (replay, inspect), verify (integrity and crash repair), paths (every
entry read inside the cassette, no link followed), lock (one writer per cassette).
"""

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
from .verify import VerifyReport, verify
from .writer import CassetteWriter

__all__ = [
    "FORMAT",
    "ArtifactMissing",
    "CassetteReader",
    "RecordingInProgress",
    "RepairedRefused",
    "VerifyReport",
    "verify",
    "CassetteError",
    "CassetteExists",
    "CassetteLocked",
    "CassetteNotFound",
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
    "TruncatedFrames",
    "UnsafePath",
    "UnsupportedFormat",
    "WriterClosed",
    "WriterLock",
    "read_artifact",
]
