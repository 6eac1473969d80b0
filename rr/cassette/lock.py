"""One writer per cassette: an flock on `.NAME.lock` beside the cassette directory `NAME`.

Taken by everything that writes a cassette: `rrlab record` (for its whole run), the cassette
writer (`rrlab proxy`: from `CassetteWriter.create` to `finalize`) and `rrlab verify --repair`.
A second writer gets CassetteLocked naming the holder's pid (the CLIs exit 2).

Why beside the cassette and not inside it: `rrlab record --mode rewrite` records into a
temporary directory next to the cassette and swaps it in with renames, so a lock inside the
old directory would be renamed away with it while the next writer locks a new file; the parent
directory stays put. Why flock: the kernel releases it when its holder exits, however it exits,
so a stale lock file of a dead process never blocks anyone (its pid is only a note). The file is
removed on release; a writer that took the lock on a file already unlinked by the previous holder
sees the path no longer names its file and takes it again.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import os
from pathlib import Path

from .errors import CassetteError, CassetteLocked, printable

_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def lock_path(cassette: str | os.PathLike[str]) -> Path:
    """`.NAME.lock` in the directory that holds cassette `NAME` (symlinks resolved)."""
    target = Path(cassette).resolve()
    return target.parent / f".{target.name or 'cassette'}.lock"


class WriterLock:
    """Held from `acquire` until `release` (or the end of a `with` block, or process exit)."""

    def __init__(self, cassette: Path, path: Path, fd: int) -> None:
        self.cassette = cassette
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, cassette: str | os.PathLike[str]) -> WriterLock:
        """Take the lock of `cassette` without waiting: CassetteLocked if another process (or
        another writer in this one) holds it."""
        path = lock_path(cassette)
        path.parent.mkdir(parents=True, exist_ok=True)  # a writer creates it anyway
        for _attempt in range(100):
            try:
                fd = os.open(path, _FLAGS, 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise CassetteError(cassette, f"{path} is a symlink; remove it") from None
                raise CassetteError(
                    cassette, f"cannot create the writer lock {path}: {exc.strerror}"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise CassetteLocked(cassette, pid, _command(pid)) from None
            if _same_file(fd, path):
                break
            os.close(fd)  # the holder removed it as we opened it: lock the new one
        else:  # pragma: no cover - a hundred releases in a row between open and flock
            raise CassetteError(cassette, f"could not take the writer lock {path}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)
        lock = cls(Path(cassette), path, fd)
        atexit.register(lock.release)
        return lock

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        """Remove the lock file and let go (idempotent)."""
        if self._fd < 0:
            return
        atexit.unregister(self.release)
        if _same_file(self._fd, self.path):
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(self._fd)  # closing releases the flock
        self._fd = -1

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).split(b"\n", 1)[0]
        return int(text) if text.strip() else None
    except (OSError, ValueError):
        return None


def _command(pid: int | None) -> str:
    """The holder's command line, short, if this system shows it (Linux /proc)."""
    if pid is None:
        return ""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read(4096).split(b"\0")
    except OSError:
        return ""
    words = [a.decode("utf-8", "replace") for a in argv if a]
    if words and os.path.basename(words[0]).startswith("python"):
        words = words[2:] if words[1:2] == ["-m"] else words[1:]  # `python -m rrlab`, a script
    if words:
        words[0] = os.path.basename(words[0])
    text = printable(" ".join(words))
    return text if len(text) <= 80 else text[:77] + "..."
