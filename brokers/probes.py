"""Protocol-level readiness probes: a broker is ready when it answers its own protocol.

An open port is not enough (RabbitMQ accepts TCP before it can authenticate; a JVM binds
before the KRaft controller elected itself). Each probe returns None when ready, or a short
reason string when not. Client libraries are imported inside the probes: `rrlab --help`
should not pay for kio, pika and amqtt.
"""

from __future__ import annotations

import logging
import socket
import struct

PROBE_TIMEOUT_S = 2.0


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return buf


def kafka_call(host: str, port: int, request, correlation_id: int = 1):
    """One Kafka request/response round trip with a kio entity, through the project's codec
    (header versions per API, bounds-checked decoding)."""
    from rrlab.rr.protocols.kafka.codec import decode_response_body, encode_request

    api_key, version = request.__api_key__, request.__version__
    frame = encode_request(api_key, version, correlation_id, "rrlab-probe", request)
    with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as sock:
        sock.sendall(frame)
        size = _recv_exact(sock, 4)
        raw = size + _recv_exact(sock, struct.unpack(">i", size)[0])
    return decode_response_body(api_key, version, raw)


def kafka(host: str, port: int) -> str | None:
    """Send ApiVersions v0; ready when the broker answers with error code 0."""
    from kio.schema.api_versions.v0.request import ApiVersionsRequest

    from rrlab.rr.protocols.kafka.codec import KafkaCodecError

    try:
        response = kafka_call(host, port, ApiVersionsRequest())
    except (OSError, KafkaCodecError) as exc:
        return f"kafka {host}:{port}: {exc}"
    if response.error_code != 0:
        return f"kafka {host}:{port}: ApiVersions error code {response.error_code}"
    return None


def amqp(url: str) -> str | None:
    """Open and close an AMQP connection with the given credentials (full handshake)."""
    import pika

    params = pika.URLParameters(url)
    params.socket_timeout = PROBE_TIMEOUT_S
    params.blocked_connection_timeout = PROBE_TIMEOUT_S
    params.connection_attempts = 1
    if not port_open(params.host, params.port):  # cheap, and spares pika's error logging
        return f"amqp {params.host}:{params.port}: connection refused"
    pika_log = logging.getLogger("pika")
    level = pika_log.level
    pika_log.setLevel(logging.CRITICAL)  # a refused probe is expected, not an error to log
    try:
        pika.BlockingConnection(params).close()
    except Exception as exc:  # pika raises many unrelated types for "not yet"
        return f"amqp {params.host}:{params.port}: {type(exc).__name__} {exc}".strip()
    finally:
        pika_log.setLevel(level)
    return None


def mqtt(
    host: str, port: int, username: str | None = None, password: str | None = None
) -> str | None:
    """Send MQTT 3.1.1 CONNECT; ready on CONNACK with return code 0."""
    from amqtt.mqtt.connect import ConnectPacket, ConnectPayload, ConnectVariableHeader

    header = ConnectVariableHeader()
    header.keep_alive = 10
    header.clean_session_flag = True
    header.username_flag = username is not None
    header.password_flag = password is not None
    packet = ConnectPacket(
        variable_header=header,
        payload=ConnectPayload(client_id="rrlab-probe", username=username, password=password),
    )
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as sock:
            sock.sendall(packet.to_bytes())
            connack = _recv_exact(sock, 4)  # fixed header 0x20 0x02, flags, return code
            sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError as exc:
        return f"mqtt {host}:{port}: {exc}"
    if connack[0] != 0x20 or connack[3] != 0:
        return f"mqtt {host}:{port}: CONNACK {connack.hex()} (refused)"
    return None


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP on host:port (used to refuse foreign listeners)."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
