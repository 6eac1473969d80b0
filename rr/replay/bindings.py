"""Bindings: values a client chose (a reply queue named by a fresh UUID, a correlation id, a
random client id, the recording host's name), bound recorded value -> live value for the whole
replay, on every connection of every protocol.

One table per run (`Bindings`, in the `ReplayContext`). A session that finds no recorded frame
equal to a live one asks `unify` whether the live frame differs from its recorded counterpart
only in *identifier-shaped* values (`Recognizer`: UUIDs in any spelling, long random hex or
base64 tokens, `amq.gen-`/`amq.ctag-` names, the recording host's and user's names, process ids
beside the host name) and in clock values (`Clock`). If so, the pairs are bound
(`Bindings.bind`): later live frames are compared with the live values put back to recorded
ones (`to_recorded`), and every frame served afterwards carries the live value wherever the
recorded one appears (`to_live`), inside longer strings too. A recorded value bound to two live
ones, or a live value to two recorded ones, is a `Conflict` (a miss naming both). Anything not
identifier-shaped (a task argument, a count, a price) never binds: it stays a field diff.
Values a protocol knows are client-chosen by position (an MQTT client id or MQTT 5 correlation
data, a Kafka client id, an AMQP consumer tag or connection name) are bound whole, whatever their
shape (`bind`); a binary one that is not UTF-8 as its `binary_text`.
Pure: strings, bytes and JSON-able values in, no sockets, no cassette I/O.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Identifier shapes recognised in a recorded string, most specific first. Each has the pattern
#: a live value in its place must have (a UUID in any spelling stands for a UUID).
_UUID = (
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32}"
)
_AMQ = r"amq\.(?:gen|ctag)-[A-Za-z0-9_-]{8,}"
#: hex of 16+ digits with at least one digit and one letter (not a word, not a number)
_HEX = r"(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{16,}"
#: URL-safe or plain base64 of 20+ characters mixing upper case, lower case and digits, and
#: holding no UUID (a UUID next to letters is the UUID: `Hd4d302d8-...` in a record's bytes)
_B64 = (
    r"(?![A-Za-z0-9+/_-]*?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-)"
    r"(?=[A-Za-z0-9+/_-]*[0-9])(?=[A-Za-z0-9+/_-]*[a-z])(?=[A-Za-z0-9+/_-]*[A-Z])"
    r"[A-Za-z0-9+/_-]{20,}={0,2}"
)
SHAPES: dict[str, tuple[str, str]] = {
    # kind: (recognised in a recorded string, accepted in its place in a live one)
    "amq-name": (_AMQ, _AMQ),
    "uuid": (_UUID, _UUID),
    "hex": (_HEX, r"[0-9a-fA-F]{8,}"),
    "token": (_B64, r"[A-Za-z0-9+/_-]{12,}={0,2}"),
}
#: where a name (host, user) ends inside a longer string
_NAME = r"[^\s\"'/@:,;]+?"
#: Clock values: epoch numbers by unit (seconds .. nanoseconds), ISO-8601 date-times.
_EPOCH_UNITS = (1, 1_000, 1_000_000, 1_000_000_000)
#: an epoch number written as a string (`expires: "1796294018.047566"`): 9+ integer digits
_EPOCH_TEXT = re.compile(r"\d{9,19}(\.\d{1,9})?")
_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?"
)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the recording was made: its host's name and user name (the manifest's `origin`),
    which a client puts into names (`celery@HOST.celery.pidbox`, `gen4242@HOST`)."""

    host: str | None = None
    user: str | None = None

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> Origin:
        origin = meta.get("origin") if isinstance(meta, Mapping) else None
        if not isinstance(origin, Mapping):
            return cls()
        host, user = origin.get("host"), origin.get("user")
        return cls(
            host if isinstance(host, str) and len(host) >= 2 else None,
            user if isinstance(user, str) and len(user) >= 3 else None,
        )


class Recognizer:
    """Finds identifier-shaped values in a recorded string and, for a live string in its place,
    what each of them became."""

    def __init__(self, origin: Origin = Origin()) -> None:
        self.origin = origin
        kinds: list[tuple[str, str, str]] = []  # (kind, recorded pattern, live pattern)
        if origin.host:
            host = re.escape(origin.host)
            # a process id beside the host name: `gen4242@HOST`, `4242@HOST`
            kinds.append(("pid@host", rf"[A-Za-z_]*\d+@{host}", rf"[A-Za-z_]*\d+@{_NAME}"))
            kinds.append(("host", host, _NAME))
        if origin.user:
            kinds.append(
                ("user", rf"(?<![A-Za-z0-9]){re.escape(origin.user)}(?![A-Za-z0-9])", _NAME)
            )
        kinds += [(kind, rec, live) for kind, (rec, live) in SHAPES.items()]
        self._kinds = kinds
        self._find = re.compile(
            "|".join(f"(?P<k{i}>{rec})" for i, (_k, rec, _l) in enumerate(kinds))
        )

    def tokens(self, text: str) -> list[tuple[str, str]]:
        """(kind, value) of every identifier-shaped value in `text`, in order."""
        return [
            (self._kinds[int(m.lastgroup[1:])][0], m.group()) for m in self._find.finditer(text)
        ]

    def pairs(self, recorded: str, live: str) -> list[tuple[str, str]] | None:
        """(recorded, live) values when `live` is `recorded` with only its identifier-shaped
        values changed (each to a value of the same kind); None otherwise."""
        parts: list[str] = []
        values: list[str] = []
        at = 0
        for m in self._find.finditer(recorded):
            _kind, _rec, live_pattern = self._kinds[int(m.lastgroup[1:])]
            parts.append(re.escape(recorded[at : m.start()]))
            parts.append(f"({live_pattern})")
            values.append(m.group())
            at = m.end()
        if not values:
            return None
        parts.append(re.escape(recorded[at:]))
        got = re.fullmatch("".join(parts), live, re.DOTALL)
        if got is None:
            return None
        return [(rec, new) for rec, new in zip(values, got.groups(), strict=True) if rec != new]


@dataclass(frozen=True, slots=True)
class Clock:
    """Clock values of the recording: a recorded epoch number (s, ms, µs or ns) or ISO-8601
    date-time inside `span` (epoch seconds) stands for the clock at record time and matches a
    live value of the same form. `exact` paths (a rules file's `exact_clock_fields`, dotted,
    as diff lines print them without indexes) turn that off per field."""

    span: tuple[float, float] = (0.0, 0.0)
    exact: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return self.span[1] > self.span[0]

    def inside(self, seconds: float) -> bool:
        return self.span[0] <= seconds <= self.span[1]

    def same(self, recorded: Any, live: Any, path: str) -> bool:
        if not self or path in self.exact:
            return False
        if isinstance(recorded, bool) or isinstance(live, bool):
            return False
        if isinstance(recorded, int | float) and isinstance(live, int | float):
            return any(
                self.inside(recorded / unit) and _same_magnitude(recorded, live) and live > 0
                for unit in _EPOCH_UNITS
            )
        if isinstance(recorded, str) and isinstance(live, str):
            rec_epoch, live_epoch = _EPOCH_TEXT.fullmatch(recorded), _EPOCH_TEXT.fullmatch(live)
            if rec_epoch and live_epoch:  # same form: both with a fraction or neither
                return bool(rec_epoch[1]) == bool(live_epoch[1]) and self.same(
                    float(recorded), float(live), path
                )
            rec_at = _iso_seconds(recorded)
            return (
                rec_at is not None
                and self.inside(rec_at)
                and _iso_form(recorded) == _iso_form(live)
            )
        return False


#: a generated part of a client-chosen name: a run of letters and digits holding a digit, or of
#: 8+ hex digits (`svc-` + 8 random hex digits are all letters once in 2,500 runs)
_GENERATED = re.compile(
    r"[A-Za-z0-9]*[0-9][A-Za-z0-9]*|(?<![A-Za-z0-9])[0-9a-fA-F]{8,}(?![A-Za-z0-9])"
)


def alike(recorded: str, live: str) -> bool:
    """Whether two client-chosen names (client ids) differ only in their generated parts (runs
    of letters and digits that hold a digit, hex runs): `svc-d3565c6f` and `svc-b3410c8d`,
    `producer-1` and `producer-2`; never two fixed names (`billing` and `shipping`). A protocol
    that cannot tell by position which recorded client id a live one stands for (a Kafka
    connection's first request may not name it) binds only alike ones."""
    return recorded != live and _GENERATED.sub("#", recorded) == _GENERATED.sub("#", live)


def _same_magnitude(a: float, b: float) -> bool:
    return a > 0 and b > 0 and abs(math.log10(a) - math.log10(b)) < 0.5


def _iso_form(text: str) -> str | None:
    """An ISO-8601 date-time's form (digits as 9): same form, same clock field."""
    if _ISO.fullmatch(text) is None:
        return None
    return re.sub(r"\d", "9", text)


def _iso_seconds(text: str) -> float | None:
    if _ISO.fullmatch(text) is None:
        return None
    try:
        at = datetime.fromisoformat(text.replace(",", ".").replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:  # local time of the recording host: a day either way covers any zone
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


#: The span a recorded clock value must lie in. The manifest holds no wall-clock value (two
#: recordings of the same traffic give the same manifest), so the recording's own span is not
#: known at replay: a clock value is a date-time or epoch number of this century.
CLOCK_SPAN = (946_684_800.0, 4_102_444_800.0)  # 2000-01-01 .. 2100-01-01 UTC


def clock(exact: Iterable[str] = ()) -> Clock:
    """The run's clock rule: recorded clock values match any live one of the same form, except
    in the `exact` fields."""
    return Clock(CLOCK_SPAN, frozenset(exact))


@dataclass(frozen=True, slots=True)
class Conflict:
    """A value that would be bound twice: `recorded` already bound to `bound`, now `live`
    (or, with `reverse`, live value `live` already bound to recorded `bound`)."""

    recorded: str
    live: str
    bound: str
    reverse: bool = False

    def line(self) -> str:
        live, bound, recorded = shown(self.live), shown(self.bound), shown(self.recorded)
        if self.reverse:
            return (
                f"binding conflict: live {live!r} is already bound to recorded "
                f"{bound!r}, here it stands for recorded {recorded!r}"
            )
        return (
            f"binding conflict: recorded {recorded!r} is already bound to live "
            f"{bound!r}, here live {live!r}"
        )


@dataclass(frozen=True, slots=True)
class Binding:
    recorded: str
    live: str
    #: where it was first seen: protocol, live connection, frame name
    where: str

    def to_dict(self) -> dict[str, str]:
        return {"live": shown(self.live), "recorded": shown(self.recorded), "where": self.where}


@dataclass(slots=True)
class Unified:
    """What made a live value equal to a recorded one: pairs to bind, clock fields accepted."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    clocks: list[str] = field(default_factory=list)


class Bindings:
    """The run's table: recorded -> live and back, the order they were made, the stamping."""

    def __init__(self, recognizer: Recognizer | None = None, clock: Clock = Clock()) -> None:
        self.recognizer = recognizer or Recognizer()
        self.clock = clock
        self.to_live_map: dict[str, str] = {}
        self.to_rec_map: dict[str, str] = {}
        self.made: list[Binding] = []
        #: values that are both a recorded and a live value of different bindings (a swap:
        #: consumer tags `None2` <-> `None3`): live bytes holding one equal recorded bytes that
        #: mean the other
        self._crossing: set[bytes] = set()
        #: the replacing, each way: recorded -> live (serving), live -> recorded (comparing)
        self._live = _Replacer(self.recognizer)
        self._rec = _Replacer(self.recognizer)

    def __bool__(self) -> bool:
        return bool(self.to_live_map)

    # -- the table -----------------------------------------------------------------------------

    def conflict(self, pairs: Iterable[tuple[str, str]]) -> Conflict | None:
        """The first pair that disagrees with the table or with an earlier pair."""
        to_live, to_rec = dict(self.to_live_map), dict(self.to_rec_map)
        for rec, live in pairs:
            if to_live.get(rec, live) != live:
                return Conflict(rec, live, to_live[rec])
            if to_rec.get(live, rec) != rec:
                return Conflict(rec, live, to_rec[live], reverse=True)
            to_live[rec], to_rec[live] = live, rec
        return None

    def bind(self, pairs: Iterable[tuple[str, str]], where: str) -> Conflict | None:
        """Add the pairs (all or none): None, or the conflict that stopped them."""
        pairs = [(r, v) for r, v in pairs if r and v and r != v]
        found = self.conflict(pairs)
        if found is not None:
            return found
        for rec, live in pairs:
            if rec not in self.to_live_map:
                self.to_live_map[rec], self.to_rec_map[live] = live, rec
                self.made.append(Binding(rec, live, where))
                self._live.add(rec, live)
                self._rec.add(live, rec)
                if live in self.to_live_map:
                    self._crossing.add(_bytes(live))
                if rec in self.to_rec_map:
                    self._crossing.add(_bytes(rec))
        return None

    def crossed_in(self, data: bytes) -> bool:
        """Whether live bytes hold a value that is also another binding's recorded value: a
        fast path that matches equal bytes must not take them then."""
        return bool(self._crossing) and any(value in data for value in self._crossing)

    def trial(self, pairs: Iterable[tuple[str, str]]) -> Bindings:
        """A copy with `pairs` added (when unconflicting): to ask how a frame would compare if
        they were bound, before binding them."""
        copy = Bindings(self.recognizer, self.clock)
        copy.bind([*self.to_live_map.items(), *pairs], "trial")
        return copy

    # -- unify ---------------------------------------------------------------------------------

    def unify(self, recorded: Any, live: Any) -> Unified | None:
        """How `live` (a message view, live values already put back by `to_recorded`) equals
        `recorded` up to identifier-shaped values and clock values; None if anything else
        differs. The pairs are not bound yet (see `bind`)."""
        out = Unified()
        return out if self._walk("", recorded, live, out) else None

    def _walk(self, path: str, rec: Any, live: Any, out: Unified) -> bool:
        if rec == live and type(rec) is type(live):
            return True
        rec_text, live_text = _text_of(rec), _text_of(live)
        if rec_text is not None and live_text is not None:
            rec, live = rec_text, live_text
        elif isinstance(rec, dict) and isinstance(live, dict):
            if set(rec) != set(live):
                return False
            return all(self._walk(_join(path, k), rec[k], live[k], out) for k in rec)
        if isinstance(rec, list) and isinstance(live, list):
            if len(rec) != len(live):
                return False
            return all(self._walk(path, a, b, out) for a, b in zip(rec, live, strict=True))
        if self.clock.same(rec, live, path):
            out.clocks.append(path)
            return True
        if isinstance(rec, str) and isinstance(live, str):
            pairs = self.recognizer.pairs(rec, live)
            if pairs is not None:
                out.pairs += pairs
                return True
        return False

    def aligned(self, recorded: Any, live: Any, path: str = "") -> Any:
        """`live` with every leaf that differs from `recorded` only by identifier-shaped or
        clock values set to the recorded one: a miss's diff then names the fields that really
        differ (a task argument), not the ids around them."""
        if isinstance(recorded, dict) and isinstance(live, dict) and _text_of(recorded) is None:
            return {
                k: self.aligned(recorded[k], v, _join(path, k)) if k in recorded else v
                for k, v in live.items()
            }
        if isinstance(recorded, list) and isinstance(live, list) and len(recorded) == len(live):
            return [self.aligned(r, v, path) for r, v in zip(recorded, live, strict=True)]
        if recorded != live and self._walk(path, recorded, live, Unified()):
            return recorded
        return live

    # -- stamping ------------------------------------------------------------------------------

    def to_live(self, text: str) -> str:
        """`text` with every recorded value replaced by its live one (what is served)."""
        return self._live.text(text) if self else text

    def to_recorded(self, text: str) -> str:
        """`text` with every live value put back to its recorded one (what is compared)."""
        return self._rec.text(text) if self else text

    def bytes_to_live(self, data: bytes) -> bytes:
        return self._live.data(data) if self else data

    def bytes_to_recorded(self, data: bytes) -> bytes:
        return self._rec.data(data) if self else data

    def value_to_live(self, value: Any) -> Any:
        """A JSON-able value (a decoder summary, a message view) with live values stamped in,
        binary values (`{"base64": ...}`) too."""
        return _map_strings(value, self.to_live, self.bytes_to_live) if self else value

    def value_to_recorded(self, value: Any) -> Any:
        return _map_strings(value, self.to_recorded, self.bytes_to_recorded) if self else value

    def mentions_live(self, data: bytes) -> bool:
        """Whether `data` holds a bound live value (a fast path that compares bytes must not
        take it then)."""
        return bool(self) and self._rec.found_in(data)

    def mentions_recorded(self, data: bytes) -> bool:
        return bool(self) and self._live.found_in(data)

    def lines(self) -> list[str]:
        """One line per binding made, for the run report."""
        return [f"bound {shown(b.recorded)!r} -> {shown(b.live)!r} ({b.where})" for b in self.made]


class _Replacer:
    """Replaces bound values one way, in a cost that does not grow with the table: an
    identifier-shaped value (one recognised token: a UUID, a token) is found by scanning the
    text for tokens and looking each up; any other value (a client id, a host name, a consumer
    tag: few per run) through one alternation, compiled again only when one is added. A run
    that binds a fresh message id per message stays linear."""

    def __init__(self, recognizer: Recognizer) -> None:
        self._scan = recognizer._find
        self._bscan = re.compile(recognizer._find.pattern.encode())
        self.shaped: dict[str, str] = {}
        self.shaped_b: dict[bytes, bytes] = {}
        self.other: dict[str, str] = {}
        self._other_re: re.Pattern[str] | None = None
        self._other_bre: re.Pattern[bytes] | None = None

    def add(self, old: str, new: str) -> None:
        match = self._scan.fullmatch(old)
        if match is not None:
            self.shaped[old] = new
            self.shaped_b[_bytes(old)] = _bytes(new)
            return
        self.other[old] = new
        keys = sorted(self.other, key=len, reverse=True)
        self._other_re = re.compile("|".join(re.escape(k) for k in keys))
        self._other_bre = re.compile(b"|".join(re.escape(_bytes(k)) for k in keys))

    def text(self, text: str) -> str:
        if self._other_re is not None:
            text = self._other_re.sub(lambda m: self.other[m.group()], text)
        if self.shaped:
            table = self.shaped
            text = self._scan.sub(lambda m: table.get(m.group(), m.group()), text)
        return text

    def data(self, data: bytes) -> bytes:
        if self._other_bre is not None:
            other = self.other
            data = self._other_bre.sub(lambda m: _bytes(other[binary_text(m.group())]), data)
        if self.shaped_b:
            table = self.shaped_b
            data = self._bscan.sub(lambda m: table.get(m.group(), m.group()), data)
        return data

    def found_in(self, data: bytes) -> bool:
        if self._other_bre is not None and self._other_bre.search(data):
            return True
        table = self.shaped_b
        return bool(table) and any(m.group() in table for m in self._bscan.finditer(data))


def _map_strings(value: Any, fn: Callable[[str], str], bfn: Callable[[bytes], bytes]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, bytes):
        return bfn(value)
    if isinstance(value, dict):
        if set(value) == {"base64"} and isinstance(value["base64"], str):
            data = base64.b64decode(value["base64"])
            return {"base64": base64.b64encode(bfn(data)).decode("ascii")}
        return {
            fn(k) if isinstance(k, str) else k: _map_strings(v, fn, bfn) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_map_strings(v, fn, bfn) for v in value]
    if isinstance(value, tuple):
        return tuple(_map_strings(v, fn, bfn) for v in value)
    return value


def binary_text(data: bytes) -> str:
    """Bytes as a binding's value: their text, or for bytes that are not UTF-8 (a binary MQTT 5
    correlation data) a string that encodes back to the same bytes (surrogate escapes)."""
    return data.decode("utf-8", "surrogateescape")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def shown(value: str) -> str:
    """A bound value as a report shows it: its text, or `0x` + hex for bytes not UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "0x" + _bytes(value).hex()
    return value


def _text_of(value: Any) -> str | None:
    """A binary value (`{"base64": ...}`) as text, if it is UTF-8 (MQTT 5 correlation data)."""
    if isinstance(value, dict) and set(value) == {"base64"}:
        try:
            return base64.b64decode(value["base64"]).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)
