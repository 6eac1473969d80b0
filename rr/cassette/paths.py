"""Every path read from a cassette stays inside it: cassettes are untrusted input.

A cassette arrives in a pull request like any other file, so its names (artifact keys in
cassette.json) and its entries (a `frames.jsonl` that is a symlink to a secret, a directory
`artifacts/` that links outside) must not lead anywhere else. `CassetteDir` holds the
directory open and reaches each entry from it, one component at a time, with `O_NOFOLLOW`:
no `..`, no absolute path, no symlink at any level, and only regular files (a FIFO would block a
read forever). The directory you name yourself is followed like any path you type; nothing
inside it is.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from .errors import CassetteError, CassetteNotFound, UnsafePath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO does not hang us


def safe_relpath(name: object) -> str:
    """`name` as a relative POSIX path with no `..`, `.`, empty or absolute part; ValueError."""
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        raise ValueError(f"not a relative path inside the cassette: {name!r}")
    rel = PurePosixPath(name)
    if rel.is_absolute() or any(p in ("..", ".", "") for p in name.split("/")):
        raise ValueError(f"not a relative path inside the cassette: {name!r}")
    return rel.as_posix()


class CassetteDir:
    """A cassette directory held open; entries are opened relative to it, never through a link.

    Use as a context manager (or call `close`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.fd = -1
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise CassetteNotFound(self.path, "no such cassette directory") from None
        except NotADirectoryError:
            raise CassetteNotFound(self.path, "not a directory") from None
        except OSError as exc:
            raise CassetteError(self.path, f"cannot open: {exc.strerror}") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> CassetteDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------

    def kind(self, name: str) -> str | None:
        """ "file", "dir", "link", "other" or None (absent) for the entry `name`, links not
        followed at any level (an entry below a link is "link")."""
        parts = safe_relpath(name).split("/")
        parent = self._walk(parts[:-1], name, missing_ok=True)
        if parent is None:
            return None
        try:
            st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                return "link"
            raise
        finally:
            if parent != self.fd:
                os.close(parent)
        if stat.S_ISLNK(st.st_mode):
            return "link"
        if stat.S_ISREG(st.st_mode):
            return "file"
        return "dir" if stat.S_ISDIR(st.st_mode) else "other"

    def open(self, name: str, flags: int = os.O_RDONLY) -> int:
        """A file descriptor of regular file `name` (a relative path inside the cassette).

        FileNotFoundError when absent; UnsafePath for a link at any level or a non-file."""
        parts = safe_relpath(name).split("/")
        parent = self._walk(parts[:-1], name)
        assert parent is not None
        try:
            fd = os.open(parts[-1], flags | _FILE_FLAGS, 0o644, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(self.path, name, "is a symlink") from None
            if exc.errno == errno.EISDIR:
                raise UnsafePath(self.path, name, "is a directory") from None
            raise
        finally:
            if parent != self.fd:
                os.close(parent)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise UnsafePath(self.path, name, "is not a regular file")
        os.set_blocking(fd, True)
        return fd

    def read(self, name: str, limit: int) -> bytes:
        """The whole of file `name`, refused (CassetteError) when longer than `limit` bytes."""
        fd = self.open(name)
        try:
            size = os.fstat(fd).st_size
            if size > limit:
                raise CassetteError(
                    self.path, f"{name} is {size} bytes, more than the {limit} this rrlab reads"
                )
            with open(fd, "rb", closefd=False) as fh:
                data = fh.read(size + 1)  # read(n) allocates n bytes first: not `limit`
        finally:
            os.close(fd)
        if len(data) > limit:
            raise CassetteError(self.path, f"{name} grew past {limit} bytes while being read")
        return data

    def _walk(self, parts: list[str], name: str, missing_ok: bool = False) -> int | None:
        """A descriptor of the directory `parts` below the root (the root's own fd for none)."""
        fd = self.fd
        for i, part in enumerate(parts):
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                why = ""
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and not missing_ok:
                    link = stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode)
                    why = "is a symlink" if link else "is not a directory"
                if fd != self.fd:
                    os.close(fd)
                if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR) and missing_ok:
                    return None
                if why:
                    where = "/".join(parts[: i + 1])
                    raise UnsafePath(self.path, name, f"is below {where!r}, which {why}") from None
                raise
            if fd != self.fd:
                os.close(fd)
            fd = nxt
        return fd

    # -- writing (repair only: every name is one of the cassette's own, in its top level) --------

    def write_atomic(self, name: str, data: bytes | Iterable[bytes]) -> None:
        """Replace top-level file `name` with `data` (bytes, or chunks of them: streamed)
        durably (temp file, fsync, rename, directory fsync), never writing through a link: a
        planted `.NAME.tmp` link is removed, not followed, and the rename replaces a link at
        `name` itself instead of its target. An error from `data` leaves `name` as it was."""
        if "/" in safe_relpath(name):
            raise ValueError(f"{name!r}: only top-level files are written")
        tmp = f".{name}.tmp"
        try:
            os.unlink(tmp, dir_fd=self.fd)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS, 0o644, dir_fd=self.fd)
        try:
            for chunk in (data,) if isinstance(data, bytes | bytearray) else data:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=self.fd)
            raise
        os.close(fd)
        os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        os.fsync(self.fd)

    def unlink(self, name: str) -> None:
        """Remove top-level entry `name` if present (a link is removed, never followed)."""
        try:
            os.unlink(safe_relpath(name), dir_fd=self.fd)
        except FileNotFoundError:
            pass

    def fsync(self) -> None:
        os.fsync(self.fd)
