"""Writing the run's files: checked up front, each written atomically (temp file + rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from worker.errors import WorkerError


def prepare(out: Path) -> Path:
    """Create `out` if needed and prove it is writable before any broker is contacted."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise WorkerError(
            f"cannot write to output directory {str(out)!r}: {reason} (pass a writable --out)"
        ) from exc
    return out


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a reader never sees a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
