"""Store files a recorded run produced (e.g. `out/aggregate.json`), and the command that
produced them, in a finalized cassette.

`rrlab record` adds them after the proxy finalized the recording and the command succeeded: the
recording is what the artifacts are the reference for, so both must be there before the cassette
is published. The manifest is rewritten atomically, so `rrlab verify` checks the new digests.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from rrlab.rr.atomic_file import write_atomic

from .format import ARTIFACTS_DIR, MANIFEST_NAME
from .reader import load_manifest
from .stored_command import StoredCommand
from .writer import _artifact_relpath, copy_durably


def add_artifacts(
    cassette: str | os.PathLike[str], files: Mapping[str, str | os.PathLike[str]]
) -> dict[str, str]:
    """Copy each `files[key]` to artifacts/`key`, list it in cassette.json; {key: sha256}.

    `key` is a relative path without `..`, as the command saw it (e.g. `out/kafka/aggregate.json`).
    The cassette must be finalized (CassetteError otherwise); a missing source raises OSError
    before anything is changed. Keys already present are replaced.
    """
    root = Path(cassette)
    manifest = load_manifest(root, require_finalized=True)
    keys = {_artifact_relpath(key): Path(src) for key, src in files.items()}
    for src in keys.values():
        if not src.is_file():
            raise FileNotFoundError(2, "no such file", str(src))
    added = {
        key: copy_durably(src, root / ARTIFACTS_DIR / key) for key, src in sorted(keys.items())
    }
    updated = dataclasses.replace(manifest, artifacts={**manifest.artifacts, **added})
    write_atomic(root / MANIFEST_NAME, updated.to_json(), durable=True)
    return added


def store_command(cassette: str | os.PathLike[str], command: StoredCommand) -> None:
    """List the command a recording ran in its finalized cassette.json (replaced if there)."""
    root = Path(cassette)
    manifest = load_manifest(root, require_finalized=True)
    updated = dataclasses.replace(manifest, command=command)
    write_atomic(root / MANIFEST_NAME, updated.to_json(), durable=True)
