"""The recording proxy against real brokers, run as `rrlab proxy` subprocesses.

For each protocol: the worker through the proxy writes the same aggregate.json as talking to the
broker directly, the cassette verifies, every frame decodes, and no credential is in it. Kafka:
the client never reaches the broker port itself. Faults: a broker killed mid-recording, and 50
concurrent clients whose frames must not mix.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
from pathlib import Path

import pytest
from proxy_harness import RunningProxy, free_block, private_kafka, recv_kafka_frame, run_worker

from rrlab.rr.cassette import CassetteReader, verify

pytestmark = pytest.mark.live

PASSWORD = b"rrlab-secret-pw"
COUNT = 200
UPSTREAM_PORTS = {"kafka": 9092, "amqp": 5672, "mqtt": 1883}


def _assert_clean_cassette(path: Path) -> list:
    report = verify(path)
    assert report.frames > 0
    frames = list(CassetteReader.open(path).frames())
    bad = [
        (f.seq, f.summary)
        for f in frames
        if "error" in f.summary or str(f.summary.get("api", "")).startswith("Unknown")
    ]
    assert not bad, f"frames that did not decode: {bad[:3]}"
    for f in frames:
        assert PASSWORD not in f.raw, f"password in raw frame {f.seq}"
    for file in path.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert PASSWORD not in data, file
            assert base64.b64encode(PASSWORD)[:16] not in data, file
    return frames


def _record_and_compare(
    driver: str, direct: str, tmp_path: Path, topic: str, upstream_port: int | None = None
) -> tuple:
    """Worker direct, then through a fresh proxy; compare, verify, check who it dialled."""
    broker_port = upstream_port or UPSTREAM_PORTS[driver]
    base = free_block(6)
    upstream = f"127.0.0.1:{broker_port}"
    extra = ["--allow-upstream", upstream] if upstream_port else []
    cassette = tmp_path / "cassette"
    direct_url = f"mqtt://{direct}" if driver == "mqtt" else direct
    want, _ = run_worker(driver, direct_url, tmp_path / "direct", seed=5, count=COUNT, topic=topic)
    with RunningProxy([f"--{driver}", f"{base}={upstream}"], cassette, *extra) as proxy:
        through = direct_url.replace(upstream, f"127.0.0.1:{base}")
        got, ports = run_worker(
            driver, through, tmp_path / "proxied", seed=5, count=COUNT, topic=topic
        )
        metrics = proxy.metrics()
        rc = proxy.stop()
    assert rc == 0, proxy.stdout
    assert got == want  # byte-identical aggregate, proxied or not
    frames = _assert_clean_cassette(cassette)
    manifest = CassetteReader.open(cassette).manifest
    accepted = sum(v for (n, _), v in metrics.items() if n == "rrlab_proxy_connections_total")
    assert len(manifest.connections) == accepted > 0
    assert broker_port not in ports, f"worker dialled the broker itself: {ports}"
    assert ports and ports <= set(range(base, base + 6)), ports
    return frames, manifest, metrics, base


@pytest.mark.parametrize("driver", ["kafka", "amqp", "mqtt"])
def test_worker_through_proxy_matches_direct(driver, live_brokers, tmp_path):
    addrs = live_brokers(driver)
    frames, manifest, metrics, base = _record_and_compare(
        driver, addrs[driver], tmp_path, f"rrlab.proxytest.{driver}"
    )
    if driver == "kafka":
        apis = {f.summary["api"] for f in frames}
        assert {"ApiVersions", "Metadata", "Produce", "Fetch"} <= apis
        rewrites = sum(
            v for (n, _), v in metrics.items() if n == "rrlab_proxy_kafka_rewrites_total"
        )
        assert rewrites > 0
        # bootstrap on the route port, then the broker node's own listener, both recorded
        listens = {c.listen for c in manifest.connections}
        assert f"127.0.0.1:{base}" in listens and f"127.0.0.1:{base + 1}" in listens
        assert manifest.kafka_nodes and all(
            n["listen_port"] == base + 1 for n in manifest.kafka_nodes.values()
        )
    if driver == "amqp":
        assert any(f.redacted for f in frames)  # Connection.StartOk PLAIN response replaced


@pytest.mark.apache
def test_kafka_apache_through_proxy_matches_direct(tmp_path):
    """A private Apache Kafka (KRaft) on a free port, so the shared Tansu stays up."""
    with private_kafka(tmp_path / "apache") as broker:
        port = broker["port"]
        frames, manifest, metrics, base = _record_and_compare(
            "kafka", f"127.0.0.1:{port}", tmp_path, "rrlab.proxytest.apache", upstream_port=port
        )
    assert {"ApiVersions", "Metadata", "Produce", "Fetch"} <= {f.summary["api"] for f in frames}
    assert sum(v for (n, _), v in metrics.items() if n == "rrlab_proxy_kafka_rewrites_total") > 0
    assert manifest.kafka_nodes


def _api_versions_request(correlation_id: int) -> bytes:
    body = struct.pack(">hhih", 18, 0, correlation_id, 4) + b"test"
    return struct.pack(">i", len(body)) + body


def _ask(port: int, correlation_id: int) -> bytes:
    """One ApiVersions v0 round trip through the proxy (the response payload); b"" if the proxy
    closed on us."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(_api_versions_request(correlation_id))
        return recv_kafka_frame(s) or b""


def test_broker_killed_during_recording(tmp_path):
    from rrlab.brokers import process

    base = free_block(4)
    broker_port = base + 3
    with private_kafka(tmp_path / "tansu", impl="tansu", port=broker_port) as record:
        cassette = tmp_path / "cassette"
        upstream = f"127.0.0.1:{broker_port}"
        with RunningProxy(
            [f"--kafka={base}={upstream}"], cassette, "--allow-upstream", upstream
        ) as proxy:
            assert len(_ask(base, 1)) > 8  # recorded while the broker lives
            # a connection open while the broker dies
            held = socket.create_connection(("127.0.0.1", base), timeout=10)
            held.sendall(_api_versions_request(2))
            assert len(held.recv(65536)) > 8
            process.stop(record["procs"]["broker"])
            held.settimeout(10)
            assert held.recv(65536) == b""  # the proxy closed the client side
            held.close()
            for i in range(3):  # broker gone: each new client is closed, the proxy keeps serving
                assert _ask(base, 10 + i) == b""
            assert proxy.proc.poll() is None
            assert proxy.metric_sum("rrlab_proxy_upstream_errors_total", kind="connect") >= 3
            failed = proxy.events("upstream_failed")
            assert len(failed) >= 3 and upstream in failed[0]["upstream"]
            assert proxy.stop() == 0, proxy.stderr()
        report = verify(cassette)
        manifest = CassetteReader.open(cassette).manifest
        assert report.frames == 4 and len(manifest.connections) == 2
        assert all(c.close_reason for c in manifest.connections)


def test_fifty_concurrent_mqtt_clients_do_not_mix(live_brokers, tmp_path):
    from amqtt.client import MQTTClient
    from amqtt.mqtt.constants import QOS_1

    addrs = live_brokers("mqtt")
    base = free_block(2)
    cassette = tmp_path / "cassette"
    n_clients, n_msgs = 50, 10

    async def one(i: int) -> None:
        client = MQTTClient(client_id=f"rr-client-{i:02d}", config={"auto_reconnect": False})
        await client.connect(f"mqtt://127.0.0.1:{base}", cleansession=True)
        for j in range(n_msgs):
            await client.publish(f"rrlab/fifty/{i:02d}", f"client-{i:02d}-msg-{j}".encode(), QOS_1)
        await client.disconnect()

    async def all_clients() -> None:
        await asyncio.gather(*(one(i) for i in range(n_clients)))

    with RunningProxy([f"--mqtt={base}={addrs['mqtt']}"], cassette) as proxy:
        asyncio.run(all_clients())
        peak = proxy.metric_sum("rrlab_proxy_connections_total")
        assert proxy.stop() == 0, proxy.stderr()
    assert peak == n_clients
    frames = _assert_clean_cassette(cassette)
    manifest = CassetteReader.open(cassette).manifest
    assert len(manifest.connections) == n_clients
    owner: dict[int, str] = {}
    payloads: dict[int, list[bytes]] = {}
    for f in frames:
        if f.dir == "c2s" and f.raw[0] >> 4 == 1:  # CONNECT names the client
            owner[f.conn] = f.raw.split(b"rr-client-")[1][:2].decode()
        if f.dir == "c2s" and f.raw[0] >> 4 == 3:  # PUBLISH
            payloads.setdefault(f.conn, []).append(f.raw)
    assert sorted(owner.values()) == [f"{i:02d}" for i in range(n_clients)]
    for conn, raws in payloads.items():
        me = owner[conn]
        assert len(raws) == n_msgs
        for raw in raws:
            assert f"rrlab/fifty/{me}".encode() in raw and f"client-{me}-msg-".encode() in raw
            assert raw.count(b"client-") == 1


def test_budget_exceeded_finalizes_and_exits_2(live_brokers, tmp_path):
    from amqtt.client import MQTTClient
    from amqtt.mqtt.constants import QOS_1

    addrs = live_brokers("mqtt")
    base = free_block(2)
    cassette = tmp_path / "cassette"

    async def publish_until_cut() -> None:
        client = MQTTClient(client_id="rr-budget", config={"auto_reconnect": False})
        await client.connect(f"mqtt://127.0.0.1:{base}", cleansession=True)
        for j in range(50):
            await client.publish("rrlab/budget", f"m{j}".encode(), QOS_1)

    proxy = RunningProxy([f"--mqtt={base}={addrs['mqtt']}"], cassette, "--max-frames", "6")
    with proxy:
        try:
            asyncio.run(asyncio.wait_for(publish_until_cut(), 10))
        except Exception:  # the proxy cuts the client off: that is the point
            pass
        rc = proxy.proc.wait(30)
    assert rc == 2, proxy.stderr()
    budget = proxy.events("budget_exceeded")
    assert budget and budget[0]["budget"] == "max_frames" and budget[0]["limit"] == 6
    report = verify(cassette)
    manifest = CassetteReader.open(cassette).manifest
    assert report.frames == 6 and manifest.stopped["budget"] == "max_frames"


def _hostile_upstream(answers: dict[int, bytes]) -> tuple[socket.socket, list[bytes]]:
    """A TCP upstream answering each request by api key with a corrupt response frame.

    Not a broker stand-in: no real broker sends these bytes on demand, and the test is about
    what the proxy does with them (a cassette of it is never used as evidence of a broker).
    """
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if len(data) < 12:
                    continue
                seen.append(data)
                api_key, _version, cid = struct.unpack_from(">hhi", data, 4)
                body = struct.pack(">i", cid) + answers[api_key]
                conn.sendall(struct.pack(">i", len(body)) + body)
                conn.recv(1)  # until the proxy hangs up

    threading.Thread(target=serve, daemon=True).start()
    return server, seen


def test_response_that_cannot_be_rewritten_closes_the_client_not_the_proxy(tmp_path):
    """kio alone aborts the process on these frames (~2^35 declared array items)."""
    from kio.index import load_request_schema

    from rrlab.rr.protocols.kafka.codec import encode_request

    huge = b"\xff\xff\xff\xff\x7f"  # compact array length: 2^35 - 2 items
    server, seen = _hostile_upstream(
        {
            3: b"\0" + bytes(4) + huge + bytes(64),  # Metadata v12: header v1, brokers array
            18: bytes(2) + huge + bytes(64),  # ApiVersions v3: header v0, api_keys array
        }
    )
    metadata = load_request_schema(3, 12)(
        topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
    )
    api_versions = load_request_schema(18, 3)(
        client_software_name="rrlab-test", client_software_version="1"
    )
    requests = [
        encode_request(3, 12, 21, "t", metadata),
        encode_request(18, 3, 22, "t", api_versions),
    ]
    upstream = f"127.0.0.1:{server.getsockname()[1]}"
    base = free_block(2)
    cassette = tmp_path / "cassette"
    try:
        with RunningProxy(
            [f"--kafka={base}={upstream}"], cassette, "--allow-upstream", upstream
        ) as proxy:
            for request in requests:
                with socket.create_connection(("127.0.0.1", base), timeout=10) as s:
                    s.sendall(request)
                    assert s.recv(65536) == b""  # closed, and not one byte of the answer sent
            assert proxy.proc.poll() is None  # the proxy lives on
            assert len(seen) == 2  # both requests reached the upstream, both answers refused
            assert proxy.metric_sum("rrlab_proxy_recording_errors_total", kind="rewrite") == 2
            assert proxy.metric_sum("rrlab_proxy_recording_errors_total", kind="framing") == 0
            assert proxy.stop() == 0, proxy.stderr()
    finally:
        server.close()
    failed = proxy.events("rewrite_failed")
    assert len(failed) == 2 and all("items in" in e["message"] for e in failed)
    verify(cassette)
    manifest = CassetteReader.open(cassette).manifest
    assert len(manifest.connections) == 2
    assert all("cannot be rewritten" in c.close_reason for c in manifest.connections)
    frames = list(CassetteReader.open(cassette).frames())
    assert [(f.dir, f.summary["api"]) for f in frames] == [
        ("c2s", "Metadata"),
        ("c2s", "ApiVersions"),
    ]
