"""What a command imports before it does anything: `rrlab replay` and `rrlab serve` start on
every replay (hundreds of times in a CI with hundreds of cassettes), so they load only what they
use. Each case runs in a fresh interpreter (this one has imported everything already)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rrlab.rr.codecs import Proto
from rrlab.rr.replay.recording import Recording

ROOT = Path(__file__).resolve().parents[2]


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("command", ["replay", "serve"])
def test_a_command_imports_its_own_module_only(command):
    loaded = modules_after(f"from rrlab.cli import build_parser; build_parser({command!r})")
    for other in ("rrlab.proxy", "rrlab.brokers", "rrlab.cassette_cli", "rrlab.arch"):
        assert not {m for m in loaded if m == other or m.startswith(other + ".")}, other
    assert "importlib.metadata" not in loaded  # --version looks its text up when asked


def test_help_without_a_command_still_lists_every_command():
    done = subprocess.run(
        [sys.executable, "-m", "rrlab", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("brokers", "proxy", "record", "serve", "replay", "inspect", "arch"):
        assert f"    {command}" in done.stdout, command
    version = subprocess.run(
        [sys.executable, "-m", "rrlab", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("rrlab ")


def test_a_kafka_protocol_loads_no_amqp_or_mqtt_code():
    loaded = modules_after(
        "from rrlab.rr.protocols import PROTOCOLS, protocol_for\n"
        "assert protocol_for('kafka').proto.value == 'kafka'\n"
        "assert len(PROTOCOLS) == 3"
    )
    assert "rrlab.rr.protocols.kafka" in loaded
    for other in ("rrlab.rr.protocols.amqp", "rrlab.rr.protocols.mqtt", "pamqp", "amqtt"):
        assert other not in loaded, other


def test_serving_loads_no_web_server_without_metrics_port():
    loaded = modules_after("import rrlab.replayer.cli, rrlab.replayer.app")
    assert "twisted.web.server" not in loaded


def test_serving_loads_no_metrics_library_or_unused_codec_libraries():
    """prometheus-client is for /metrics and the snapshot at exit; the compression libraries are
    for the first compressed batch, crc32c for the first rewritten one: none before listening."""
    loaded = modules_after(
        "import rrlab.replayer.cli, rrlab.replayer.app, rrlab.replayer.replay_cli\n"
        "from rrlab.rr.protocols import protocol_for\n"
        "protocol_for('kafka')"
    )
    assert "rrlab.rr.protocols.kafka.records" in loaded
    for deferred in ("prometheus_client", "cramjam", "lz4", "zstandard", "crc32c"):
        assert deferred not in loaded, deferred


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serving_an_amqp_cassette_loads_no_kafka_code(tmp_path):
    """`rrlab serve` of a cassette with no Kafka listener, stopped when its reactor would start
    (after it listens): the Kafka stack (kio, the sessions) was never imported."""
    cassette = ROOT / "cassettes" / "worker-amqp-rabbitmq"
    recording = Recording.open(cassette, classify=None)
    assert {proto for proto, _port in recording.listeners()} == {Proto.AMQP}
    argv = ["serve", "--cassette", str(cassette), "--report", str(tmp_path / "report.json")]
    for _proto, port in recording.listeners():
        argv += ["--listen", f"{port}={free_port()}"]
    loaded = modules_after(
        "import os\n"
        "from twisted.internet import reactor\n"
        "def stop(*args, **kwargs):\n"
        "    print(json.dumps(sorted(sys.modules)), flush=True)\n"
        "    os._exit(0)\n"
        "reactor.run = stop\n"
        "from rrlab.cli import main\n"
        f"main({argv!r})"
    )
    assert "rrlab.rr.protocols.amqp" in loaded  # it did reach serving
    for kafka in ("rrlab.rr.protocols.kafka", "kio"):
        assert kafka not in loaded, kafka
