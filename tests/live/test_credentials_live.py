"""No credential reaches a cassette: real password-protected brokers, real clients, `rrlab proxy`.

MQTT (amqtt and Mosquitto, each with a password file) through the worker with
mqtt://user:password@...; Kafka SASL_PLAINTEXT on a private Apache Kafka, with kafka-python
authenticating by PLAIN, by SCRAM-SHA-256 and by OAUTHBEARER (an unsecured JWT the broker's
unsecured validator checks). Each test first shows the broker really demands the credential,
then records a real session and looks for the password (or token) everywhere in the cassette
directory: raw file bytes, base64 of it, every base64 string inside the JSON files decoded, and
every frame's decoded raw. AMQP (RabbitMQ user/password) is covered in test_proxy_live.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
import struct
import time
from pathlib import Path

import pytest
from proxy_harness import RunningProxy, free_block, private_kafka, recv_kafka_frame, run_worker

from rrlab.rr.cassette import CassetteReader, verify
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import decoder_for
from rrlab.rr.protocols.kafka import codec as kafka_codec
from rrlab.rr.redact import PLACEHOLDER

pytestmark = pytest.mark.live

MQTT_USER, MQTT_PASSWORD = "rr-mqtt-user", "mqtt-Pw-7f3kQz"
KAFKA_USER, KAFKA_PASSWORD = "alice", "kafka-Pw-9x2LmW"


def _strings(value: object):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _b64_variants(secret: bytes) -> list[bytes]:
    """The secret's base64 at each of the three alignments, cut to the bytes it alone decides."""
    out = []
    for shift in range(3):
        enc = base64.b64encode(b"\x00" * shift + secret)
        skip = (shift * 4 + 2) // 3  # characters that depend on the padding bytes
        out.append(enc[skip : len(enc) - 4])
    return out


def assert_secret_absent(cassette: Path, secret: bytes) -> list:
    """Fail if `secret` is anywhere in the cassette dir; return its frames (all decoding)."""
    files = [f for f in cassette.rglob("*") if f.is_file()]
    assert any(f.name == "frames.jsonl" for f in files), files
    for file in files:
        data = file.read_bytes()
        assert secret not in data, f"password in {file}"
        for variant in _b64_variants(secret):
            assert variant not in data, f"base64 of the password in {file}"
        if file.suffix in (".json", ".jsonl"):
            for line in data.splitlines():
                for text in _strings(json.loads(line)):
                    try:
                        decoded = base64.b64decode(text, validate=True)
                    except (binascii.Error, ValueError):
                        continue
                    assert secret not in decoded, f"password in a base64 string of {file}"
    # the proxy's own log sits next to the cassette: it must not carry it either
    for log in cassette.parent.glob(f"{cassette.name}.proxy-log.jsonl"):
        assert secret not in log.read_bytes(), log
    assert verify(cassette).frames > 0
    frames = list(CassetteReader.open(cassette).frames())
    for f in frames:
        assert secret not in f.raw, f"password in raw frame {f.seq}"
        assert "error" not in f.summary, (f.seq, f.summary)
        assert not str(f.summary.get("api", "")).startswith("Unknown"), (f.seq, f.summary)
    return frames


# --- MQTT ------------------------------------------------------------------------------------


@pytest.fixture
def private_state(tmp_path, monkeypatch):
    """Brokers of this test live in a private state dir: the shared ones are never touched."""
    monkeypatch.setenv("RRLAB_STATE_DIR", str(tmp_path / "rrlab"))
    yield
    from rrlab.brokers import control

    control.down(out=None)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("impl", ["amqtt", "mosquitto"])
def test_mqtt_password_never_reaches_the_cassette(impl, private_state, tmp_path):
    from rrlab.brokers import control, probes

    base = free_block(3)
    broker_port = base + 2
    control.up(
        ["mqtt"],
        mqtt_impl=impl,
        ports={"mqtt": broker_port},
        mqtt_users={MQTT_USER: MQTT_PASSWORD},
        out=None,
    )
    assert "refused" in probes.mqtt("127.0.0.1", broker_port)  # the password is required
    assert "refused" in probes.mqtt("127.0.0.1", broker_port, MQTT_USER, "wrong")
    upstream = f"127.0.0.1:{broker_port}"
    cassette = tmp_path / "cassette"
    with RunningProxy([f"--mqtt={base}={upstream}"], cassette, "--allow-upstream", upstream) as p:
        url = f"mqtt://{MQTT_USER}:{MQTT_PASSWORD}@127.0.0.1:{base}"
        aggregate, ports = run_worker(
            "mqtt", url, tmp_path / "out", seed=3, count=20, topic=f"rrlab.cred.{impl}"
        )
        assert p.stop() == 0, p.stderr()
    facts = json.loads(aggregate)  # the authenticated round trip completed
    assert facts["produced"] == facts["consumed"] == 20
    assert broker_port not in ports

    frames = assert_secret_absent(cassette, MQTT_PASSWORD.encode())
    connects = [f for f in frames if f.dir == "c2s" and f.summary.get("packet") == "CONNECT"]
    assert len(connects) == 2  # the worker's subscriber and publisher
    for f in connects:
        assert f.redacted and f.summary["redacted"] == ["CONNECT.password"]
        assert f.summary["username"] == MQTT_USER and f.summary["has_password"]
        again = decoder_for(Proto.MQTT).decode(Direction.C2S, f.raw)  # still a valid CONNECT
        assert "error" not in again.summary and again.summary["username"] == MQTT_USER
        start, end = again.body.spans["password"]
        assert f.raw[start:end].endswith(PLACEHOLDER)
    connacks = [f for f in frames if f.dir == "s2c" and f.summary.get("packet") == "CONNACK"]
    assert len(connacks) == 2


# --- Kafka SASL ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory):
    """A private Apache Kafka whose client listener is SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256)."""
    home = tmp_path_factory.mktemp("apache-sasl")
    with private_kafka(home, sasl_users={KAFKA_USER: KAFKA_PASSWORD}) as record:
        yield record


def _sasl(mechanism: str, password: str = KAFKA_PASSWORD) -> dict:
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": KAFKA_USER,
        "sasl_plain_password": password,
    }


def _round_trip(bootstrap: str, topic: str, mechanism: str, n: int = 5, auth=None) -> list[bytes]:
    from kafka import KafkaConsumer, KafkaProducer

    auth = auth if auth is not None else _sasl(mechanism)
    producer = KafkaProducer(bootstrap_servers=bootstrap, **auth)
    try:
        for i in range(n):
            producer.send(topic, f"msg-{i}".encode(), key=b"k").get(timeout=20)
    finally:
        producer.close(timeout=5)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"{topic}-group",
        consumer_timeout_ms=10000,
        **auth,
    )
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                got += [r.value for r in records]
    finally:
        consumer.close()
    return got


@pytest.mark.apache
@pytest.mark.timeout(180)
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_kafka_sasl_password_never_reaches_the_cassette(mechanism, sasl_kafka, tmp_path):
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    direct = f"127.0.0.1:{sasl_kafka['port']}"
    # The broker really checks the password: a wrong one never bootstraps (the right one does,
    # below). Whether kafka-python logs the broker's "Authentication failed" or only sees the
    # socket close depends on timing, so the log text is not asserted.
    with pytest.raises(KafkaTimeoutError):
        KafkaProducer(bootstrap_servers=direct, bootstrap_timeout_ms=2000, **_sasl(mechanism, "x"))

    base = free_block(4)
    cassette = tmp_path / "cassette"
    topic = f"rrlab.cred.{mechanism.lower()}"
    with RunningProxy([f"--kafka={base}={direct}"], cassette, "--allow-upstream", direct) as proxy:
        got = _round_trip(f"127.0.0.1:{base}", topic, mechanism)
        rewrites = proxy.metric_sum("rrlab_proxy_kafka_rewrites_total")
        assert proxy.stop() == 0, proxy.stderr()
    assert got == [f"msg-{i}".encode() for i in range(5)]
    assert rewrites > 0  # clients were sent to the proxy's node listener, not the broker
    manifest = CassetteReader.open(cassette).manifest
    assert manifest.kafka_nodes and all(
        n["listen_port"] == base + 1 for n in manifest.kafka_nodes.values()
    )

    frames = assert_secret_absent(cassette, KAFKA_PASSWORD.encode())
    apis = {f.summary["api"] for f in frames}
    assert {"SaslHandshake", "SaslAuthenticate", "Produce", "Fetch"} <= apis
    handshakes = [f for f in frames if f.dir == "c2s" and f.summary["api"] == "SaslHandshake"]
    auths = [f for f in frames if f.dir == "c2s" and f.summary["api"] == "SaslAuthenticate"]
    assert handshakes and not any(f.redacted for f in handshakes)  # a mechanism name only
    assert len(auths) >= len(handshakes)  # every authenticated connection sent its token
    redacted = [f for f in auths if f.redacted]
    what = "PLAIN password" if mechanism == "PLAIN" else "SCRAM client proof"
    assert len(redacted) == len(handshakes)  # PLAIN: its one token; SCRAM: the client-final
    for f in redacted:
        assert f.summary["redacted"] == [f"auth_bytes ({what})"]
        token = kafka_codec.decode_request(f.raw).body.auth_bytes  # still a valid request
        if mechanism == "PLAIN":  # authzid (kafka-python sends the user name), user, placeholder
            assert token.split(b"\x00")[1:] == [KAFKA_USER.encode(), PLACEHOLDER]
        else:
            assert token.endswith(b",p=" + PLACEHOLDER)
    responses = [f for f in frames if f.dir == "s2c" and f.summary["api"] == "SaslAuthenticate"]
    assert len(responses) == len(auths)


def _unsecured_jwt(subject: str, marker: str) -> str:
    """An unsigned JWT (alg "none") as Kafka's unsecured validator accepts it; `marker` makes
    this token's claims unique."""

    def part(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + 3600, "jti": marker}
    return f"{part({'alg': 'none'})}.{part(claims)}."


def _oauth(token: str) -> dict:
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class Provider(AbstractTokenProvider):
        def token(self) -> str:
            return token

        def extensions(self) -> dict[str, str]:
            return {"traceId": f"trace-{token[-12:]}"}  # a SASL extension (KIP-342)

    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_provider": Provider(),
    }


@pytest.mark.apache
@pytest.mark.timeout(180)
def test_kafka_oauthbearer_token_never_reaches_the_cassette(sasl_kafka, tmp_path):
    """kafka-python's OAUTHBEARER client response (`n,,\\x01auth=Bearer <jwt>...`) starts like a
    SCRAM client-first message; it was kept in clear when redaction went by the token's bytes.
    Now the negotiated mechanism decides: the gs2 header stays, the token and extensions go."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    direct = f"127.0.0.1:{sasl_kafka['port']}"
    with pytest.raises(KafkaTimeoutError):  # the broker checks the token: not a JWT, refused
        KafkaProducer(bootstrap_servers=direct, bootstrap_timeout_ms=2000, **_oauth("not.a.jwt"))

    token = _unsecured_jwt(KAFKA_USER, marker=f"rrlab-jti-{tmp_path.name}")
    claims = token.split(".")[1]
    base = free_block(4)
    cassette = tmp_path / "cassette"
    topic = "rrlab.cred.oauthbearer"
    with RunningProxy([f"--kafka={base}={direct}"], cassette, "--allow-upstream", direct) as proxy:
        got = _round_trip(f"127.0.0.1:{base}", topic, "OAUTHBEARER", auth=_oauth(token))
        assert proxy.stop() == 0
    assert got == [f"msg-{i}".encode() for i in range(5)]

    for secret in (token, claims, f"rrlab-jti-{tmp_path.name}", f"trace-{token[-12:]}"):
        frames = assert_secret_absent(cassette, secret.encode())
    handshakes = [f for f in frames if f.dir == "c2s" and f.summary["api"] == "SaslHandshake"]
    auths = [f for f in frames if f.dir == "c2s" and f.summary["api"] == "SaslAuthenticate"]
    assert handshakes and len(auths) == len(handshakes)  # one client response per connection
    for f in auths:
        assert f.redacted and f.summary["redacted"] == ["auth_bytes (OAUTHBEARER token)"]
        assert f.summary["sasl_mechanism"] == "OAUTHBEARER" and f.summary["exchange"] == 1
        auth_bytes = kafka_codec.decode_request(f.raw).body.auth_bytes  # still a valid request
        assert auth_bytes == b"n,,\x01auth=Bearer " + PLACEHOLDER + b"\x01\x01"
    apis = {f.summary["api"] for f in frames}
    assert {"Produce", "Fetch"} <= apis


def _frame(api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    client_id = b"rr-raw-v0"
    payload = struct.pack(">hhih", api_key, version, correlation_id, len(client_id))
    payload += client_id + body
    return struct.pack(">i", len(payload)) + payload


def _plain_v0_session(port: int, password: str) -> bytes | None:
    """SaslHandshake v0, then the PLAIN token unframed (KIP-43), then ApiVersions: its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(_frame(17, 0, 1, struct.pack(">h", 5) + b"PLAIN"))
        assert recv_kafka_frame(sock) is not None
        token = b"\x00" + KAFKA_USER.encode() + b"\x00" + password.encode()
        sock.sendall(struct.pack(">i", len(token)) + token)
        if recv_kafka_frame(sock) != b"":  # the broker's empty challenge: authenticated
            return None
        sock.sendall(_frame(18, 0, 2, b""))
        return recv_kafka_frame(sock)


@pytest.mark.apache
@pytest.mark.timeout(60)
def test_kafka_sasl_v0_raw_token_never_reaches_the_cassette(sasl_kafka, tmp_path):
    """Old clients (kafka-python with api_version < 1.0) send the SASL token without a Kafka
    header after SaslHandshake v0; Apache Kafka 4.1 still accepts it."""
    direct = f"127.0.0.1:{sasl_kafka['port']}"
    assert _plain_v0_session(sasl_kafka["port"], KAFKA_PASSWORD)  # direct: authenticated
    assert _plain_v0_session(sasl_kafka["port"], "wrong") is None
    base = free_block(4)
    cassette = tmp_path / "cassette"
    with RunningProxy([f"--kafka={base}={direct}"], cassette, "--allow-upstream", direct) as proxy:
        answer = _plain_v0_session(base, KAFKA_PASSWORD)
        assert proxy.stop() == 0, proxy.stderr()
    frames = list(CassetteReader.open(cassette).frames())
    assert not any(KAFKA_PASSWORD.encode() in f.raw for f in frames), "password recorded"
    assert answer, "the proxy cut the SASL v0 session"
    frames = assert_secret_absent(cassette, KAFKA_PASSWORD.encode())
    assert [(f.dir, f.summary["api"]) for f in frames] == [
        ("c2s", "SaslHandshake"),
        ("s2c", "SaslHandshake"),
        ("c2s", "SaslRawToken"),
        ("s2c", "SaslRawToken"),
        ("c2s", "ApiVersions"),
        ("s2c", "ApiVersions"),
    ]
    token, reply = frames[2], frames[3]
    assert token.redacted and token.summary["redacted"] == ["token (PLAIN password)"]
    assert token.raw[4:] == b"\x00" + KAFKA_USER.encode() + b"\x00" + PLACEHOLDER
    assert reply.raw == b"\x00\x00\x00\x00" and not reply.redacted  # the broker's empty success
