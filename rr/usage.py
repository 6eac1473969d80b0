"""Exit codes and the usage error every `rrlab` subcommand shares (one place, no wiring here)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A user error: printed as one line, exit 2."""
