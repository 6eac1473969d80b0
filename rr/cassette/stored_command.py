"""The command a cassette was recorded from, so that the cassette can replay itself.

`rrlab record` stores what it ran: the argv, the working directory and an optional prepare step
(what the command needs fetched or built first, with the network: replay runs the command where
none is reachable). The working directory is stored relative to the cassette directory itself
(`../..` for `cassettes/NAME` recorded at a project's root): no marker file to search for, and a
repository moved or cloned elsewhere still finds its directory. Paths in the argv that point
inside the working directory (a venv's interpreter, a script of the project) are stored relative
to it for the same reason; the command runs from that directory, so they mean the same files.
Everything else is stored as given: a command that names files outside its project depends on
that machine, and replay says which path it could not run.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any


@dataclass(frozen=True, slots=True)
class StoredCommand:
    """`argv` run from `cwd` (POSIX, relative to the cassette directory); `prepare` (possibly
    empty) run first from the same directory, outside any sandbox."""

    argv: tuple[str, ...]
    cwd: str
    prepare: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "cwd": self.cwd, "prepare": list(self.prepare)}

    @classmethod
    def from_dict(cls, data: Any) -> StoredCommand:
        """ValueError naming the field when the manifest's `command` is not one."""
        if not isinstance(data, Mapping):
            raise ValueError("command must be an object with argv, cwd and prepare")
        argv, cwd, prepare = data.get("argv"), data.get("cwd"), data.get("prepare", [])
        if not _strings(argv) or not argv:
            raise ValueError("command.argv must be a non-empty list of strings")
        if not _strings(prepare):
            raise ValueError("command.prepare must be a list of strings")
        if not isinstance(cwd, str) or not cwd or PurePosixPath(cwd).is_absolute():
            raise ValueError("command.cwd must be a path relative to the cassette directory")
        if unknown := set(data) - {"argv", "cwd", "prepare"}:
            raise ValueError(f"command has unknown keys {sorted(unknown)}")
        return cls(tuple(argv), cwd, tuple(prepare))

    def workdir(self, cassette: str | os.PathLike[str]) -> Path:
        """The directory the command runs from, for the cassette at `cassette` now."""
        return Path(os.path.normpath(Path(os.path.abspath(cassette)) / self.cwd))

    def shown(self) -> str:
        """The argv as one shell-quoted line (for humans: summaries, help, errors)."""
        return shlex.join(self.argv)


def capture(
    argv: Sequence[str],
    cwd: str | os.PathLike[str],
    cassette: str | os.PathLike[str],
    prepare: Sequence[str] = (),
) -> StoredCommand:
    """What `rrlab record` stores for `argv` (and `prepare`) run from `cwd` into `cassette`."""
    here = os.path.abspath(cwd)
    rel = os.path.relpath(here, os.path.abspath(cassette))
    return StoredCommand(
        tuple(_inside(a, here) for a in argv),
        PurePosixPath(*Path(rel).parts).as_posix(),
        tuple(_inside(a, here) for a in prepare),
    )


def _inside(arg: str, cwd: str) -> str:
    """`arg` relative to `cwd` when it is an absolute path under it, else `arg` unchanged. A
    relative result keeps a `/` (`./name`): as argv[0] it must not become a PATH lookup."""
    if not arg.startswith("/"):
        return arg
    path = os.path.normpath(arg)
    if os.path.commonpath([path, cwd]) != cwd or path == cwd:
        return arg
    rel = os.path.relpath(path, cwd)
    return rel if "/" in rel else f"./{rel}"


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)
