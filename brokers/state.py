"""Where broker state lives and how a running broker is remembered.

`.rrlab/` of the working directory (or $RRLAB_STATE_DIR) holds `brokers/<name>/` per broker:
its data, logs, generated config and `state.json` (impl, port, our pids). Removing that
directory (all but the log `up` named, which `down` keeps until the next `up`) is how `down`
forgets a broker.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def state_root() -> Path:
    """`.rrlab` of the project, i.e. of the working directory (an installed rrlab has no
    project of its own: beside its code would be site-packages), overridable with
    RRLAB_STATE_DIR (tests, parallel checkouts)."""
    override = os.environ.get("RRLAB_STATE_DIR")
    return Path(override).resolve() if override else Path.cwd() / ".rrlab"


def broker_dir(name: str) -> Path:
    return state_root() / "brokers" / name


def load(name: str) -> dict | None:
    """The recorded state of broker `name`, or None when we have not started it."""
    try:
        return json.loads((broker_dir(name) / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def save(name: str, record: dict) -> None:
    path = broker_dir(name) / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def forget(name: str, keep: str | os.PathLike[str] | None = None) -> None:
    """Remove every file of broker `name` (data, logs, config, state), except `keep` (the log
    that `up` pointed to: it explains a crash after `down`, until the next `up` clears it)."""
    home = broker_dir(name)
    kept = Path(keep).resolve() if keep else None
    if kept is None or not kept.is_file() or home.resolve() not in kept.parents:
        shutil.rmtree(home, ignore_errors=True)
        return
    for entry in home.iterdir():
        if entry.resolve() == kept:
            continue
        if kept.is_relative_to(entry.resolve()):  # a directory on the way to the log
            for sub in entry.rglob("*"):
                if sub.is_file() and sub.resolve() != kept:
                    sub.unlink(missing_ok=True)
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


@contextmanager
def locked() -> Iterator[None]:
    """Serialize up/down across processes (parallel test sessions call `up` at the same time)."""
    path = state_root() / "brokers" / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
