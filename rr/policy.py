"""What a run may do: named profiles (as data), where it may write, and how much it may record.

Only data, lookups and the write-path check live here; the proxy and the replay sandbox enforce
the network rules. One place decides what is allowed, so the CLI, the proxy and the cassette
writer never disagree.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class PolicyError(Exception):
    """Something a policy forbids. One line, says what and what to do; the CLI exits 2."""


class UnknownProfile(PolicyError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")


class WritePathRefused(PolicyError):
    def __init__(self, path: str | os.PathLike[str], roots: Sequence[Path]) -> None:
        self.path = str(path)
        self.roots = tuple(roots)
        allowed = ", ".join(str(r) for r in self.roots) or "(none)"
        super().__init__(
            f"refusing to write {self.path}: outside the allowed write roots ({allowed}); "
            f"choose a path under one of them, add a root with --write-root DIR, or list it in "
            f"the project's {CONFIG_KEY} ({CONFIG_WHERE})"
        )


#: the project's configuration of rrlab: `rrlab.toml` (top level) or `[tool.rrlab]` of
#: `pyproject.toml`, in the working directory; rrlab.toml wins when both exist
CONFIG_FILE = "rrlab.toml"
PYPROJECT = "pyproject.toml"
#: the key that adds write roots to every profile's (relative to the project directory)
CONFIG_KEY = "write_roots"
#: the key that sets the compaction threshold (see parse_compact_over)
COMPACT_KEY = "compact_over"
CONFIG_WHERE = f"{CONFIG_FILE}, or [tool.rrlab] in {PYPROJECT}"


class ProjectConfigError(PolicyError):
    def __init__(self, path: Path, why: str) -> None:
        self.path = path
        super().__init__(f"{path}: {why}")


class PathNotWritable(PolicyError):
    def __init__(self, flag: str, path: str | os.PathLike[str], why: str) -> None:
        self.flag = flag
        self.path = str(path)
        super().__init__(f"{flag} {self.path}: cannot write there: {why}")


class BudgetExceeded(PolicyError):
    """A recording crossed a budget. Recording stops; what was written stays verifiable."""

    def __init__(self, budget: str, limit: int, value: int) -> None:
        self.budget = budget
        self.limit = limit
        self.value = value
        super().__init__(
            f"budget {budget} exceeded: limit {limit}, would reach {value}; recording stopped "
            "(the cassette keeps every frame before this one)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "limit": self.limit, "value": self.value}


MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Budgets:
    """Caps on one recording (the X07 rr policy's budgets). All counts are inclusive limits."""

    max_cassette_bytes: int = 256 * MiB  # size of frames.jsonl and frames.raw
    max_frames: int = 1_000_000
    max_frame_bytes: int = 64 * MiB  # raw wire bytes of one frame

    def __post_init__(self) -> None:
        for name in ("max_cassette_bytes", "max_frames", "max_frame_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise PolicyError(f"budget {name} must be a positive integer, got {value!r}")

    def to_dict(self) -> dict[str, int]:
        return {
            "max_cassette_bytes": self.max_cassette_bytes,
            "max_frame_bytes": self.max_frame_bytes,
            "max_frames": self.max_frames,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Budgets:
        return cls(**{k: data[k] for k in ("max_cassette_bytes", "max_frames", "max_frame_bytes")})


#: a finalized cassette whose frames.jsonl is over this many bytes is stored compacted (gzipped,
#: format 4: rr/cassette/compact.py): nobody reviews a diff that long, and its plain lines of
#: small frames take 2 to 4 times the wire bytes. Every committed cassette stays well under it.
COMPACT_OVER_BYTES = 1 * MiB


def parse_compact_over(text: str | int | None) -> int | None:
    """A compaction threshold as given (`--compact-over`): a byte count, "never" (None) or
    "always" (0); PolicyError otherwise."""
    if text is None or text == "never":
        return None
    if text == "always":
        return 0
    if isinstance(text, str):
        text = text.strip()
        if not text.isdigit():
            raise PolicyError(
                f"compaction threshold must be a byte count, never or always, got {text!r}"
            )
        return int(text)
    if isinstance(text, bool) or not isinstance(text, int) or text < 0:
        raise PolicyError(f"compaction threshold must be a byte count >= 0, got {text!r}")
    return text


@dataclass(frozen=True, slots=True)
class Limits:
    """Run-time limits of a proxy or fake broker (hostile or buggy peers), not recorded in the
    cassette (its `budgets` are). None means: no limit of its own (see each field)."""

    #: bytes one compressed Kafka batch may decompress to; None = the frame budget.
    max_decompressed_bytes: int | None = None
    #: bytes of unfinished frames held across all connections before reads pause.
    max_buffered_bytes: int = 256 * MiB
    #: seconds a connection may go without a whole frame either way before it is closed (a
    #: client trickling a frame byte by byte is not active); None = never.
    idle_timeout_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_decompressed_bytes", "max_buffered_bytes", "idle_timeout_s"):
            value = getattr(self, name)
            if value is None and name != "max_buffered_bytes":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise PolicyError(f"limit {name} must be a positive number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Policy:
    """A named profile. Relative write roots are taken from the project directory (the cwd)."""

    name: str
    description: str
    #: host:port upstreams the recording proxy may connect to; empty = no upstream at all.
    upstream_allow: tuple[str, ...] = ()
    #: "proxy" (record through the proxy) or "loopback-only" (replay: no network beyond lo).
    network: str = "loopback-only"
    write_roots: tuple[str | os.PathLike[str], ...] = ("cassettes", "out")
    #: also allow the system temp directory as a write root (tests, scratch runs).
    allow_tmp: bool = False
    #: replay: recorded client frames left unused fail the run.
    strict: bool = False
    budgets: Budgets = field(default_factory=Budgets)
    limits: Limits = field(default_factory=Limits)
    #: store a finalized cassette compacted when its frames.jsonl is over this many bytes
    #: (None: never; 0: always); see COMPACT_OVER_BYTES
    compact_over_bytes: int | None = COMPACT_OVER_BYTES

    @property
    def max_decompressed_bytes(self) -> int:
        """The decompression budget: its own limit, else the frame budget."""
        own = self.limits.max_decompressed_bytes
        return int(own) if own is not None else self.budgets.max_frame_bytes

    def with_write_roots(self, extra: Iterable[str | os.PathLike[str]]) -> Policy:
        """This profile with more write roots: the project's (`write_roots` in its rrlab.toml
        or pyproject.toml, e.g. tests/cassettes) and `extra` (`--write-root`: tests, scratch
        runs), resolved against the current directory now. Every command that writes asks
        here, so the CLI, the proxy and the cassette writer agree."""
        added = [*project_write_roots(), *(Path(root).resolve() for root in extra)]
        roots = (*self.write_roots, *(str(root) for root in added))
        return dataclasses.replace(self, write_roots=roots)

    def resolved_write_roots(self, base: str | os.PathLike[str] | None = None) -> tuple[Path, ...]:
        roots = [resolve_root(r, base) for r in self.write_roots]
        if self.allow_tmp:
            roots.append(Path(tempfile.gettempdir()).resolve())
        return tuple(roots)

    def check_write_path(
        self, path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None
    ) -> Path:
        return check_write_path(path, self.resolved_write_roots(base), base=base)


PROFILES: dict[str, Policy] = {
    "os_record": Policy(
        name="os_record",
        description="record through the proxy: upstreams only the local brokers",
        upstream_allow=("127.0.0.1:9092", "127.0.0.1:5672", "127.0.0.1:1883"),
        network="proxy",
        write_roots=("cassettes", "out"),
    ),
    "rr_replay": Policy(
        name="rr_replay",
        description="replay offline: no network beyond loopback, fake broker only",
        network="loopback-only",
        write_roots=("out",),
    ),
    "ci_replay": Policy(
        name="ci_replay",
        description="rr_replay plus strict: unused recorded client frames fail the run",
        network="loopback-only",
        write_roots=("out",),
        strict=True,
    ),
}


def get_profile(name: str) -> Policy:
    """The profile called `name`; the error lists the valid names."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(name) from None


def project_config(base: str | os.PathLike[str] | None = None) -> tuple[Path, dict[str, Any]]:
    """(file, table) of the project's rrlab configuration in `base` (default: the cwd):
    rrlab.toml's top level, else `[tool.rrlab]` of pyproject.toml, else an empty table.
    ProjectConfigError (exit 2) when the file is not valid TOML."""
    directory = Path(base) if base is not None else Path.cwd()
    for name in (CONFIG_FILE, PYPROJECT):
        path = directory / name
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ProjectConfigError(path, f"cannot read it as TOML: {exc}") from None
        if name == CONFIG_FILE:
            return path, data
        table = data.get("tool", {}).get("rrlab")
        if table is not None:
            if not isinstance(table, dict):
                raise ProjectConfigError(path, "[tool.rrlab] must be a table")
            return path, table
    return directory / CONFIG_FILE, {}


def project_write_roots(base: str | os.PathLike[str] | None = None) -> tuple[Path, ...]:
    """The write roots a project adds to every profile's (`write_roots = ["tests/cassettes"]`),
    resolved against its directory."""
    path, table = project_config(base)
    roots = table.get(CONFIG_KEY, [])
    if not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots):
        raise ProjectConfigError(
            path, f'{CONFIG_KEY} must be a list of directory paths, e.g. ["tests/cassettes"]'
        )
    return tuple(resolve_root(root, path.parent) for root in roots)


def project_compact_over(
    default: int | None, base: str | os.PathLike[str] | None = None
) -> int | None:
    """The project's compaction threshold (`compact_over = 4194304`, "never" or "always" in
    its rrlab configuration), else `default`; `--compact-over` on a command wins over both."""
    path, table = project_config(base)
    if COMPACT_KEY not in table:
        return default
    try:
        return parse_compact_over(table[COMPACT_KEY])
    except PolicyError as exc:
        raise ProjectConfigError(path, f"{COMPACT_KEY}: {exc}") from None


def resolve_root(root: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> Path:
    base_path = Path(base) if base is not None else Path.cwd()
    return (base_path / root).resolve()


def default_write_roots(base: str | os.PathLike[str] | None = None) -> tuple[Path, ...]:
    """`cassettes/` and `out/` under `base` (default: the cwd, i.e. the project directory)."""
    return (resolve_root("cassettes", base), resolve_root("out", base))


def check_write_path(
    path: str | os.PathLike[str],
    roots: Iterable[str | os.PathLike[str]] | None = None,
    *,
    base: str | os.PathLike[str] | None = None,
) -> Path:
    """Return `path` resolved if it lies inside one of `roots`, else raise WritePathRefused.

    Relative paths and roots are taken from `base` (default cwd). Symlinks and `..` are resolved
    first, so neither `cassettes/../etc` nor a link out of a root escapes. A root itself is
    inside itself (`--cassette out` writes the cassette's files there, and only its own).
    """
    root_paths = (
        default_write_roots(base) if roots is None else tuple(resolve_root(r, base) for r in roots)
    )
    target = resolve_root(path, base)
    for root in root_paths:
        if target.is_relative_to(root):
            return target
    raise WritePathRefused(path, root_paths)


def check_writable(
    path: str | os.PathLike[str], flag: str, *, directory: bool = False, parents: bool = True
) -> Path:
    """`path` as given, if this process can write it: a file (or, with `directory`, a
    directory such as a cassette) that exists and is writable, or that can be created (with
    its missing parent directories, unless `parents` is False: a log file goes into a
    directory that exists). Else PathNotWritable naming `flag`, the path and why: checked
    before a command starts, so a typo is one line, not a traceback after the work began."""
    target = Path(path)
    if target.exists():
        if directory and not target.is_dir():
            raise PathNotWritable(flag, path, "it is a file, not a directory")
        if not directory and target.is_dir():
            raise PathNotWritable(flag, path, "it is a directory; give a file name")
        access = os.W_OK | os.X_OK if directory else os.W_OK
        if not os.access(target, access):
            raise PathNotWritable(flag, path, "no write permission")
        return target
    ancestor = target.parent
    if not parents and not ancestor.is_dir():
        what = "is a file, not a directory" if ancestor.exists() else "does not exist"
        raise PathNotWritable(flag, path, f"its directory {ancestor} {what}")
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise PathNotWritable(flag, path, f"{ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PathNotWritable(flag, path, f"no permission to create anything in {ancestor}")
    return target
