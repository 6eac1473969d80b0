"""One exception hierarchy for cassettes: each says what is wrong, where, and what to do."""

from __future__ import annotations

import errno
import os


def printable(text: str) -> str:
    """`text` with every character a terminal could act on escaped (C0/C1 controls such as ESC,
    bidi overrides, line breaks): what a cassette says is shown, never obeyed."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


class CassetteError(Exception):
    """Base of every cassette problem. `str(exc)` is one line fit for a terminal: whatever of
    the cassette it quotes is escaped (`printable`), since a cassette is untrusted input."""

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        self.path = str(path)
        super().__init__(printable(f"{self.path}: {message}"))


class CassetteNotFound(CassetteError):
    def __init__(self, path: str | os.PathLike[str], what: str = "no cassette here") -> None:
        super().__init__(path, what)


class UnsupportedFormat(CassetteError):
    def __init__(
        self, path: str | os.PathLike[str], found: object, supported: str | tuple[str, ...]
    ) -> None:
        self.found = found
        self.supported = supported
        names = ", ".join(map(repr, (supported,) if isinstance(supported, str) else supported))
        super().__init__(
            path,
            f"unsupported cassette format {found!r} (this rrlab reads {names}; "
            "a newer rrlab wrote it?)",
        )


class MalformedManifest(CassetteError):
    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.reason = reason
        super().__init__(path, f"malformed manifest: {reason}")


class NotFinalized(CassetteError):
    """The recording never finished (crash, kill): frames may be whole, the manifest is not."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.reason = reason
        super().__init__(
            path,
            f"cassette not finalized ({reason}); the recording did not finish - "
            f"run `rrlab verify --repair {path}` to keep every whole frame",
        )


class MalformedFrame(CassetteError):
    """A frames.jsonl (or frames.timing: `file`) line that is not a valid frame record. `line`
    counts from 1."""

    def __init__(
        self, path: str | os.PathLike[str], line: int, reason: str, file: str = "frames.jsonl"
    ) -> None:
        self.line = line
        self.reason = reason
        super().__init__(path, f"{file} line {line}: {reason}")


class TruncatedFrames(MalformedFrame):
    """The last line has no newline: a torn write."""

    def __init__(self, path: str | os.PathLike[str], line: int, length: int) -> None:
        self.length = length
        super().__init__(path, line, f"torn last line ({length} bytes, no newline)")


class DigestMismatch(CassetteError):
    def __init__(
        self, path: str | os.PathLike[str], what: str, expected: str, actual: str, note: str = ""
    ) -> None:
        self.what = what
        self.expected = expected
        self.actual = actual
        extra = f"; {note}" if note else ""
        super().__init__(
            path, f"sha256 mismatch for {what}: manifest says {expected}, file has {actual}{extra}"
        )


class CompactedDamaged(CassetteError):
    """A gzipped file of a compacted cassette (format 4) that does not decompress to what its
    manifest declares. Compaction happens only after a recording finalized, so this is
    corruption or tampering, never a crash mid-recording: nothing is left to repair."""

    def __init__(self, path: str | os.PathLike[str], name: str, why: str) -> None:
        self.name = name
        self.why = why
        super().__init__(
            path,
            f"{name} is damaged: {why}; a cassette is compacted only once its recording "
            "finalized, so this is corruption, not a crash (`rrlab verify --repair` cannot "
            "mend it) - restore it from version control or record it again",
        )


class CountMismatch(CassetteError):
    def __init__(self, path: str | os.PathLike[str], what: str, expected: object, actual: object):
        self.what = what
        self.expected = expected
        self.actual = actual
        super().__init__(path, f"{what}: manifest says {expected}, frames.jsonl has {actual}")


class CassetteExists(CassetteError):
    def __init__(self, path: str | os.PathLike[str], state: str) -> None:
        self.state = state
        article = "an" if state[:1] in tuple("aeiou") else "a"  # "an unfinalized cassette"
        super().__init__(
            path,
            f"{article} {state} cassette already exists; record mode 'once' never overwrites it - "
            "use --mode rewrite to replace it",
        )


class NotACassette(CassetteError):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(
            path, "directory is not empty and holds no cassette; refusing to write into it"
        )


class WriterClosed(CassetteError):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path, "cassette writer is already finalized")


class InvalidRecordMode(ValueError):
    def __init__(self, value: object, valid: list[str]) -> None:
        self.value = value
        super().__init__(f"invalid record mode {value!r}; valid modes: {', '.join(valid)}")


class ArtifactMissing(CassetteError):
    def __init__(self, path: str | os.PathLike[str], name: str) -> None:
        self.name = name
        super().__init__(path, f"artifact {name!r} is listed in the manifest but missing")


class UnsafePath(CassetteError):
    """A cassette entry that could lead outside it (a link, `..`, an absolute path) or that is
    not a regular file: refused, never followed."""

    def __init__(self, path: str | os.PathLike[str], name: str, why: str) -> None:
        self.name = name
        super().__init__(path, f"{name!r} {why}; a cassette holds only plain files inside it")


class RecordingInProgress(CassetteError):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path, "a recording is still writing this cassette; stop it first")


class CassetteLocked(RecordingInProgress):
    """Another process writes this cassette (`rrlab record`, `rrlab proxy`, `verify --repair`)."""

    def __init__(self, path: str | os.PathLike[str], pid: int | None, command: str = "") -> None:
        self.pid = pid
        who = f"pid {pid}" if pid is not None else "a process that is still starting"
        if command:
            who += f" ({command})"
        CassetteError.__init__(
            self,
            path,
            f"another writer holds this cassette: {who}; wait for it to finish or stop it",
        )


class RepairedRefused(CassetteError):
    """`verify --strict`: a repaired cassette holds frames no finalized digest ever vouched for."""

    def __init__(self, path: str | os.PathLike[str], unverified: bool) -> None:
        why = (
            "it was repaired without a manifest, so none of its frames could be checked"
            if unverified
            else "it was repaired after a crash (verify --repair), not finalized by its recorder"
        )
        super().__init__(path, f"refusing a repaired cassette (--strict): {why}; record it again")


#: what a person calls the errors that stop a recording (the errno's own words otherwise)
_ERRNO_WORDS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EIO: "I/O error",
    errno.EROFS: "read-only file system",
}


def errno_words(exc: OSError) -> str:
    """'disk full', 'I/O error', ... for an OSError: the words a closing line uses."""
    words = _ERRNO_WORDS.get(exc.errno or 0)
    return words or (exc.strerror or str(exc)).lower()


class CassetteWriteFailed(CassetteError):
    """Writing a cassette failed (disk full, I/O error, read-only file system). A recording
    stops there: the frames already written stay, and `rrlab verify --repair` finalizes them
    once there is room. `words` is the short cause ("disk full"), `errno_name` e.g. ENOSPC."""

    def __init__(
        self, path: str | os.PathLike[str], what: str, exc: OSError, advice: str = ""
    ) -> None:
        self.errno = exc.errno
        self.errno_name = errno.errorcode.get(exc.errno or 0, "E?")
        self.words = errno_words(exc)
        self.what = what
        detail = f"{self.errno_name}: {exc.strerror}" if exc.strerror else self.errno_name
        if not advice:
            advice = (
                "recording stopped, every frame written before is kept; free space, then run "
                f"`rrlab verify --repair {path}`"
            )
        super().__init__(path, f"cannot write {what}: {self.words} ({detail}); {advice}")
