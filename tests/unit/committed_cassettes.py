"""The cassettes this repository commits (reference, replay tier, examples), by protocol: what
tests that hold a fast path to the full one run over."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def committed_cassettes(proto: str) -> list[Path]:
    """Every committed cassette directory whose manifest lists `proto` ("kafka", "amqp", ...)."""
    manifests = sorted(
        [
            *ROOT.glob("cassettes/*/cassette.json"),
            *ROOT.glob("tests/**/cassette.json"),
            *ROOT.glob("examples/**/cassette.json"),
        ]
    )
    return [m.parent for m in manifests if proto in json.loads(m.read_text()).get("protocols", ())]
