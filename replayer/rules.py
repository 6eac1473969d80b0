"""Per-cassette ignore rules: a user's own nondeterministic fields, kept beside the recording.

`DIR/replay-rules.json` (optional, canonical JSON or any JSON object):

    {"ignore_fields": ["trace.id", "properties.message_id"], "ignore_headers": ["traceparent"]}

- `ignore_fields`: ignore paths (`rr.diff`, the same for every protocol): dotted names from the
  message's root (Kafka record `key`, `value`, `headers`; AMQP `args`, `properties`, `body`;
  MQTT `properties`, `payload`), or, without one of those names first, from the payload (Kafka
  record values, AMQP bodies, MQTT payloads); a list is crossed by name (`items.id`: every
  item's `id`). Dropped from both the recorded and the live message before they are compared;
- `ignore_headers`: header names (Kafka record headers, AMQP `headers` table entries, MQTT 5
  user properties) left out of the comparison;
- `exact_clock_fields`: paths, written as above, of fields whose recorded clock value (an AMQP
  `timestamp`, an ISO-8601 or epoch value) must equal the live one. By default a recorded clock
  value matches any live value of the same form (`rr.replay.bindings`): the replay runs later.
- `comments` (optional): an object of notes by rule, never read for matching (JSON has no
  comments; `rrlab record --runs 2` says there where each rule it learned varied).
`rrlab serve --ignore-field PATH --ignore-header NAME` add to them for one run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from rrlab.rr.cassette import CassetteError
from rrlab.rr.cassette.paths import CassetteDir
from rrlab.rr.diff import parse_path
from rrlab.rr.usage import UsageError

RULES_NAME = "replay-rules.json"
MAX_RULES_BYTES = 1 << 20
_KEYS = ("ignore_fields", "ignore_headers", "exact_clock_fields")
COMMENTS = "comments"


def load_rules(
    cassette: Path, fields: Iterable[str] = (), headers: Iterable[str] = ()
) -> dict[str, tuple[str, ...]]:
    """The cassette's rules plus a run's own (`--ignore-field`, `--ignore-header`), checked."""
    out = dict(_from_file(cassette))
    _check_paths(tuple(fields), "--ignore-field")
    out["ignore_fields"] += tuple(fields)
    out["ignore_headers"] += tuple(headers)
    return out


def _check_paths(paths: tuple[str, ...], where: str) -> None:
    for path in paths:
        try:
            parse_path(path)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None


def _from_file(cassette: Path) -> dict[str, tuple[str, ...]]:
    path = cassette / RULES_NAME
    try:  # read inside the cassette, no link followed (rr.cassette.paths)
        with CassetteDir(cassette) as root:
            if root.kind(RULES_NAME) is None:
                return {key: () for key in _KEYS}
            text = root.read(RULES_NAME, MAX_RULES_BYTES)
    except CassetteError as exc:
        raise UsageError(str(exc)) from None
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or set(data) - {*_KEYS, COMMENTS}:
        keys = ", ".join((*_KEYS, COMMENTS))
        raise UsageError(f"{path}: expected an object with only the keys {keys}")
    notes = data.get(COMMENTS, {})
    if not isinstance(notes, dict) or not all(isinstance(v, str) for v in notes.values()):
        raise UsageError(f"{path}: {COMMENTS} must be an object of strings (a note per rule)")
    out = {}
    for key in _KEYS:
        items = data.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise UsageError(f"{path}: {key} must be a list of non-empty strings")
        out[key] = tuple(items)
    _check_paths(out["ignore_fields"] + out["exact_clock_fields"], str(path))
    return out
