"""`rrlab record --runs 2`: what two recordings of one command against the same broker state say
about it. Values that differ at the same place were chosen anew by the run (a random number, a
clock reading): they become ignore rules for the cassette's `replay-rules.json`, each with a
comment saying where it varied. Identifier-shaped values (UUIDs, long hex tokens, `amq.gen-`
names, `name<pid>@host`) are not written: replay binds them (a rule would hide them from
binding). Runs that differ in structure (another number of connections, or of messages, or
another method at a place) are not repeatable against this broker state: nothing is learned
and the first difference is named.

What is compared is what replay compares: each connection's client messages (AMQP methods with
their content assembled, MQTT packets), seen through the protocol's own match rules so that
what replay already ignores (client-chosen consumer tags, credentials, keep-alive) is never
learned. Liveness (heartbeats, pings) is left out, and so are publishes on a clock (a
destination published to a second or more apart, as many times as the run lasted: a
framework's heartbeat event); AMQP acks are compared by name only (which delivery is acked
first is the scheduler's). Kafka connections are not compared (their data plane replays from a
log whose batches differ every run): a Kafka command learns nothing.

Scheduling is neither a structure difference nor a value that varied. Connections are grouped
by how they opened (the names of their messages before the first content): a lone connection
is compared with its counterpart in order; the connections of a pool (the children of a worker,
which connect alike) as one, by how many of each message they sent together. A message is
compared with the one at its place, unless scheduling moved it (in a pool, or to another
channel of its connection: its method arguments differ), then with the closest message of its
method.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrlab.rr import diff as rrdiff
from rrlab.rr.cassette import CassetteReader, FrameRecord
from rrlab.rr.protocols import protocol_for
from rrlab.rr.protocols.amqp import normalize as amqp
from rrlab.rr.protocols.mqtt import normalize as mqtt

#: AMQP methods whose arguments are the scheduler's (which concurrent delivery is acked first).
ACKS = frozenset({"Basic.Ack", "Basic.Nack", "Basic.Reject"})
#: Places shown per learned rule in its comment.
SHOWN_PLACES = 1
#: Messages of a pool searched for the closest partner at most (beyond: compared in place).
MAX_POOLED = 2000
#: Publishes at least this far apart whose count differs between runs are on a clock (µs).
CLOCK_GAP_US = 1_000_000
#: Structure differences named at most.
MAX_STRUCTURE = 5

_IDENTIFIERS = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"  # UUID
    r"|amq\.(?:gen|ctag)-[A-Za-z0-9_-]+"  # server-named queues and consumer tags
    r"|\b[0-9a-fA-F]{16,}\b"  # hex tokens
    r"|(?<=[A-Za-z])\d+(?=@)"  # a process id in `name<pid>@host` (kombu's origin)
)


@dataclass(frozen=True, slots=True)
class Unit:
    """One client message of a connection: its name in outlines, its view for values."""

    name: str
    view: dict[str, Any]
    method: str = ""  # the name without its channel (scheduling may move a message between them)
    content: bool = False  # an AMQP publish or an MQTT PUBLISH
    destination: str | None = None  # where a publish went (exchange and routing key, topic)
    at_us: int = 0  # when it was sent (since the recording started)
    channel: int = 0  # the AMQP channel it went on (MQTT: one stream, 0)


@dataclass(frozen=True, slots=True)
class Connection:
    """A recorded connection as compared: its number, its protocol's ignore-path shape, and its
    client messages."""

    number: int
    shape: rrdiff.Shape
    units: list[Unit]

    @property
    def outline(self) -> tuple[str, ...]:
        return tuple(unit.name for unit in self.units)

    def without(self, destinations: Iterable[str]) -> Connection:
        """The connection without its publishes to these destinations."""
        skip = set(destinations)
        units = [unit for unit in self.units if unit.destination not in skip]
        return Connection(self.number, self.shape, units)

    @property
    def streams(self) -> Counter[tuple[str, ...]]:
        """Its channels' messages in order, each channel a stream, the channel's number left
        out: which of a worker's threads opened its channel first (and got the lower number),
        and how their messages interleave on the socket, is the scheduler's."""
        return Counter(_channels(self).values())

    @property
    def opening(self) -> tuple[str, ...]:
        """The methods of its messages before the first that carries content, sorted (how its
        channels' set-up interleaved is the scheduler's)."""
        names = []
        for unit in self.units:
            if unit.content:
                break
            names.append(unit.method)
        return (self.shape.payload, *sorted(names))  # the part name tells protocols apart


@dataclass(slots=True)
class Varied:
    """An ignore path whose value differed between the runs, and where."""

    path: str
    why: str = ""  # why it is not written as a rule (empty: it is)
    places: list[str] = field(default_factory=list)

    def comment(self) -> str:
        shown = "; ".join(self.places[:SHOWN_PLACES])
        more = len(self.places) - SHOWN_PLACES
        more_text = f" and {more} more place{'s' * (more > 1)}" if more > 0 else ""
        return f"rrlab record --runs 2: varied between the runs at {shown}{more_text}"


@dataclass(slots=True)
class Comparison:
    """What two runs said: rules learned, varying values left to replay (with why), and where
    the runs differ in structure."""

    learned: dict[str, Varied] = field(default_factory=dict)
    left: dict[str, Varied] = field(default_factory=dict)
    #: publish destinations taken for publishes on a clock, with what was seen
    clock: dict[str, str] = field(default_factory=dict)
    structure: list[str] = field(default_factory=list)
    compared: int = 0  # connections compared

    @property
    def repeatable(self) -> bool:
        return not self.structure


def compare(first: str | Path, second: str | Path) -> Comparison:
    """Compare two finalized cassettes of the same command."""
    out = Comparison()
    runs = [_connections(first), _connections(second)]
    out.clock = _on_a_clock(runs[0], runs[1])
    if out.clock:
        runs = [[conn.without(out.clock) for conn in run] for run in runs]
    pools = [_pools(runs[0]), _pools(runs[1])]
    alone: tuple[list[Connection], list[Connection]] = ([], [])
    for opening in dict.fromkeys([*pools[0], *pools[1]]):
        ours, theirs = pools[0].get(opening, []), pools[1].get(opening, [])
        if not ours or not theirs:
            alone[0 if ours else 1].extend(ours or theirs)
            continue
        problem = _structure(ours, theirs)
        if problem:
            out.structure.append(problem)
        else:
            _compare_pool(ours, theirs, out)
            out.compared += len(ours)
    out.structure += _unlike(*alone)
    del out.structure[MAX_STRUCTURE:]
    if out.structure:
        out.learned.clear()
        out.left.clear()
    return out


def rules(comparison: Comparison, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The rules file with the learned paths added (kept rules and comments stay)."""
    doc = dict(existing or {})
    fields = list(doc.get("ignore_fields", []))
    comments = dict(doc.get("comments", {}))
    for path, varied in comparison.learned.items():
        if path not in fields:
            fields.append(path)
        comments[path] = varied.comment()
    doc["ignore_fields"] = fields
    doc.setdefault("ignore_headers", [])
    if comments:
        doc["comments"] = comments
    return doc


# --- reading ------------------------------------------------------------------------------------


def _connections(cassette: str | Path) -> list[Connection]:
    """Each compared connection, in the order connections were numbered."""
    per_conn: dict[int, list[FrameRecord]] = {}
    with CassetteReader.open(cassette, check_digest=False) as reader:
        for frame in reader.frames():
            if frame.dir == "c2s" and str(frame.proto) != "kafka":
                per_conn.setdefault(frame.conn, []).append(frame)
    out = []
    for number, frames in sorted(per_conn.items()):
        if str(frames[0].proto) == "amqp":
            out.append(Connection(number, amqp.SHAPE, list(_amqp_units(frames))))
        else:
            out.append(Connection(number, mqtt.SHAPE, list(_mqtt_units(frames))))
    return out


def _amqp_units(frames: Iterable[FrameRecord]) -> Iterator[Unit]:
    """AMQP messages; a consumer tag the client chose is named by its order on the connection,
    as replay maps live tags to recorded ones."""
    assembler = amqp.Assembler()
    tags: dict[str, str] = {}
    for frame in frames:
        if amqp.is_liveness(frame.summary):
            continue
        message = assembler.feed(frame.summary, frame.raw)
        if message is None:
            continue
        tag = message.args.get("consumer_tag")
        if message.name == "Basic.Consume" and tag:
            tags.setdefault(tag, f"<consumer tag {len(tags) + 1}>")
        if tag in tags:
            message.args["consumer_tag"] = tags[tag]
        view = amqp.normalized(message)
        name = f"ch {message.channel} {message.name}"
        if message.name in ACKS:
            view = {}  # which delivery is acked first is the scheduler's
        parts = {k: v for k, v in view.items() if k in ("args", "properties", "body")}
        content = message.body is not None
        args = message.args
        dest = f"exchange {args.get('exchange')!r} key {args.get('routing_key')!r}"
        dest = _IDENTIFIERS.sub("<id>", dest) if content else None
        yield Unit(name, parts, message.name, content, dest, frame.t_us, message.channel)


def _mqtt_units(frames: Iterable[FrameRecord]) -> Iterator[Unit]:
    protocol = protocol_for("mqtt")
    for frame in frames:
        if protocol.is_liveness(frame.summary):
            continue
        packet = str(frame.summary.get("packet"))
        content = packet == "PUBLISH"
        payload = protocol.payload(frame.summary, frame.raw) if content else None
        view = mqtt.packet_view(frame.summary, payload)
        view.pop("packet_id", None)  # the client's numbering, matched as such by replay
        dest = f"topic {frame.summary.get('topic')!r}"
        dest = _IDENTIFIERS.sub("<id>", dest) if content else None
        yield Unit(packet, view, packet, content, dest, frame.t_us)


# --- comparing ----------------------------------------------------------------------------------


def _pools(connections: list[Connection]) -> dict[tuple[str, ...], list[Connection]]:
    """Connections by how they opened (message names before their first content): the children
    of a pool open alike, and which of them sends what is the scheduler's."""
    out: dict[tuple[str, ...], list[Connection]] = {}
    for conn in connections:
        out.setdefault(conn.opening, []).append(conn)
    return out


def _structure(ours: list[Connection], theirs: list[Connection]) -> str | None:
    """Where two runs' connections that opened alike differ in structure (None: they do not):
    their number; one connection's messages in order; a pool's messages as a multiset."""
    like = f"like conn {(ours or theirs)[0].number} of run {1 if ours else 2}"
    if len(ours) != len(theirs):
        return f"run 1 opened {len(ours)} connection(s) {like}, run 2 opened {len(theirs)}"
    if len(ours) == 1:
        return None if ours[0].streams == theirs[0].streams else _first_difference(*ours, *theirs)
    counts = [Counter(unit.method for c in pool for unit in c.units) for pool in (ours, theirs)]
    if counts[0] == counts[1]:
        return None
    name = next(n for n in dict.fromkeys([*counts[0], *counts[1]]) if counts[0][n] != counts[1][n])
    numbers = ", ".join(str(c.number) for c in ours)
    return (
        f"the pool of conns {numbers} sent {name} {counts[0][name]} time(s) in run 1, "
        f"{counts[1][name]} in run 2"
    )


def _unlike(ours: list[Connection], theirs: list[Connection]) -> list[str]:
    """Connections that opened unlike any of the other run: each named against the one of the
    other run it shares the longest beginning with."""
    out = []
    left = list(theirs)
    for conn in ours:
        partner = max(left, key=lambda c: _common_prefix(conn.outline, c.outline), default=None)
        if partner is None:
            out.append(f"conn {conn.number} of run 1: run 2 opened no connection like it")
            continue
        left.remove(partner)
        out.append(_first_difference(conn, partner))
    out += [f"conn {conn.number} of run 2: run 1 opened no connection like it" for conn in left]
    return out


def _common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """How many names two outlines share from their start."""
    same = (n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    return next(same, min(len(a), len(b)))


def _first_difference(a: Connection, b: Connection) -> str:
    """Where two connections part: the first channel of run 1 whose messages run 2 sent on no
    channel, at its first message unlike the run 2 channel sharing the longest beginning with
    it (channels are streams: their numbers and interleaving are the scheduler's)."""
    ours, theirs = _channels(a), _channels(b)
    for channel, names in ours.items():
        same = next((c for c, other in theirs.items() if other == names), None)
        if same is not None:
            del theirs[same]
            continue
        partner = max(theirs, key=lambda c: _common_prefix(names, theirs[c]), default=None)
        other = theirs.get(partner, ()) if partner is not None else ()
        at = _common_prefix(names, other)
        where = f"ch {channel} " if a.shape is amqp.SHAPE else ""
        there = f" on ch {partner}" if partner is not None and a.shape is amqp.SHAPE else ""
        return (
            f"conn {a.number} {where}client message {at + 1}: run 1 sent {_nth(names, at)}, "
            f"run 2 (conn {b.number}{there}) sent {_nth(other, at)} "
            f"({len(a.units)} and {len(b.units)} client messages)"
        )
    left = next(iter(theirs.items()), None)
    return f"conn {b.number} of run 2 sent more: {left}" if left else "(no difference)"


def _channels(conn: Connection) -> dict[int, tuple[str, ...]]:
    per_channel: dict[int, list[str]] = {}
    for unit in conn.units:
        per_channel.setdefault(unit.channel, []).append(unit.method)
    return {channel: tuple(names) for channel, names in per_channel.items()}


def _nth(names: tuple[str, ...], at: int) -> str:
    return names[at] if at < len(names) else "(nothing more)"


def _on_a_clock(first: list[Connection], second: list[Connection]) -> dict[str, str]:
    """Publish destinations whose number of publishes differs between the runs while, in each
    run, its publishes lie at least CLOCK_GAP apart: a framework's heartbeat or status event,
    whose count is the run's duration over its period (liveness, not behaviour). A command that
    publishes more in one run, in a burst, is a structure difference instead; a destination one
    run has and the other not is on a clock only if the other has none of its own (else the
    destination is a value that varied, e.g. a topic naming the client)."""
    times: list[dict[str, list[int]]] = [{}, {}]
    for run, table in zip((first, second), times, strict=True):
        for unit in (unit for conn in run for unit in conn.units if unit.destination):
            table.setdefault(str(unit.destination), []).append(unit.at_us)
    own = [set(times[0]) - set(times[1]), set(times[1]) - set(times[0])]
    out = {}
    for dest in dict.fromkeys([*times[0], *times[1]]):
        a, b = sorted(times[0].get(dest, [])), sorted(times[1].get(dest, []))
        swapped = (dest in own[0] and own[1]) or (dest in own[1] and own[0])
        if len(a) != len(b) and _spaced(a) and _spaced(b) and not swapped:
            out[dest] = (
                f"{dest}: {len(a)} publish(es) in run 1, {len(b)} in run 2, each "
                f"{CLOCK_GAP_US / 1e6:g} s or more apart (a publish on a clock: left to replay)"
            )
    return out


def _spaced(times: list[int]) -> bool:
    gaps = (later - earlier for earlier, later in zip(times, times[1:], strict=False))
    return all(gap >= CLOCK_GAP_US for gap in gaps)


def _compare_pool(ours: list[Connection], theirs: list[Connection], out: Comparison) -> None:
    """Each message of run 1 against its counterpart in run 2: the one at the same place, unless
    scheduling moved it, then the closest message of the same method the other run sent on
    connections that opened alike. Scheduling moves a message between the children of a pool
    (which child published a result) and between the channels of one connection (which of a
    worker's consumers set itself up first): a message whose arguments differ from the one at
    its place (another exchange, another queue) is looked for elsewhere; one whose arguments
    match is not (a random header is a value that varied, where it is)."""
    candidates = [unit for conn in theirs for unit in conn.units]
    starts = [sum(len(conn.units) for conn in theirs[:i]) for i in range(len(theirs))]
    pooled = len(ours) > 1
    search = len(candidates) <= MAX_POOLED
    taken: set[int] = set()
    pending = []
    for a, b, start in zip(ours, theirs, starts, strict=True):
        for n, unit in enumerate(a.units):
            at = start + n if n < len(b.units) else None
            if at is not None and unit.view == candidates[at].view:
                taken.add(at)
            else:
                pending.append((f"conn {a.number} message {n + 1} ({unit.name})", a, unit, at))
    for place, conn, unit, at in pending:
        moved = at is None or pooled or _args(unit) != _args(candidates[at])
        found = _closest(unit, candidates, taken) if search and moved else None
        if found is None and at is not None and at not in taken:
            found = at
        if found is None:
            continue  # every message of its method is someone's partner already
        taken.add(found)
        if unit.view != candidates[found].view:
            _learn(place, conn.shape, unit, candidates[found], out)


def _args(unit: Unit) -> Any:
    return unit.view.get("args")


def _closest(unit: Unit, candidates: list[Unit], taken: set[int]) -> int | None:
    """The untaken candidate of the same method whose values differ least: first in values
    that are not identifier-shaped (a queue named by a UUID is the same queue of another run;
    a queue of another name is not), then in all."""
    scored = []
    for n, other in enumerate(candidates):
        if other.method != unit.method or n in taken:
            continue
        found = list(_differences(unit.view, other.view))
        named = sum(1 for _path, a, b in found if not _identifier_like(a, b))
        scored.append((named, len(found), n))
    return min(scored)[2] if scored else None


def _learn(place: str, shape: rrdiff.Shape, a: Unit, b: Unit, out: Comparison) -> None:
    for path, value_a, value_b in _differences(a.view, b.view):
        rule = ".".join(path)
        shown = f"{place} {rule}: run 1 {_short(value_a)} run 2 {_short(value_b)}"
        why = _not_a_rule(path, shape, value_a, value_b)
        table = out.left if why else out.learned
        table.setdefault(rule, Varied(rule, why)).places.append(shown)


def _not_a_rule(path: tuple[str, ...], shape: rrdiff.Shape, a: Any, b: Any) -> str:
    """Why a varying value is not written as an ignore rule ('' when it is)."""
    if _identifier_like(a, b):
        return "identifier-shaped: replay binds it; a rule would hide it from binding"
    if path[0] not in shape.parts:
        return "outside what an ignore rule reaches"
    return ""


def _differences(a: Any, b: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple, Any, Any]]:
    """(ignore path, value in run 1, value in run 2) of each leaf that differs: objects by key,
    lists of equal length by element (the path crosses the list by name, as ignore paths do)."""
    if a == b and type(a) is type(b):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in dict.fromkeys([*a, *b]):
            yield from _differences(a.get(key, rrdiff.ABSENT), b.get(key, rrdiff.ABSENT),
                                    (*path, str(key)))  # fmt: skip
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for x, y in zip(a, b, strict=True):
            yield from _differences(x, y, path)
    elif path:
        yield path, a, b


def _identifier_like(a: Any, b: Any) -> bool:
    """Both strings, the same once identifier-shaped parts are masked, and not equal."""
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    masked_a, found = _IDENTIFIERS.subn("<id>", a)
    return bool(found) and masked_a == _IDENTIFIERS.sub("<id>", b)


def _short(value: Any) -> str:
    text = rrdiff.canonical(value).decode() if value is not rrdiff.ABSENT else "(absent)"
    return text if len(text) <= rrdiff.SHOWN else text[: rrdiff.SHOWN - 3] + "..."
