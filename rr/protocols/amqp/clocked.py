"""Publishes on a clock: a framework's heartbeat or status event (Celery's `worker.heartbeat`
on `celeryev` every 2 s, its body holding `loadavg`, `pid`, `timestamp`) is liveness, not
behaviour. How many a run sends depends on how long it takes, and its values are the machine's.

Derived once, when the cassette opens (`Clocked.of`): recorded publishes are grouped by
destination and shape (exchange, routing key, the keys of a JSON object body). A group is
clock-driven when every body carries a clock value (`rr.replay.bindings.Clock`: an epoch number
or ISO date-time, in a string too) and either it recurs (two or more) with consecutive bodies
differing only in numbers and clock values, or its routing key or event `type` names a
heartbeat (a short recording may hold one). At replay a live publish of such a shape is
accepted any number of times, compared for shape only; the recorded ones are never unused and
the deliveries they caused wait for nothing.

A status event published once (Celery's `worker-online`, `worker-offline`: a JSON object with a
`type` and a clock value at its top level) stays behaviour, but its numbers are the machine's
(`pid`, `loadavg`, counters): a live one matches a recorded one whose body differs only in
numbers and clock values (`Clocked.measured`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.replay.bindings import Clock, clock
from rrlab.rr.replay.recording import RecFrame, Recording

from . import normalize as norm
from .codec import BODY_FRAME, frame_channel

Shape = tuple[Any, Any, frozenset[str]]  # exchange, routing key, body keys


@dataclass(frozen=True, slots=True)
class Published:
    """A recorded publish: where it went, its body, which frames it was (connection, indexes)."""

    exchange: Any
    routing_key: Any
    body: bytes | None
    conn: int = 0
    indexes: tuple[int, ...] = ()

    @property
    def ref(self) -> tuple[int, int]:
        """(connection, the frame that completed it): its replay step's trigger."""
        return (self.conn, self.indexes[-1] if self.indexes else -1)


def recorded_publishes(recording: Recording) -> Iterable[Published]:
    """Every recorded AMQP Basic.Publish, whole (body read), with its frames."""
    for rc in recording.conns:
        if rc.proto is not Proto.AMQP:
            continue
        reader = PublishReader(rc.id)
        for frame in rc.stream():
            published = reader.feed(frame)
            if published is not None:
                yield published


class PublishReader:
    """One recorded connection's frames, fed in order, to its Basic.Publish messages: what
    `recorded_publishes` reads, frame by frame, so that the pass deriving the causes at open
    can feed it the frames it reads anyway (one read of the cassette, each summary parsed
    once, for both)."""

    def __init__(self, conn: int) -> None:
        self.conn = conn
        self.assembler = norm.Assembler()
        self.indexes: dict[int, list[int]] = {}

    def feed(self, frame: RecFrame) -> Published | None:
        """The publish `frame` completes, if it completes one."""
        raw = frame.raw
        if frame.dir is not Direction.C2S or norm.is_heartbeat(raw):  # (`is_liveness`)
            return None
        channel = frame_channel(raw)
        if raw[:1] != BODY_FRAME and frame.summary.get("frame") == "method":
            self.indexes[channel] = []  # (a body frame's summary stays unread)
        self.indexes.setdefault(channel, []).append(frame.index)
        message = self.assembler.feed_recorded(frame)
        if message is None or message.name != "Basic.Publish":
            return None
        return Published(
            message.args.get("exchange"),
            message.args.get("routing_key"),
            message.body,
            self.conn,
            tuple(self.indexes.pop(channel, [frame.index])),
        )


def shape_of(exchange: Any, routing_key: Any, body: bytes | None) -> Shape | None:
    """A publish's destination and body keys, if its body is a JSON object."""
    try:
        value = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict):
        return None
    return (exchange, routing_key, frozenset(value))


def _json(body: bytes | None) -> dict[str, Any]:
    return json.loads(body) if body else {}


def _has_clock(value: Any, rule: Clock) -> bool:
    if isinstance(value, dict):
        return any(_has_clock(v, rule) for v in value.values())
    if isinstance(value, list):
        return any(_has_clock(v, rule) for v in value)
    return rule.same(value, value, "")


def _scalar_drift(a: Any, b: Any, rule: Clock) -> bool:
    """`b` is `a` with only numbers and clock values changed."""
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_scalar_drift(a[k], b[k], rule) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        pairs = zip(a, b, strict=False)
        return len(a) == len(b) and all(_scalar_drift(x, y, rule) for x, y in pairs)
    if a == b:
        return True
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return not isinstance(a, bool) and not isinstance(b, bool)
    return rule.same(a, b, "")


def _names_heartbeat(shape: Shape, body: dict[str, Any]) -> bool:
    kind = body.get("type")
    names = [shape[1], kind] if isinstance(kind, str) else [shape[1]]
    return any(isinstance(n, str) and "heartbeat" in n.lower() for n in names)


def _is_event(body: dict[str, Any], rule: Clock) -> bool:
    """A status event: a JSON object naming its `type`, stamped with a clock value."""
    return isinstance(body.get("type"), str) and any(
        rule.same(v, v, "") for v in body.values() if not isinstance(v, dict | list)
    )


@dataclass(slots=True)
class Clocked:
    """The clock-driven publish shapes of a recording, and their recorded publishes."""

    recorded: dict[Shape, list[Published]] = field(default_factory=dict)
    #: status events of other shapes: matched with their numbers loosened (`measured`)
    events: frozenset[Shape] = frozenset()
    #: exchanges the recording published JSON objects to
    exchanges: frozenset[Any] = frozenset()

    @classmethod
    def of(cls, publishes: Iterable[Published], rule: Clock | None = None) -> Clocked:
        rule = rule or clock()
        groups: dict[Shape, list[Published]] = {}
        for p in publishes:
            shape = shape_of(p.exchange, p.routing_key, p.body)
            if shape is not None:
                groups.setdefault(shape, []).append(p)
        found: dict[Shape, list[Published]] = {}
        for shape, members in groups.items():
            bodies = [_json(p.body) for p in members]
            if not all(_has_clock(b, rule) for b in bodies):
                continue
            recurring = len(bodies) >= 2 and all(
                _scalar_drift(a, b, rule) for a, b in itertools.pairwise(bodies)
            )
            if recurring or all(_names_heartbeat(shape, b) for b in bodies):
                found[shape] = members
        events = frozenset(
            shape
            for shape, members in groups.items()
            if shape not in found and all(_is_event(_json(p.body), rule) for p in members)
        )
        return cls(found, events, frozenset(shape[0] for shape in groups))

    def measured(self, exchange: Any, routing_key: Any, recorded: Any, live: Any) -> bool:
        """Whether `live` (a status event's body, parsed) is the `recorded` one with only its
        numbers and clock values changed."""
        if not self.events or not isinstance(recorded, dict):
            return False
        shape = (exchange, routing_key, frozenset(recorded))
        return shape in self.events and _scalar_drift(recorded, live, clock())

    def __bool__(self) -> bool:
        return bool(self.recorded)

    def accepts(self, exchange: Any, routing_key: Any, body: bytes | None) -> bool:
        """A live publish of a clock-driven shape (its values are not compared); or a
        heartbeat the recording holds none of (the recorded run was shorter than its period):
        a JSON object stamped with a clock value, to an exchange the recording published to,
        under a routing key that names a heartbeat."""
        if self and shape_of(exchange, routing_key, body) in self.recorded:
            return True
        if exchange not in self.exchanges or not isinstance(routing_key, str):
            return False
        if "heartbeat" not in routing_key.lower() or shape_of(exchange, routing_key, body) is None:
            return False
        return _has_clock(_json(body), clock())

    def frames(self) -> Iterable[tuple[int, tuple[int, ...]]]:
        """(recorded connection, frame indexes) of every clock-driven publish."""
        for members in self.recorded.values():
            for p in members:
                yield p.conn, p.indexes
