"""Replacing a file so a reader sees the old bytes or the new, never a mix.

One place for it: the cassette writer (durably), the replay report and metrics, the arch locks.
The worker keeps its own copy: it imports nothing of ours.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write `data` to `.NAME.tmp` beside `path`, then rename it over `path` (a failed write
    leaves the old file and no temporary one). `durable` also fsyncs the file and its directory,
    for what must survive a crash (a cassette's manifest)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
