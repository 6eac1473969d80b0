"""The two lock files: sha256 of the canonical form of every file a contract covers.

`manifest.lock.json` covers the manifest and everything under arch/ it points at (indexes,
profiles, schemas); `contracts.lock.json` covers what the contracts check outside arch/: cassette
manifests, committed aggregates and the import-linter configuration (its TOML table, as canonical
JSON). Drift without `--write-lock` is E_ARCH_LOCK_MISMATCH naming the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from rrlab.rr.canonical import dumps

from .findings import E_LOCK, Finding

LOCK_FORMAT = "rrlab.arch.lock/1"
ALGORITHM = "sha256-canonical-json"


def digest_value(value: Any) -> str:
    return hashlib.sha256(dumps(value)).hexdigest()


def lock_document(scope: str, files: dict[str, str]) -> dict[str, Any]:
    return {
        "algorithm": ALGORITHM,
        "files": dict(sorted(files.items())),
        "format": LOCK_FORMAT,
        "scope": scope,
    }


@dataclass(frozen=True, slots=True)
class LockChange:
    """One line of a lock diff: a file added, removed or changed (old/new digests)."""

    lock: str
    path: str
    old: str | None
    new: str | None

    @property
    def kind(self) -> str:
        return "added" if self.old is None else "removed" if self.new is None else "changed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "lock": self.lock,
            "new": self.new,
            "old": self.old,
            "path": self.path,
        }

    def line(self) -> str:
        if self.kind == "changed":
            return f"{self.lock}: {self.path} {self.old[:12]}.. -> {self.new[:12]}.."  # type: ignore[index]
        digest = self.new if self.new is not None else self.old
        return f"{self.lock}: {self.path} {self.kind} ({digest[:12]}..)"  # type: ignore[index]


def diff(lock: str, old: dict[str, str], new: dict[str, str]) -> list[LockChange]:
    return [
        LockChange(lock, path, old.get(path), new.get(path))
        for path in sorted(set(old) | set(new))
        if old.get(path) != new.get(path)
    ]


def mismatch_findings(changes: list[LockChange]) -> list[Finding]:
    how = "run `rrlab arch check --write-lock` if the change is intended"
    words = {
        "changed": "changed since it was locked",
        "added": "is covered by a contract but not in the lock",
        "removed": "is in the lock but no longer exists",
    }
    return [Finding(E_LOCK, c.path, f"{words[c.kind]} ({c.lock}); {how}", "locks") for c in changes]


def dumps_lock(scope: str, files: dict[str, str]) -> bytes:
    return dumps(lock_document(scope, files))
