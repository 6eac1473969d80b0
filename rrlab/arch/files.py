"""Reading the project's JSON files: parsed once, canonical form and its digest beside them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrlab.rr.canonical import dumps

from .findings import E_NONCANONICAL, E_SCHEMA, Finding


@dataclass(frozen=True, slots=True)
class JsonFile:
    """A JSON file as committed: its bytes, its value, and whether the bytes are canonical."""

    rel: str
    raw: bytes
    value: Any

    @property
    def canonical(self) -> bytes:
        return dumps(self.value)

    @property
    def is_canonical(self) -> bool:
        return self.raw == self.canonical

    @property
    def digest(self) -> str:
        """sha256 of the canonical form: what the locks record."""
        return hashlib.sha256(self.canonical).hexdigest()


@dataclass
class Project:
    """A project root and every JSON file read from it so far (each read once)."""

    root: Path
    files: dict[str, JsonFile] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def load(self, rel: str, contract: str = "") -> JsonFile | None:
        """The parsed file, or None after recording why it could not be read (E_ARCH_SCHEMA)."""
        if rel in self.files:
            return self.files[rel]
        path = self.root / rel
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            self.findings.append(Finding(E_SCHEMA, rel, "file is missing", contract))
            return None
        try:
            value = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.findings.append(Finding(E_SCHEMA, rel, f"not JSON: {exc}", contract))
            return None
        loaded = JsonFile(rel, raw, value)
        self.files[rel] = loaded
        return loaded

    def glob(self, pattern: str) -> list[str]:
        """Files under the root matching `pattern` (`**` recurses), sorted, as relative paths."""
        return sorted(self.rel(p) for p in self.root.glob(pattern) if p.is_file())


def check_canonical(project: Project, rels: list[str], contract: str) -> None:
    """Every file must re-encode to exactly its bytes (no spaces, sorted keys, no newline)."""
    for rel in rels:
        loaded = project.load(rel, contract)
        if loaded is not None and not loaded.is_canonical:
            project.findings.append(
                Finding(
                    E_NONCANONICAL,
                    rel,
                    f"not canonical JSON ({len(loaded.raw)} bytes, canonical form "
                    f"{len(loaded.canonical)}); rewrite it with rr.canonical.dumps",
                    contract,
                )
            )
