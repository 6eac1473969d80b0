"""Artifacts must come from this run: earlier copies are moved aside before the command starts.

A file left at an artifact's path by an earlier run would otherwise be taken for this run's
output: `rrlab replay -- true` after a good run compared the old file with the recording and said
OK, and `rrlab record` stored it. So before the command runs, every artifact that exists is
renamed to `<name>.rrlab-previous` beside it (one rename in the same directory: nothing copied,
nothing lost). Afterwards `settle()` decides: a new file was written, so the earlier copy is
deleted (the command replaced it, as it would have without us); none was written, so the earlier
copy stays aside and the caller names it. `restore()` puts them back when the command never ran.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SUFFIX = ".rrlab-previous"


class StaleArtifactError(Exception):
    """An earlier copy could not be moved aside (one line: which file, and why)."""


def aside_path(path: Path) -> Path:
    """Where the earlier copy of `path` is kept while (and after) the command runs."""
    return path.with_name(path.name + SUFFIX)


class ArtifactsAside:
    """The artifacts of one run, by the name the caller reports them under."""

    def __init__(self, artifacts: Mapping[str, Path]) -> None:
        self.artifacts = dict(artifacts)
        self.moved: dict[str, Path] = {}  # name -> its earlier copy, moved aside by this run

    def move(self) -> None:
        """Rename every existing artifact aside (an older aside copy is replaced)."""
        for name, path in self.artifacts.items():
            if not os.path.lexists(path):
                continue
            aside = aside_path(path)
            try:
                os.replace(path, aside)
            except OSError as exc:
                self.restore()
                raise StaleArtifactError(
                    f"{name}: cannot move the earlier copy aside to {aside}: {exc.strerror}"
                ) from None
            self.moved[name] = aside

    def written(self, name: str) -> bool:
        """Whether the command wrote `name` in this run (only this run's files are there)."""
        return os.path.lexists(self.artifacts[name])

    def settle(self) -> dict[str, Path]:
        """After the command: drop the earlier copies it replaced; return {name: earlier copy}
        for the artifacts it did not write whose earlier copy is kept aside."""
        kept: dict[str, Path] = {}
        for name, path in self.artifacts.items():
            aside = aside_path(path)
            if self.written(name):
                if os.path.lexists(aside):
                    os.unlink(aside)
            elif os.path.lexists(aside):
                kept[name] = aside
        self.moved.clear()
        return kept

    def restore(self) -> None:
        """The command never ran: put every moved copy back where it was."""
        for name, aside in self.moved.items():
            path = self.artifacts[name]
            if not os.path.lexists(path):
                os.replace(aside, path)
        self.moved.clear()
