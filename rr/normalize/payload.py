"""Payload comparison shared by every protocol: bytes equal, or a field-level diff.

A payload that parses as JSON is compared as JSON (dotted paths, e.g. `value.n: recorded 17
live 18`); otherwise as text or, for binary, by length and first differing byte. Fields the user
declared nondeterministic (`ignore` paths) are dropped from both sides first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

_MISSING = object()
_SHOW = 60  # characters of a value shown in a diff line


def as_json(data: bytes | None) -> Any:
    """The parsed JSON document in `data`, or _MISSING when it is not JSON."""
    if not data:
        return _MISSING
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return _MISSING


def drop_paths(doc: Any, paths: Iterable[str]) -> Any:
    """`doc` without the dotted `paths` (objects only; a missing path is fine)."""
    for path in paths:
        doc = _drop(doc, path.split("."))
    return doc


def _drop(doc: Any, parts: list[str]) -> Any:
    if not isinstance(doc, dict) or not parts:
        return doc
    head, rest = parts[0], parts[1:]
    if head not in doc:
        return doc
    out = dict(doc)
    if rest:
        out[head] = _drop(out[head], rest)
    else:
        del out[head]
    return out


def equal(recorded: bytes | None, live: bytes | None, ignore: Iterable[str] = ()) -> bool:
    if recorded == live:
        return True
    ignore = tuple(ignore)
    if not ignore:
        return False
    a, b = as_json(recorded), as_json(live)
    if a is _MISSING or b is _MISSING:
        return False
    return drop_paths(a, ignore) == drop_paths(b, ignore)


def diff(
    name: str, recorded: bytes | None, live: bytes | None, ignore: Iterable[str] = ()
) -> list[str]:
    """Lines saying where `live` differs from `recorded` (empty when equal)."""
    if equal(recorded, live, ignore):
        return []
    a, b = as_json(recorded), as_json(live)
    if a is not _MISSING and b is not _MISSING:
        lines = list(_json_diff(name, drop_paths(a, ignore), drop_paths(b, ignore)))
        return lines or [f"{name}: differs"]
    return [_bytes_diff(name, recorded, live)]


def _json_diff(path: str, a: Any, b: Any) -> Iterable[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}"
            if key not in a:
                yield f"{sub}: not recorded, live {_show(b[key])}"
            elif key not in b:
                yield f"{sub}: recorded {_show(a[key])}, missing live"
            elif a[key] != b[key]:
                yield from _json_diff(sub, a[key], b[key])
        return
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                yield from _json_diff(f"{path}[{i}]", x, y)
        return
    yield f"{path}: recorded {_show(a)} live {_show(b)}"


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= _SHOW else text[:_SHOW] + "…"


def _bytes_diff(name: str, a: bytes | None, b: bytes | None) -> str:
    return f"{name}: recorded {_text(a)} live {_text(b)}"


def _text(data: bytes | None) -> str:
    if data is None:
        return "null"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(data)} bytes {data[:16].hex()}…>"
    shown = json.dumps(text, ensure_ascii=False)
    return shown if len(shown) <= _SHOW else shown[:_SHOW] + "…"
