"""The one diff-and-ignore module: how a message is seen as a value, which of its fields a user's
ignore path names, and the field-level lines a miss prints. Every protocol uses it, so a path
written for one means the same for the others.

A message is compared as a JSON-able *view*: an object whose top-level keys are its parts (a
Kafka record: `key`, `value`, `headers`; an AMQP message: `args`, `properties`, `body`; an MQTT
packet: its fields, `properties`, `payload`). Payload bytes become a value by one rule
(`value_of`): JSON when they parse (and a JSON string that holds an object or array, as that
JSON), else UTF-8 text, else `{"base64": ...}`. Headers are objects by name (their order is not
behaviour): Kafka record headers, the AMQP `headers` table, MQTT 5 user properties.

Ignore paths (`ignore_fields` of replay-rules.json, `--ignore-field`), the same everywhere:
- dotted names from the message's root: `properties.message_id`, `headers.traceparent`,
  `value.trace.id`; a path whose first name is not one of the protocol's parts starts in the
  payload (`amount` is `value.amount` in Kafka, `body.amount` in AMQP, `payload.amount` in MQTT);
  a payload field named like a part is reached through the part (`payload.payload.amount`);
- a list is crossed: a name applied to a list applies to every element (`items.id` is the `id`
  of every item, at any depth of nesting); there is no index syntax (`items[0].id` is refused);
- the last name is removed wherever the path reaches it; a path that names nothing is no error.
A header name (`ignore_headers`) is the path to that name in the protocol's headers object.
The path of a diff line inside a part, with `[i]` indexes left out, is an ignore path that
silences it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Path = tuple[str, ...]

#: Characters of a value shown in a diff line.
SHOWN = 80
#: Lines of one diff at most (the first differences say what changed).
MAX_LINES = 20


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


#: A field one side of a diff does not have.
ABSENT: Any = _Absent()


# --- values -------------------------------------------------------------------------------------


def value_of(data: bytes | None) -> Any:
    """Payload bytes as a value: JSON (strings holding JSON objects/arrays decoded too), else
    UTF-8 text, else `{"base64": ...}`; None stays None."""
    if data is None:
        return None
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}
    try:
        return _unnest(json.loads(text))
    except ValueError:
        return text


def _unnest(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unnest(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unnest(v) for v in value]
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return _unnest(json.loads(value))
        except ValueError:
            return value
    return value


def by_name(pairs: Iterable[Sequence[Any]], value: Any = None) -> dict[str, Any]:
    """Headers (name, value) as an object by name, in first-seen order; a repeated name holds
    the list of its values. `value` maps each raw value (e.g. `value_of` for bytes)."""
    out: dict[str, Any] = {}
    repeated: set[str] = set()
    for name, raw in pairs:
        item = value(raw) if value is not None else raw
        if name not in out:
            out[name] = item
        elif name in repeated:
            out[name].append(item)
        else:
            out[name] = [out[name], item]
            repeated.add(name)
    return out


def canonical(value: Any) -> bytes:
    """Sorted-key compact JSON (JSON payloads may hold floats, which canonical JSON refuses)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- ignore paths -------------------------------------------------------------------------------


def parse_path(path: str) -> Path:
    """`a.b.c` as its names; ValueError saying what is wrong (for a usage error)."""
    if not isinstance(path, str) or not path:
        raise ValueError("an ignore path is a non-empty string of dotted names")
    if "[" in path or "]" in path:
        plain = ".".join(p for p in path.replace("[", ".").replace("]", ".").split(".") if p)
        plain = ".".join(p for p in plain.split(".") if not p.isdigit())
        raise ValueError(
            f"ignore path {path!r}: a list is crossed by name, there is no index; write {plain!r}"
        )
    names = tuple(path.split("."))
    if any(not name for name in names):
        raise ValueError(f"ignore path {path!r}: an empty name between dots")
    return names


def without(doc: Any, path: Path) -> Any:
    """`doc` without what `path` names (copied along the path, shared elsewhere)."""
    if not path:
        return doc
    if isinstance(doc, list):
        return [without(item, path) for item in doc]
    if not isinstance(doc, dict) or path[0] not in doc:
        return doc
    out = dict(doc)
    if len(path) == 1:
        del out[path[0]]
    else:
        out[path[0]] = without(out[path[0]], path[1:])
    return out


@dataclass(frozen=True, slots=True)
class Shape:
    """What a protocol's message view looks like to an ignore path: its part names, the part a
    path without one starts in, and where its headers object lies."""

    parts: frozenset[str]
    payload: str
    headers: Path

    def resolve(self, path: str) -> Path:
        names = parse_path(path)
        return names if names[0] in self.parts else (self.payload, *names)


@dataclass(frozen=True, slots=True)
class Ignore:
    """A run's ignore rules for one protocol, as paths from the message's root."""

    paths: tuple[Path, ...] = ()

    @classmethod
    def build(cls, shape: Shape, fields: Iterable[str] = (), headers: Iterable[str] = ()) -> Ignore:
        paths = [shape.resolve(f) for f in fields]
        paths += [(*shape.headers, name) for name in headers]
        return cls(tuple(dict.fromkeys(paths)))

    def __bool__(self) -> bool:
        return bool(self.paths)

    def touches(self, part: str) -> bool:
        """Whether any path reaches into (or removes) this part."""
        return any(path[0] == part for path in self.paths)

    def apply(self, view: Any) -> Any:
        for path in self.paths:
            view = without(view, path)
        return view

    def within(self, part: str) -> Ignore:
        """The paths into one part, from that part's root (for a part compared on its own)."""
        return Ignore(tuple(p[1:] for p in self.paths if p[0] == part and len(p) > 1))


NO_IGNORE = Ignore()


# --- diff lines ---------------------------------------------------------------------------------


def lines(
    recorded: Any, live: Any, path: str = "", *, whole: str = "value", limit: int = MAX_LINES
) -> list[str]:
    """Where `live` differs from `recorded`, one `path: recorded X live Y` line per leaf:
    objects by key (a key one side lacks is `(absent)`), lists of equal length by index. `path`
    prefixes every line; `whole` names the value itself when it differs as a whole."""
    return [
        f"{where}: recorded {show(rec)} live {show(got)}"
        for where, rec, got in differences(recorded, live, path, whole=whole)[:limit]
    ]


def differences(
    a: Any, b: Any, path: str = "", *, whole: str = "value"
) -> list[tuple[str, Any, Any]]:
    """The leaves where `b` differs from `a` as (path, a's value, b's value), walked as `lines`
    walks them (ABSENT for a key one side lacks)."""
    out: list[tuple[str, Any, Any]] = []
    _walk(path, a, b, out, whole)
    return out


def _walk(path: str, rec: Any, live: Any, out: list[tuple[str, Any, Any]], whole: str) -> None:
    if rec == live and type(rec) is type(live):
        return
    if isinstance(rec, dict) and isinstance(live, dict) and not _binary(rec, live):
        for key in sorted(set(rec) | set(live), key=str):
            sub = f"{path}.{key}" if path else str(key)
            _walk(sub, rec.get(key, ABSENT), live.get(key, ABSENT), out, whole)
        return
    if isinstance(rec, list) and isinstance(live, list) and len(rec) == len(live):
        for i, (a, b) in enumerate(zip(rec, live, strict=True)):
            _walk(f"{path}[{i}]", a, b, out, whole)
        return
    out.append((path or whole, rec, live))


def _binary(*values: Mapping[str, Any]) -> bool:
    return any(set(v) == {"base64"} for v in values)


def show(value: Any) -> str:
    """A value as a diff line shows it: JSON, binary as its size and first bytes, cut short."""
    if value is ABSENT:
        return "(absent)"
    if isinstance(value, dict) and set(value) == {"base64"}:
        data = base64.b64decode(value["base64"])
        return f"<{len(data)} bytes {data[:16].hex()}{'…' if len(data) > 16 else ''}>"
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"
