"""Cassette format v1: a directory with cassette.json, frames.jsonl and artifacts/.

writer (record), reader (replay, inspect), verify (integrity and crash repair).
"""

from .errors import (
    CassetteError,
    CassetteExists,
    CassetteNotFound,
    CountMismatch,
    DigestMismatch,
    InvalidRecordMode,
    MalformedFrame,
    MalformedManifest,
    NotACassette,
    NotFinalized,
    TruncatedFrames,
    UnsupportedFormat,
    WriterClosed,
)
from .format import FORMAT, ConnectionInfo, FrameRecord, Manifest
from .record_mode import RecordMode
from .writer import CassetteWriter

__all__ = [
    "FORMAT",
    "CassetteError",
    "CassetteExists",
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
    "UnsupportedFormat",
    "WriterClosed",
]
