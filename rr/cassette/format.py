"""Cassette on-disk shapes: the manifest, connection and frame records, and the line encodings.

Format 3 (written now) keeps the wire bytes out of the frame lines: a line holds what the frame
is (conn, dir, proto, summary) and its `size`; the bytes of every frame are in `frames.raw`, one
after another in line order (a frame's bytes start where the sizes of the lines before it add
up to: no offsets in the lines, so a frame that grew or shrank changes its own line only). The
base64 copy of each frame made a cassette 1.5 to 7 times its wire bytes; now the sidecar is
exactly the wire bytes and the lines are the readable part. `frames.raw` is covered by the
manifest's digests like `frames.timing`, and marked `-diff` for git.

Format 2 keeps the clock and the counter out of the frame lines: a line holds what the frame is
(conn, dir, proto, raw bytes, summary); its seq is its line number (from 0) and `frames.timing`
holds when it crossed (one line per frame: microseconds since the cassette started). So
re-recording the same behaviour changes few lines of frames.jsonl: a reviewer's diff shows
behaviour, and a frame that only moved (another connection's frame came first) is the same line.
Both files are covered by the manifest's digests. Formats 1 (`seq` and `t_us` in every frame
line, no timing file) and 2 (base64 `raw` in every line, no sidecar) are still read; `rrlab
migrate` rewrites them as format 3.

A frame line is canonical JSON (sorted keys, no spaces) built by hand around the base64 payload:
encoding a 64 KiB frame through a JSON encoder costs a copy and a scan of a string that needs no
escaping (the base64 alphabet has no `"` or `\\`). Everything else goes through canonicaljson, and a
unit test proves the lines equal canonicaljson's encoding of the same record.
"""

from __future__ import annotations

import base64
import binascii
import json
import json.scanner
import os
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rrlab.rr.canonical import dumps
from rrlab.rr.codecs.base import Direction, Proto
from rrlab.rr.policy import Budgets, PolicyError

from .errors import MalformedFrame, MalformedManifest, UnsupportedFormat
from .paths import safe_relpath
from .stored_command import StoredCommand

FORMAT = "rrlab.cassette/3"
#: format 3 stored compacted (`compact.py`): frames.jsonl, frames.raw and frames.timing gzipped,
#: the same content; written at finalize (or by `rrlab migrate --compact`) for a cassette whose
#: frames.jsonl is over the threshold, so an older rrlab refuses it instead of misreading it
FORMAT_V4 = "rrlab.cassette/4"
#: base64 `raw` in every frame line, times in frames.timing; read, never written (`rrlab migrate`)
FORMAT_V2 = "rrlab.cassette/2"
#: the first format: every frame line carries its `t_us`; read, never written (`rrlab migrate`)
FORMAT_V1 = "rrlab.cassette/1"
READABLE_FORMATS = (FORMAT_V4, FORMAT, FORMAT_V2, FORMAT_V1)
MANIFEST_NAME = "cassette.json"
FRAMES_NAME = "frames.jsonl"
#: when each frame crossed (format 2): one decimal line per frame line, microseconds since start
TIMING_NAME = "frames.timing"
#: tells git the timing file is no text to diff: a re-recording's `git diff --stat` then shows
#: frames.jsonl lines that changed behaviour and one `Bin` line for the clock
GITATTRIBUTES_NAME = ".gitattributes"
GITATTRIBUTES = b"frames.timing -diff\nframes.raw -diff\n"
#: the wire bytes of every frame (format 3), in line order: each line's `size` bytes
RAW_NAME = "frames.raw"
#: a compacted cassette's (format 4) stored name of each file: the same content, gzipped
GZ_NAMES = {name: f"{name}.gz" for name in (FRAMES_NAME, RAW_NAME, TIMING_NAME)}
#: .gitattributes of a compacted cassette: its files are no text to diff or merge
GITATTRIBUTES_COMPACT = b"".join(b"%s binary\n" % n.encode() for n in GZ_NAMES.values())
#: connection open/close events of a recording in progress (gone once finalized; see writer)
CONNECTIONS_JOURNAL = "connections.jsonl"
ARTIFACTS_DIR = "artifacts"


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One recorded wire frame, as read back (raw is the exact wire bytes)."""

    seq: int
    conn: int
    dir: Direction
    t_us: int
    proto: Proto
    summary: dict[str, Any]
    raw: bytes
    redacted: bool = False

    def to_dict(self, *, timed: bool = False, sidecar: bool = False) -> dict[str, Any]:
        """The frame line's object: format 2 (base64 `raw`), or with `sidecar` format 3's
        (`size`: the bytes are in frames.raw); `timed`: with `seq` and `t_us`, as format 1
        lines (and `rrlab inspect --json`) have them."""
        out: dict[str, Any] = {
            "conn": self.conn,
            "dir": str(self.dir),
            "proto": str(self.proto),
            "summary": self.summary,
        }
        if sidecar:
            out["size"] = len(self.raw)
        else:
            out["raw"] = base64.b64encode(self.raw).decode("ascii")
        if timed:
            out["seq"] = self.seq
            out["t_us"] = self.t_us
        if self.redacted:
            out["redacted"] = True
        return out


def frame_line_prefix(conn: int, direction: Direction, proto: Proto) -> bytes:
    """The part of a format 3 frame line before its `redacted` and `size` (the same for a whole
    connection leg)."""
    return b'{"conn":%d,"dir":"%s","proto":"%s",' % (
        conn,
        str(direction).encode(),
        str(proto).encode(),
    )


def frame_line_prefix_v2(conn: int, direction: Direction, proto: Proto) -> bytes:
    """The part of a format 2 frame line before the base64 payload."""
    return frame_line_prefix(conn, direction, proto) + b'"raw":"'


def _refuse(value: object) -> object:
    raise TypeError(type(value).__name__)


#: canonicaljson's encoder settings (ensure_ascii=False, allow_nan=False, compact, sorted keys) on
#: the stdlib's C encoder, built once: `JSONEncoder.encode` builds it again on every call, which
#: is most of the cost of a small summary. No `default` hook and no circular check here: such a
#: summary raises and `dumps` (canonicaljson itself) answers instead, so the bytes never differ.
_encode_summary = (
    json.encoder.c_make_encoder(
        None, _refuse, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )
    if json.encoder.c_make_encoder is not None
    else None
)


def summary_json(summary: Mapping[str, Any]) -> bytes:
    """Canonical JSON of a frame summary (== canonicaljson's bytes), or ValueError naming it."""
    if _encode_summary is not None:
        try:
            return "".join(_encode_summary(summary, 0)).encode("utf-8")
        except (TypeError, ValueError, RecursionError):
            pass  # canonicaljson decides: a registered type, or the error message
    try:
        return dumps(summary)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"frame summary is not JSON-able ({exc}): {summary!r:.200}") from None


#: what follows a format 2 line's base64 payload, up to its summary (keys in code-point order)
SUMMARY_KEY = b'","summary":'
REDACTED_KEY = b'","redacted":true,"summary":'
#: format 3: what follows the prefix of a redacted frame's line, before its size
REDACTED_SIZE = b'"redacted":true,"size":'
#: format 3: what follows the prefix of a frame's line, before its size; then `SIZE_SUMMARY`
SIZE_KEY = b'"size":'
SIZE_SUMMARY = b',"summary":'


def _shared(self: Any, *args: Any, **kwargs: Any) -> Any:
    raise TypeError("an EncodedSummary is shared by many frames: copy it (dict(s)) to edit it")


class EncodedSummary(dict):
    """A frame summary with its canonical JSON (`json`) and the end of a frame line that has it
    (`tail`: what follows the frame's size), made once and shared by every frame with it (the
    recorder's memo of repeating frames): read-only, so they never differ."""

    __slots__ = ("json", "tail", "sized")
    __setitem__ = __delitem__ = __ior__ = _shared
    clear = pop = popitem = setdefault = update = _shared

    def __init__(self, summary: Mapping[str, Any], encode: SummaryEncoder | None = None) -> None:
        """`encode`: what makes the summary's canonical JSON (`summary_encoder`'s, the same
        bytes as summary_json)."""
        dict.__init__(self, summary)
        self.json = summary_json(summary) if encode is None else encode(summary)
        self.tail = b"".join((SIZE_SUMMARY, self.json, b"}\n"))
        self.sized: dict[int, bytes] = {}  # size -> sized_tail(size)

    def sized_tail(self, size: int) -> bytes:
        """What follows the prefix of the line of an unredacted frame of `size` bytes with
        this summary (`SIZE_KEY`, the size, `tail`), kept per size: the frames that share a
        summary mostly share a size too (a body of a fixed length, a repeated header), so the
        writer's hot path joins one piece per frame instead of formatting it (bounded)."""
        line = self.sized.get(size)
        if line is None:
            if len(self.sized) >= SIZED_MAX:
                self.sized.clear()
            line = self.sized[size] = b"%b%d%b" % (SIZE_KEY, size, self.tail)
        return line


#: sizes an `EncodedSummary` keeps a `sized_tail` for (cleared when full)
SIZED_MAX = 64


#: summary -> a hashable key standing exactly for its encoding, or None: supplied by whoever
#: knows which summaries repeat (a protocol), never decided here
CacheKey = Callable[[Mapping[str, Any]], Hashable | None]
SummaryEncoder = Callable[[Mapping[str, Any]], bytes]
#: summary -> its canonical JSON (== summary_json's bytes) for the shapes a protocol knows to
#: recur but for a field or two (made from a template, see `json_split`), or None: summary_json
FastEncoder = Callable[[Mapping[str, Any]], bytes | None]

_ENCODERS: dict[tuple[CacheKey | None, FastEncoder | None], SummaryEncoder] = {}
_CACHE_MAX = 4096


def summary_encoder(
    cache_key: CacheKey | None = None, fast: FastEncoder | None = None
) -> SummaryEncoder:
    """`summary_json`, or the same bytes from a cache (`cache_key`: summaries with the same key
    get the encoding of the first; bounded: cleared when full) or from a protocol's template
    encoder (`fast`, tried when the cache has no key). One encoder per pair of functions,
    shared by every connection that uses them."""
    if cache_key is None and fast is None:
        return summary_json
    encoder = _ENCODERS.get((cache_key, fast))
    if encoder is None:
        encoder = _ENCODERS[cache_key, fast] = _cached(cache_key, fast)
    return encoder


def _cached(cache_key: CacheKey | None, fast: FastEncoder | None) -> SummaryEncoder:
    cache: dict[Hashable, bytes] = {}

    def encode(summary: Mapping[str, Any]) -> bytes:
        if cache_key is not None:
            key = cache_key(summary)
            if key is not None:
                encoded = cache.get(key)
                if encoded is None:
                    if len(cache) >= _CACHE_MAX:
                        cache.clear()
                    encoded = cache[key] = summary_json(summary)
                return encoded
        if fast is not None:
            encoded = fast(summary)
            if encoded is not None:
                return encoded
        return summary_json(summary)

    return encode


#: the JSON of a string (what the canonical encoder writes for one, before UTF-8)
json_string = json.encoder.encode_basestring


def json_scalar(value: int | str) -> bytes:
    """Canonical JSON of an int (not a bool) or a str."""
    if value.__class__ is int:
        return b"%d" % value
    if value.__class__ is str:
        return json_string(value).encode("utf-8")
    raise TypeError(type(value).__name__)


def json_split(
    summary: Mapping[str, Any], name: str, value: int | str
) -> tuple[bytes, bytes] | None:
    """`summary`'s canonical JSON split around the JSON of the value of its field `name` (equal
    to `value`, an int or a str): `before + json_scalar(v) + after` is then the JSON of the same
    summary with `v` there: a template for frames that differ in that value alone (a delivery
    tag, a correlation id, a packet id, a sequence header). None unless `"name":<value>` occurs
    exactly once, whole (never inside a string: a quote there is escaped)."""
    if value.__class__ is not int and value.__class__ is not str:
        return None
    encoded = summary_json(summary)
    key = json_scalar(name) + b":"
    mark = key + json_scalar(value)
    if encoded.count(mark) != 1:
        return None
    before, after = encoded.split(mark)
    if after[:1] not in (b",", b"}"):
        return None
    return before + key, after


def frame_line(
    prefix: bytes,
    summary: Mapping[str, Any],
    size: int,
    redacted: bool,
    encode: SummaryEncoder = summary_json,
) -> bytes:
    """One format 3 frame line from its `frame_line_prefix` (keys in code-point order: conn,
    dir, proto, redacted, size, summary); `encode` makes the summary's canonical JSON (an
    EncodedSummary carries its own)."""
    return b"".join(
        (
            prefix,
            REDACTED_SIZE if redacted else SIZE_KEY,
            b"%d" % size,
            SIZE_SUMMARY,
            summary.json if summary.__class__ is EncodedSummary else encode(summary),
            b"}\n",
        )
    )


def encode_frame_line(
    conn: int,
    direction: Direction,
    proto: Proto,
    summary: Mapping[str, Any],
    raw: bytes,
    redacted: bool = False,
) -> bytes:
    """Canonical JSON format 3 line of one frame (== dumps_line(FrameRecord(...).to_dict(
    sidecar=True))); `raw` goes to frames.raw."""
    return frame_line(frame_line_prefix(conn, direction, proto), summary, len(raw), redacted)


def encode_frame_line_v2(
    conn: int,
    direction: Direction,
    proto: Proto,
    summary: Mapping[str, Any],
    raw: bytes,
    redacted: bool = False,
) -> bytes:
    """Canonical JSON format 2 line of one frame (== dumps_line(FrameRecord(...).to_dict())):
    what the tests make old cassettes with; never written by the recorder."""
    return b"".join(
        (
            frame_line_prefix_v2(conn, direction, proto),
            base64.b64encode(raw),
            REDACTED_KEY if redacted else SUMMARY_KEY,
            summary_json(summary),
            b"}\n",
        )
    )


def timing_line(t_us: int) -> bytes:
    """One frames.timing line: microseconds since the cassette started."""
    return b"%d\n" % t_us


_TIMING = re.compile(rb"(?:(?:0|[1-9][0-9]*)\n)*")


def parse_timing(data: bytes, *, path: str) -> list[int]:
    """Every line of a frames.timing file (whole, newline-terminated non-negative integers in
    canonical spelling); MalformedFrame names the first bad line."""
    if _TIMING.fullmatch(data) is None:
        lines = data.split(b"\n")
        for lineno, line in enumerate(lines, start=1):
            if lineno == len(lines):
                raise MalformedFrame(path, lineno, "last line has no newline (torn)", TIMING_NAME)
            if not re.fullmatch(rb"0|[1-9][0-9]*", line):
                raise MalformedFrame(
                    path, lineno, f"not a non-negative integer: {line[:40]!r}", TIMING_NAME
                )
    return [int(v) for v in data.split(b"\n")[:-1]]


_FRAME_KEYS = {"conn", "dir", "proto", "raw", "summary"}
_FRAME_KEYS_V1 = _FRAME_KEYS | {"seq", "t_us"}
_FRAME_KEYS_V3 = {"conn", "dir", "proto", "size", "summary"}
#: a frame's bytes (format 3): the bytes, or where to read a line's `size` of them from
RawSource = bytes | Callable[[int], bytes]
_FRAME_OPTIONAL = {"redacted"}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode_frame_line(
    line: bytes,
    *,
    path: str,
    lineno: int,
    t_us: int | None = None,
    raw: RawSource | None = None,
) -> FrameRecord:
    """Parse one frames.jsonl line (with or without its newline) into a FrameRecord: a format 2
    line, its seq `lineno - 1` and its time from frames.timing (`t_us`), or with `t_us=None` a
    format 1 line, which carries both. With `raw` a format 3 line (timed like format 2), whose
    bytes are `raw` (from frames.raw; a callable is given the line's size and reads them)."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedFrame(path, lineno, f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise MalformedFrame(path, lineno, "not a JSON object")
    keys = set(obj)
    if raw is not None:
        required = _FRAME_KEYS_V3
    else:
        required = _FRAME_KEYS if t_us is not None else _FRAME_KEYS_V1
    if missing := required - keys:
        raise MalformedFrame(path, lineno, f"missing keys {sorted(missing)}")
    if unknown := keys - required - _FRAME_OPTIONAL:
        raise MalformedFrame(path, lineno, f"unknown keys {sorted(unknown)}")
    for key in ("conn",) if t_us is not None else ("seq", "conn", "t_us"):
        if not _is_int(obj[key]) or obj[key] < 0:
            raise MalformedFrame(path, lineno, f"{key} must be a non-negative integer")
    try:
        direction = Direction(obj["dir"])
    except ValueError:
        raise MalformedFrame(path, lineno, f"dir must be c2s or s2c, got {obj['dir']!r}") from None
    try:
        proto = Proto(obj["proto"])
    except ValueError:
        raise MalformedFrame(path, lineno, f"unknown proto {obj['proto']!r}") from None
    if not isinstance(obj["summary"], dict):
        raise MalformedFrame(path, lineno, "summary must be a JSON object")
    redacted = obj.get("redacted", False)
    if not isinstance(redacted, bool):
        raise MalformedFrame(path, lineno, "redacted must be true or false")
    if raw is None:
        if not isinstance(obj["raw"], str):
            raise MalformedFrame(path, lineno, "raw must be a base64 string")
        try:
            raw = base64.b64decode(obj["raw"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedFrame(path, lineno, f"raw is not valid base64 ({exc})") from None
    else:
        size = obj["size"]
        if not _is_int(size) or size < 0:
            raise MalformedFrame(path, lineno, "size must be a non-negative integer")
        if not isinstance(raw, bytes):
            raw = raw(size)
        if len(raw) != size:
            raise MalformedFrame(
                path, lineno, f"{RAW_NAME} ends inside this frame ({len(raw)} of its {size} bytes)"
            )
    return FrameRecord(
        seq=obj["seq"] if t_us is None else lineno - 1,
        conn=obj["conn"],
        dir=direction,
        t_us=obj["t_us"] if t_us is None else t_us,
        proto=proto,
        summary=obj["summary"],
        raw=raw,
        redacted=redacted,
    )


#: room for the summary beside the base64 of a frame: a summary describes its frame, so it is
#: not longer than the frame itself plus its field names (this slack)
SUMMARY_SLACK = 1 << 20


def base64_len(size: int) -> int:
    """Length of the base64 text of `size` bytes."""
    return 4 * ((size + 2) // 3)


def max_line_bytes(max_frame_bytes: int, *, sidecar: bool = False) -> int:
    """The longest frames.jsonl line (newline included) a frame within the frame budget makes
    (`sidecar`: format 3, its bytes not in the line): lines are read with this bound, so an
    over-long one is refused without being read whole."""
    if sidecar:
        return max_frame_bytes + SUMMARY_SLACK
    return base64_len(max_frame_bytes) + max_frame_bytes + SUMMARY_SLACK


#: A frame line exactly as the writer makes it (`frame_line`): checked by one regular expression
#: and one parse of the summary (the base64 is checked by its alphabet and length, not decoded),
#: which together accept what `decode_frame_line` accepts and nothing it refuses. Any other
#: spelling (a line edited by hand) goes through `decode_frame_line` itself.
_LINE_HEAD = (
    rb'\{"conn":(0|[1-9][0-9]*),"dir":"(c2s|s2c)","proto":"([a-z]+)",'
    rb'"raw":"([A-Za-z0-9+/]*={0,2})",(?:"redacted":(?:true|false),)?'
)
_CANONICAL_LINE = re.compile(_LINE_HEAD + rb'"summary":(\{.*\})\}\n')
_CANONICAL_LINE_V1 = re.compile(
    _LINE_HEAD + rb'"seq":(0|[1-9][0-9]*),"summary":(\{.*\}),"t_us":(?:0|[1-9][0-9]*)\}\n'
)
#: a format 3 line as the writer makes it: conn, dir, proto, redacted, size, summary
_CANONICAL_LINE_V3 = re.compile(
    rb'\{"conn":(0|[1-9][0-9]*),"dir":"(c2s|s2c)","proto":"([a-z]+)",'
    rb'(?:"redacted":(true|false),)?"size":(0|[1-9][0-9]*),"summary":(\{.*\})\}\n'
)
_PROTOS = {p.value.encode(): p for p in Proto}
_DIRECTIONS = {d.value.encode(): d for d in Direction}
#: conn, client frame?, proto, seq, summary, and the summary's bytes (None off the fast path)
FrameHead = tuple[int, bool, Proto, int, dict[str, Any], bytes | None]
#: json.loads without its Python layers (encoding detection, the decoder object): the same C
#: scanner and settings, about twice as fast on a short summary
_scan_json = json.scanner.make_scanner(json.JSONDecoder())
#: distinct summaries a memo keeps (about 2 MB): most frames repeat an earlier summary exactly
#: (heartbeats, acks, deliveries of one shape: 30 to 70% of the committed cassettes' lines)
MEMO_MAX = 4096


def check_frame_line(
    line: bytes,
    max_frame_bytes: int,
    path: str,
    lineno: int,
    memo: dict[bytes, dict[str, Any]] | None = None,
    *,
    timed: bool = False,
) -> FrameHead:
    """Validate one frames.jsonl line (newline included) as `decode_frame_line` would, without
    decoding its payload, and apply the frame budget: (conn, is a client frame, proto, seq,
    summary, summary bytes). MalformedFrame says what is wrong.

    `memo` (summary bytes -> summary, kept to MEMO_MAX) spares parsing a summary seen before;
    such a summary is the memo's own object, shared between lines: read it, never change it.
    `timed`: a format 1 line (with its `t_us`)."""
    m = (_CANONICAL_LINE_V1 if timed else _CANONICAL_LINE).fullmatch(line)
    if m is not None:
        if timed:
            conn, direction, proto_name, seq, raw_summary = m.group(1, 2, 3, 5, 6)
        else:
            conn, direction, proto_name, raw_summary = m.group(1, 2, 3, 5)
            seq = lineno - 1
        start, end = m.span(4)
        proto = _PROTOS.get(proto_name)
        if proto is not None and not (end - start) & 3:
            if end - start > 4 * ((max_frame_bytes + 2) // 3):  # base64_len, inline: hot
                size = (end - start) // 4 * 3 - line.count(b"=", end - 2, end)
                check_frame_budget(size, max_frame_bytes, path, lineno)
            summary = _memo_summary(raw_summary, memo, path, lineno)
            return int(conn), direction == b"c2s", proto, int(seq), summary, raw_summary
    rec = decode_frame_line(line, path=path, lineno=lineno, t_us=None if timed else 0)
    check_frame_budget(len(rec.raw), max_frame_bytes, path, lineno)
    return rec.conn, rec.dir is Direction.C2S, rec.proto, rec.seq, rec.summary, None


def _memo_summary(
    raw_summary: bytes, memo: dict[bytes, dict[str, Any]] | None, path: str, lineno: int
) -> dict[str, Any]:
    """A line's summary parsed, or the memo's object for the same bytes."""
    summary = memo.get(raw_summary) if memo is not None else None
    if summary is None:
        try:
            text = raw_summary.decode("utf-8", "surrogatepass")
            summary, stop = _scan_json(text, 0)
            if stop != len(text):
                raise ValueError(f"extra data at {stop}")
        except (ValueError, StopIteration) as exc:
            raise MalformedFrame(path, lineno, f"summary is not JSON ({exc})") from None
        if memo is not None:
            if len(memo) >= MEMO_MAX:
                memo.clear()
            memo[raw_summary] = summary
    return summary


#: conn, client frame?, proto, size, summary, and the summary's bytes (None off the fast path)
FrameHeadV3 = tuple[int, bool, Proto, int, dict[str, Any], bytes | None]


def check_frame_line_v3(
    line: bytes,
    max_frame_bytes: int,
    path: str,
    lineno: int,
    memo: dict[bytes, dict[str, Any]] | None = None,
) -> FrameHeadV3:
    """`check_frame_line` for a format 3 line: (conn, is a client frame, proto, size, summary,
    summary bytes), the frame budget applied to its size. Its bytes are checked by the caller
    (frames.raw must hold the sizes of all lines, and its digest the manifest's)."""
    m = _CANONICAL_LINE_V3.fullmatch(line)
    if m is not None and (proto := _PROTOS.get(m.group(3))) is not None:
        conn, direction, size, raw_summary = m.group(1, 2, 5, 6)
        summary = memo.get(raw_summary) if memo is not None else None  # inline: hot
        if summary is None:
            summary = _memo_summary(raw_summary, memo, path, lineno)
        frame_size = int(size)
    else:  # another spelling (edited by hand): the full decoder, with stand-in bytes

        def stand_in(size: int) -> bytes:
            check_frame_budget(size, max_frame_bytes, path, lineno)
            return bytes(size)

        rec = decode_frame_line(line, path=path, lineno=lineno, t_us=0, raw=stand_in)
        conn, direction, proto = rec.conn, rec.dir.value.encode(), rec.proto
        summary, raw_summary, frame_size = rec.summary, None, len(rec.raw)
    check_frame_budget(frame_size, max_frame_bytes, path, lineno)
    return int(conn), direction == b"c2s", proto, frame_size, summary, raw_summary


def check_frame_budget(
    size: int, max_frame_bytes: int, path: str | os.PathLike[str], lineno: int
) -> None:
    """MalformedFrame when a frame of `size` bytes is over the frame budget."""
    if size > max_frame_bytes:
        raise MalformedFrame(
            path,
            lineno,
            f"frame of {size} bytes is over the frame budget ({max_frame_bytes} bytes)",
        )


#: seq, direction, time, payload, and the summary: its canonical JSON text (checked at open,
#: parsed when first asked for: `parse_summary`) or, off the fast path, the parsed object
FrameParts = tuple[int, Direction, int, bytes, "bytes | dict[str, Any]"]


def read_frame_parts(
    line: bytes, *, path: str, lineno: int, t_us: int | None = None, raw: bytes | None = None
) -> FrameParts:
    """What a replay reads of a line already checked (`check_frame_line`, at open), without
    parsing its summary: a line as the writer makes it is taken apart by the same regular
    expression and its payload decoded, with no pass over the whole line as JSON. Any other
    spelling goes through `decode_frame_line` (its summary parsed). `raw`: a format 3 line's
    bytes (from frames.raw)."""
    if raw is not None:
        m = _CANONICAL_LINE_V3.fullmatch(line)
        if m is not None and m.group(3) in _PROTOS and int(m.group(5)) == len(raw):
            return lineno - 1, _DIRECTIONS[m.group(2)], t_us or 0, raw, m.group(6)
        rec = decode_frame_line(line, path=path, lineno=lineno, t_us=t_us or 0, raw=raw)
        return rec.seq, rec.dir, rec.t_us, rec.raw, rec.summary
    m = (_CANONICAL_LINE_V1 if t_us is None else _CANONICAL_LINE).fullmatch(line)
    if m is not None and m.group(3) in _PROTOS:
        try:
            raw = binascii.a2b_base64(m.group(4), strict_mode=True)
        except binascii.Error:
            raw = None
        if raw is not None:
            if t_us is None:
                seq, summary, t_us = int(m.group(5)), m.group(6), _v1_time(line)
            else:
                seq, summary = lineno - 1, m.group(5)
            return seq, _DIRECTIONS[m.group(2)], t_us, raw, summary
    rec = decode_frame_line(line, path=path, lineno=lineno, t_us=t_us)
    return rec.seq, rec.dir, rec.t_us, rec.raw, rec.summary


def parse_summary(text: bytes) -> dict[str, Any]:
    """A summary's canonical JSON (from `read_frame_parts`) as the object; ValueError if it is
    not one (the file changed since it was checked)."""
    decoded = text.decode("utf-8", "surrogatepass")
    summary, stop = _scan_json(decoded, 0)
    if stop != len(decoded) or not isinstance(summary, dict):
        raise ValueError(f"frame summary is not a JSON object: {text[:80]!r}")
    return summary


def read_frame_line(
    line: bytes, *, path: str, lineno: int, t_us: int | None = None, raw: bytes | None = None
) -> FrameRecord:
    """`decode_frame_line` for a line already checked at open, by `read_frame_parts` (about
    three times faster on an AMQP delivery); a summary that does not parse is MalformedFrame.
    `raw`: a format 3 line's bytes (from frames.raw)."""
    if raw is not None:
        m = _CANONICAL_LINE_V3.fullmatch(line)
        if m is None or m.group(3) not in _PROTOS or int(m.group(5)) != len(raw):
            return decode_frame_line(line, path=path, lineno=lineno, t_us=t_us or 0, raw=raw)
        try:
            summary = parse_summary(m.group(6))
        except (ValueError, StopIteration):
            return decode_frame_line(line, path=path, lineno=lineno, t_us=t_us or 0, raw=raw)
        return FrameRecord(
            seq=lineno - 1,
            conn=int(m.group(1)),
            dir=_DIRECTIONS[m.group(2)],
            t_us=t_us or 0,
            proto=_PROTOS[m.group(3)],
            summary=summary,
            raw=raw,
            redacted=m.group(4) == b"true",
        )
    m = (_CANONICAL_LINE_V1 if t_us is None else _CANONICAL_LINE).fullmatch(line)
    if m is None:
        return decode_frame_line(line, path=path, lineno=lineno, t_us=t_us)
    seq, direction, t_us, raw, summary = read_frame_parts(line, path=path, lineno=lineno, t_us=t_us)
    if isinstance(summary, bytes):
        try:
            summary = parse_summary(summary)
        except (ValueError, StopIteration):
            return decode_frame_line(line, path=path, lineno=lineno, t_us=t_us)
    return FrameRecord(
        seq=seq,
        conn=int(m.group(1)),
        dir=direction,
        t_us=t_us,
        proto=_PROTOS[m.group(3)],
        summary=summary,
        raw=raw,
        redacted=line.startswith(b'","redacted":true', m.end(4)),
    )


def _v1_time(line: bytes) -> int:
    return int(line[line.rindex(b":") + 1 : -2])


def _dir_counts() -> dict[str, int]:
    return {"c2s": 0, "s2c": 0}


@dataclass(slots=True)
class ConnectionInfo:
    """One proxied TCP connection. `opened_at_seq`/`closed_at_seq`: frames recorded before it
    opened/closed, which orders connections against frames without a wall clock."""

    id: int
    proto: Proto
    listen: str | None
    upstream: str | None
    opened_at_seq: int
    closed_at_seq: int | None = None
    close_reason: str | None = None
    frames: dict[str, int] = field(default_factory=_dir_counts)
    bytes: dict[str, int] = field(default_factory=_dir_counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bytes": dict(self.bytes),
            "close_reason": self.close_reason,
            "closed_at_seq": self.closed_at_seq,
            "frames": dict(self.frames),
            "id": self.id,
            "listen": self.listen,
            "opened_at_seq": self.opened_at_seq,
            "proto": str(self.proto),
            "upstream": self.upstream,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConnectionInfo:
        return cls(
            id=int(data["id"]),
            proto=Proto(data["proto"]),
            listen=data.get("listen"),
            upstream=data.get("upstream"),
            opened_at_seq=int(data.get("opened_at_seq", 0)),
            closed_at_seq=data.get("closed_at_seq"),
            close_reason=data.get("close_reason"),
            frames={"c2s": int(data["frames"]["c2s"]), "s2c": int(data["frames"]["s2c"])},
            bytes={"c2s": int(data["bytes"]["c2s"]), "s2c": int(data["bytes"]["s2c"])},
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """cassette.json. No wall-clock value anywhere, so two recordings of the same traffic with the
    same timing-free content produce the same manifest."""

    tool_version: str
    meta: dict[str, Any]
    protocols: tuple[str, ...]
    routes: tuple[dict[str, str], ...]
    kafka_nodes: dict[str, dict[str, Any]]
    connections: tuple[ConnectionInfo, ...]
    frame_count: int
    frame_counts: dict[str, int]  # {"c2s": n, "s2c": n}
    raw_bytes: int  # sum of raw frame bytes
    frames_file_bytes: int
    frames_sha256: str
    budgets: Budgets
    stopped: dict[str, Any] | None  # the BudgetExceeded that stopped recording, if any
    artifacts: dict[str, str]  # relpath under artifacts/ -> sha256
    finalized: bool
    repaired: bool = False
    #: repaired without a manifest: no digest, budgets or artifacts to check the frames against
    unverified: bool = False
    #: what `rrlab record` ran (so `rrlab replay --cassette DIR` can run it again); None in a
    #: cassette recorded by `rrlab proxy` alone, or before commands were stored
    command: StoredCommand | None = None
    format: str = FORMAT
    #: frames.timing's size and sha256 (format 2; None in format 1, whose lines carry times)
    timing_file_bytes: int | None = None
    timing_sha256: str | None = None
    #: frames.raw's size and sha256 (format 3; None before, whose lines carry the bytes)
    raw_file_bytes: int | None = None
    raw_sha256: str | None = None
    #: format 4: each file's stored (gzipped) size and sha256, by its plain name; the fields
    #: above stay those of the plain content (what `rrlab migrate --expand` gives back)
    stored: dict[str, tuple[int, str]] | None = None

    @property
    def timed_lines(self) -> bool:
        """Format 1: each frame line carries its `t_us`, and there is no timing file."""
        return self.format == FORMAT_V1

    @property
    def sidecar(self) -> bool:
        """Formats 3 and 4: the frames' bytes are in frames.raw, each line holds its frame's
        size."""
        return self.format in (FORMAT, FORMAT_V4)

    @property
    def compacted(self) -> bool:
        """Format 4: frames.jsonl, frames.raw and frames.timing are stored gzipped."""
        return self.format == FORMAT_V4

    def connection(self, conn_id: int) -> ConnectionInfo | None:
        for conn in self.connections:
            if conn.id == conn_id:
                return conn
        return None

    def to_dict(self) -> dict[str, Any]:
        return (
            {
                "artifacts": dict(sorted(self.artifacts.items())),
                "budgets": self.budgets.to_dict(),
                "connections": [c.to_dict() for c in self.connections],
                "finalized": self.finalized,
                "format": self.format,
                "frame_count": self.frame_count,
                "frame_counts": dict(self.frame_counts),
                "frames_file": self._file_dict(FRAMES_NAME),
                "kafka_nodes": self.kafka_nodes,
                "meta": self.meta,
                "protocols": list(self.protocols),
                "raw_bytes": self.raw_bytes,
                "repaired": self.repaired,
                "routes": list(self.routes),
                "stopped": self.stopped,
                "tool_version": self.tool_version,
            }
            | ({} if self.command is None else {"command": self.command.to_dict()})
            | self._timing_dict()
            | self._raw_dict()
        )

    def _raw_dict(self) -> dict[str, Any]:
        if not self.sidecar:
            return {}
        return {"raw_file": self._file_dict(RAW_NAME)}

    def _timing_dict(self) -> dict[str, Any]:
        if self.timed_lines:
            return {}
        return {"timing_file": self._file_dict(TIMING_NAME)}

    def plain_file(self, name: str) -> tuple[int, str]:
        """(size, sha256) of frame file `name` (frames.jsonl, frames.raw or frames.timing) as
        written, before any compaction."""
        if name == FRAMES_NAME:
            return self.frames_file_bytes, self.frames_sha256
        if name == RAW_NAME:
            return self.raw_file_bytes or 0, self.raw_sha256 or _EMPTY_SHA256
        return self.timing_file_bytes or 0, self.timing_sha256 or _EMPTY_SHA256

    def _file_dict(self, name: str) -> dict[str, Any]:
        """A file's entry: its name, size and digest as stored; in format 4 the gzipped file's,
        with what it decompresses to as `plain`."""
        size, sha256 = self.plain_file(name)
        if not self.compacted:
            return {"bytes": size, "name": name, "sha256": sha256}
        stored_bytes, stored_sha256 = (self.stored or {})[name]
        return {
            "bytes": stored_bytes,
            "name": GZ_NAMES[name],
            "plain": {"bytes": size, "sha256": sha256},
            "sha256": stored_sha256,
        }

    def to_json(self) -> bytes:
        data = self.to_dict()
        if self.unverified:  # only then: manifests written before this field stay byte-equal
            data["unverified"] = True
        return dumps(data)

    @classmethod
    def from_dict(cls, data: Any, *, path: str | os.PathLike[str]) -> Manifest:
        if not isinstance(data, dict):
            raise MalformedManifest(path, "not a JSON object")
        fmt = data.get("format")
        if fmt not in READABLE_FORMATS:
            raise UnsupportedFormat(path, fmt, READABLE_FORMATS)
        try:
            stored = None
            frames_file = data["frames_file"]
            timing_file = data["timing_file"] if fmt != FORMAT_V1 else None
            raw_file = data["raw_file"] if fmt in (FORMAT, FORMAT_V4) else None
            if fmt == FORMAT_V4:
                stored = {}
                entries = ((FRAMES_NAME, frames_file), (TIMING_NAME, timing_file))
                for name, entry in (*entries, (RAW_NAME, raw_file)):
                    stored[name] = _stored(name, entry)
                frames_file, timing_file, raw_file = (
                    frames_file["plain"],
                    timing_file["plain"],
                    raw_file["plain"],
                )
            return cls(
                format=fmt,
                tool_version=str(data["tool_version"]),
                meta=dict(data.get("meta") or {}),
                protocols=tuple(data["protocols"]),
                routes=tuple(dict(r) for r in data["routes"]),
                kafka_nodes=dict(data["kafka_nodes"]),
                connections=tuple(ConnectionInfo.from_dict(c) for c in data["connections"]),
                frame_count=int(data["frame_count"]),
                frame_counts={k: int(data["frame_counts"][k]) for k in ("c2s", "s2c")},
                raw_bytes=int(data["raw_bytes"]),
                frames_file_bytes=int(frames_file["bytes"]),
                frames_sha256=str(frames_file["sha256"]),
                budgets=Budgets.from_dict(data["budgets"]),
                stopped=data.get("stopped"),
                artifacts=_artifacts(data["artifacts"]),
                finalized=data["finalized"] is True,
                repaired=data.get("repaired") is True,
                unverified=data.get("unverified") is True,
                command=StoredCommand.from_dict(data["command"]) if "command" in data else None,
                timing_file_bytes=None if timing_file is None else int(timing_file["bytes"]),
                timing_sha256=None if timing_file is None else _sha256(timing_file["sha256"]),
                raw_file_bytes=None if raw_file is None else int(raw_file["bytes"]),
                raw_sha256=None if raw_file is None else _sha256(raw_file["sha256"], "raw_file"),
                stored=stored,
            )
        except (KeyError, TypeError, ValueError, AttributeError, PolicyError) as exc:
            what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise MalformedManifest(path, what) from None


_SHA256 = re.compile(r"[0-9a-f]{64}")
#: sha256 of no bytes (an empty timing or raw file: a cassette of no frames)
_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _sha256(value: Any, what: str = "timing_file") -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"{what} sha256 must be 64 lowercase hex digits")
    return value


def _stored(name: str, entry: Any) -> tuple[int, str]:
    """(size, sha256) of a format 4 file entry, which must name the gzipped file."""
    if entry.get("name") != GZ_NAMES[name]:
        raise ValueError(f"format 4 stores {name} as {GZ_NAMES[name]}, not {entry.get('name')!r}")
    size = entry["bytes"]
    if not _is_int(size) or size < 0:
        raise ValueError(f"{GZ_NAMES[name]} bytes must be a non-negative integer")
    return size, _sha256(entry["sha256"], GZ_NAMES[name])


def _artifacts(data: Mapping[str, Any]) -> dict[str, str]:
    """Artifact keys are paths inside `artifacts/` and a replay compares each against the file
    of the same relative path: a key with `..` or an absolute one would reach outside both."""
    out = {}
    for key, digest in data.items():
        try:
            name = safe_relpath(key)
        except ValueError:
            raise ValueError(f"artifact key {key!r} is not a relative path without '..'") from None
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise ValueError(f"artifact {key!r}: sha256 must be 64 lowercase hex digits")
        out[name] = digest
    return out
