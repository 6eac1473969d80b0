"""Canonical JSON: the one encoding for everything compared byte-for-byte."""

from __future__ import annotations

from typing import Any

import canonicaljson


def dumps(value: Any) -> bytes:
    """Encode `value` as canonical JSON (sorted keys, no spaces, UTF-8)."""
    return canonicaljson.encode_canonical_json(value)


def dumps_line(value: Any) -> bytes:
    """Canonical JSON plus a newline: one record of a JSON-lines file."""
    return dumps(value) + b"\n"
