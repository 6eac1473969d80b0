"""A Kafka client on a raw socket that opens with an ApiVersions version newer than kio knows,
as current clients do (a Go client opens with v5 while kio reads v0-v4).

    python kafka_raw_api_versions_client.py --port P --out FILE [--first-version 5]
        [--software-version 1.0]

It sends ApiVersions v`first` (the v3/v4 body, which v5 keeps); a broker that does not support
that version answers UNSUPPORTED_VERSION in the v0 layout with its ranges, and the client
retries with the highest ApiVersions version offered that it can read, then asks for Metadata
(no topics). `--software-version` changes the software version it sends (KIP-511): a changed
request for a replay to tell apart. stdout says what happened to the first request; FILE gets
only what settled (the retried ApiVersions and the Metadata answer), so runs that start with v4
or v5 write the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import struct
import sys

from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.errors import ErrorCode

from rrlab.rr.protocols.kafka.codec import decode_response_any, encode_request, request_schema

CLIENT_ID = "rrlab-raw-client"


def api_versions(version: int, corr: int, software_version: str = "1.0") -> bytes:
    body = ApiVersionsRequest(
        client_software_name="rrlab-raw", client_software_version=software_version
    )
    raw = bytearray(encode_request(18, 3, corr, CLIENT_ID, body))
    struct.pack_into(">h", raw, 6, version)  # the same body, a version kio may not know
    return bytes(raw)


def call(sock: socket.socket, frame: bytes) -> bytes:
    sock.sendall(frame)
    head = _exact(sock, 4)
    return head + _exact(sock, struct.unpack(">i", head)[0])


def _exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=19092)
    p.add_argument("--first-version", type=int, default=5)
    p.add_argument("--software-version", default="1.0")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    lines = []
    with socket.create_connection(("127.0.0.1", a.port), timeout=20) as sock:
        version = a.first_version
        body, answered = decode_response_any(
            18, version, call(sock, api_versions(version, 1, a.software_version))
        )
        ranges = {int(e.api_key): (int(e.min_version), int(e.max_version)) for e in body.api_keys}
        if body.error_code == ErrorCode.unsupported_version:
            lo, hi = ranges[18]
            print(f"ApiVersions v{version}: UNSUPPORTED_VERSION (v{answered} layout); "
                  f"offered ApiVersions v{lo}-v{hi}", flush=True)  # fmt: skip
            version = min(hi, 4)
            body, _ = decode_response_any(
                18, version, call(sock, api_versions(version, 2, a.software_version))
            )
            ranges = {int(e.api_key): (int(e.min_version), int(e.max_version))
                      for e in body.api_keys}  # fmt: skip
        else:
            print(f"ApiVersions v{version}: error {int(body.error_code)}", flush=True)
        lines.append(f"ApiVersions v{version}: error {int(body.error_code)}, {len(ranges)} APIs")
        meta_version = min(ranges[3][1], 12)
        cls = request_schema(3, meta_version)
        wanted = {"topics": (), "allow_auto_topic_creation": False,
                  "include_topic_authorized_operations": False,
                  "include_cluster_authorized_operations": False}  # fmt: skip
        request = cls(**{f.name: wanted[f.name] for f in dataclasses.fields(cls)})
        answer = call(sock, encode_request(3, meta_version, 3, CLIENT_ID, request))
        meta, _ = decode_response_any(3, meta_version, answer)
        lines.append(f"Metadata v{meta_version}: {len(meta.brokers)} brokers, "
                     f"{len(meta.topics)} topics")  # fmt: skip
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
