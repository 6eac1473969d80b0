"""The worker's command line: bad input is one line on stderr with exit 2, never a traceback."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worker.drivers import redact_url

ROOT = Path(__file__).resolve().parents[2]


def _worker(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("rrlab-worker: error: ")
    return lines[0]


def _closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unknown_driver(tmp_path):
    line = _one_line_error(_worker("--driver", "nats", "--out", str(tmp_path)))
    assert "unknown driver 'nats'" in line and "kafka, amqp, mqtt" in line


def test_negative_count(tmp_path):
    line = _one_line_error(_worker("--count", "-1", "--out", str(tmp_path)))
    assert "--count must be 0 or more" in line


def test_count_not_a_number(tmp_path):
    line = _one_line_error(_worker("--count", "ten", "--out", str(tmp_path)))
    assert "--count" in line


def test_bad_topic(tmp_path):
    line = _one_line_error(_worker("--topic", "a/b#", "--out", str(tmp_path)))
    assert "--topic" in line


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "out"  # a directory below a regular file cannot exist, even for root
    line = _one_line_error(_worker("--out", str(out)))
    assert "cannot write to output directory" in line and str(out) in line


@pytest.mark.parametrize(
    ("driver", "flag", "address"),
    [
        ("kafka", "--kafka-bootstrap", "127.0.0.1:{port}"),
        ("amqp", "--amqp-url", "amqp://user:hunter2-pw@127.0.0.1:{port}/%2F"),
        ("mqtt", "--mqtt-url", "mqtt://127.0.0.1:{port}"),
    ],
)
def test_unreachable_broker_fails_within_timeout(tmp_path, driver, flag, address):
    url = address.format(port=_closed_port())
    started = time.monotonic()
    proc = _worker("--driver", driver, flag, url, "--timeout", "2", "--out", str(tmp_path))
    took = time.monotonic() - started
    line = _one_line_error(proc)
    assert f"cannot reach {driver} broker at {redact_url(url)}" in line
    assert "hunter2-pw" not in proc.stderr
    assert took < 12, f"took {took:.1f} s with --timeout 2"
    assert not (tmp_path / "aggregate.json").exists()


@pytest.fixture
def silent_port():
    """A loopback port that accepts TCP connections but never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@pytest.mark.parametrize(
    ("driver", "flag", "address"),
    [
        ("kafka", "--kafka-bootstrap", "127.0.0.1:{port}"),
        ("amqp", "--amqp-url", "amqp://guest:guest@127.0.0.1:{port}/%2F"),
        ("mqtt", "--mqtt-url", "mqtt://127.0.0.1:{port}"),
    ],
)
def test_silent_broker_fails_within_timeout(tmp_path, silent_port, driver, flag, address):
    url = address.format(port=silent_port)
    started = time.monotonic()
    proc = _worker("--driver", driver, flag, url, "--timeout", "2", "--out", str(tmp_path))
    took = time.monotonic() - started
    line = _one_line_error(proc)
    assert f"cannot reach {driver} broker at {redact_url(url)}" in line
    assert "within 2 s" in line
    assert 1.5 < took < 10, f"took {took:.1f} s with --timeout 2"


def test_bad_addresses(tmp_path):
    line = _one_line_error(_worker("--kafka-bootstrap", "nonsense", "--out", str(tmp_path)))
    assert "--kafka-bootstrap 'nonsense'" in line
    line = _one_line_error(
        _worker("--driver", "mqtt", "--mqtt-url", "http://127.0.0.1:1", "--out", str(tmp_path))
    )
    assert "scheme must be one of mqtt" in line


def test_redact_url():
    assert redact_url("amqp://u:secret@127.0.0.1:5672/v") == "amqp://u:***@127.0.0.1:5672/v"
    assert redact_url("mqtt://127.0.0.1:1883") == "mqtt://127.0.0.1:1883"
    assert redact_url("127.0.0.1:9092") == "127.0.0.1:9092"


def test_help_exits_zero():
    proc = _worker("--help")
    assert proc.returncode == 0
    assert "KAFKA_BOOTSTRAP" in proc.stdout and "AMQP_URL" in proc.stdout
    assert "KAFKA_GROUP" in proc.stdout


def test_worker_imports_nothing_of_ours():
    """The worker is the unmodified application: no rr, proxy, replayer or brokers import."""
    ours = {"rr", "proxy", "replayer", "brokers"}
    for path in (ROOT / "worker").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ours, f"{path}: imports {name}"


def test_bad_kafka_group(tmp_path):
    line = _one_line_error(_worker("--kafka-group", "a b", "--out", str(tmp_path)))
    assert "--kafka-group 'a b'" in line


def test_defaults_fit_the_lab(monkeypatch):
    """The default AMQP URL is the lab RabbitMQ's fixture user and vhost, via the proxy port."""
    from worker.__main__ import _parser

    for name in ("KAFKA_BOOTSTRAP", "AMQP_URL", "MQTT_URL", "KAFKA_GROUP"):
        monkeypatch.delenv(name, raising=False)
    args = _parser().parse_args([])
    assert args.amqp_url == "amqp://rrlab:rrlab-secret-pw@127.0.0.1:15673/rrlab"
    assert args.kafka_bootstrap == "127.0.0.1:19092"
    assert args.kafka_group is None
    monkeypatch.setenv("KAFKA_GROUP", "team-a")
    assert _parser().parse_args([]).kafka_group == "team-a"
    assert _parser().parse_args(["--kafka-group", "b"]).kafka_group == "b"


def _keywords(path: Path) -> set[str]:
    """Every keyword argument name used in a call anywhere in `path`."""
    tree = ast.parse(path.read_text())
    return {kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call) for kw in node.keywords}


def test_drivers_carry_no_replay_crutch():
    """Written the ordinary way: no pinned batching or timestamps, no fixed consumer tag."""
    kafka = _keywords(ROOT / "worker" / "drivers" / "kafka.py")
    assert not kafka & {"linger_ms", "batch_size", "timestamp_ms"}, kafka
    assert {"acks", "enable_auto_commit", "group_id"} <= kafka
    assert "consumer_tag" not in _keywords(ROOT / "worker" / "drivers" / "amqp.py")


@pytest.mark.parametrize(
    ("driver", "flag", "address"),
    [
        ("kafka", "--kafka-bootstrap", "127.0.0.1:{port}"),
        ("amqp", "--amqp-url", "amqp://user:hunter2-pw@127.0.0.1:{port}/%2F"),
        ("mqtt", "--mqtt-url", "mqtt://127.0.0.1:{port}"),
    ],
)
def test_refused_port_fails_fast_with_one_wording_for_every_driver(tmp_path, driver, flag, address):
    url = address.format(port=_closed_port())
    started = time.monotonic()
    proc = _worker("--driver", driver, flag, url, "--timeout", "20", "--out", str(tmp_path))
    took = time.monotonic() - started
    line = _one_line_error(proc)
    assert f"cannot reach {driver} broker at {redact_url(url)}: connection refused (" in line
    assert took < 8, f"took {took:.1f} s: a refused port must not wait out --timeout 20"
    assert "rrlab proxy" not in line  # not a worker-facing port


def test_hint_names_the_proxy_and_the_fake_broker_on_a_worker_facing_port(tmp_path):
    from worker.errors import BrokerUnreachable, unreachable_hint

    for address in ("127.0.0.1:19092", "amqp://u:p@127.0.0.1:15673/rrlab", "mqtt://h:11883"):
        assert "`rrlab proxy` (record) or `rrlab serve` (replay)" in unreachable_hint(address)
    assert "rrlab" not in unreachable_hint("127.0.0.1:9092")
    exc = BrokerUnreachable(
        "amqp", "amqp://127.0.0.1:15673/rrlab", "[Errno 111] Connection refused"
    )
    assert str(exc).startswith("cannot reach amqp broker at amqp://127.0.0.1:15673/rrlab: "
                               "connection refused (that is a worker-facing port")  # fmt: skip


def test_refused_login_is_not_called_unreachable():
    from worker.errors import LoginRefused

    exc = LoginRefused("amqp", "amqp://rrlab:***@127.0.0.1:5672/rrlab", "ACCESS_REFUSED", "check")
    assert str(exc) == (
        "amqp broker at amqp://rrlab:***@127.0.0.1:5672/rrlab refused the login: ACCESS_REFUSED "
        "(check)"
    )
    assert exc.exit_code == 2
