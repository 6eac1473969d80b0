"""Record modes as a validated enum (VCR.py style): a bad value names the valid ones."""

from __future__ import annotations

import enum

from .errors import InvalidRecordMode


class RecordMode(enum.StrEnum):
    ONCE = "once"  # refuse to touch an existing cassette
    REWRITE = "rewrite"  # replace an existing cassette

    @classmethod
    def parse(cls, value: str | RecordMode) -> RecordMode:
        try:
            return cls(value)
        except ValueError:
            raise InvalidRecordMode(value, [m.value for m in cls]) from None
