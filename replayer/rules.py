"""Per-cassette ignore rules: a user's own nondeterministic fields, kept beside the recording.

`DIR/replay-rules.json` (optional, canonical JSON or any JSON object):

    {"ignore_fields": ["trace.id", "sent_at"], "ignore_headers": ["traceparent"]}

- `ignore_fields`: dotted paths into JSON payloads (Kafka record values, AMQP bodies, MQTT
  payloads), dropped from both the recorded and the live payload before they are compared;
- `ignore_headers`: message header names (Kafka record headers, AMQP `headers` table entries)
  left out of the comparison.
`rrlab serve --ignore-field PATH --ignore-header NAME` add to them for one run.
"""

from __future__ import annotations

import json
from pathlib import Path

from rr.cassette import CassetteError
from rr.cassette.paths import CassetteDir
from rr.usage import UsageError

RULES_NAME = "replay-rules.json"
MAX_RULES_BYTES = 1 << 20
_KEYS = ("ignore_fields", "ignore_headers")


def load_rules(cassette: Path) -> dict[str, tuple[str, ...]]:
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
    if not isinstance(data, dict) or set(data) - set(_KEYS):
        raise UsageError(f"{path}: expected an object with only the keys {', '.join(_KEYS)}")
    out = {}
    for key in _KEYS:
        items = data.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise UsageError(f"{path}: {key} must be a list of non-empty strings")
        out[key] = tuple(items)
    return out
