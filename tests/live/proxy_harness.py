"""Run `rrlab proxy` as a subprocess for live tests and benchmarks: start, wait, scrape, stop."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
RRLAB = ROOT / ".venv" / "bin" / "rrlab"


def record_in_project(
    tmp_path: Path, route: list[str], argv: list[str], timeout: int
) -> tuple[Path, Path]:
    """`argv` recorded by `rrlab record ROUTE` in a project of its own (tmp_path/proj, the demo
    worker in it) into tests/cassettes/w, out/w/aggregate.json its artifact; asserts it
    passed and returns (project, cassette)."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "worker").symlink_to(ROOT / "worker")
    record = [str(RRLAB), "record", *route]
    record += ["--cassette", "tests/cassettes/w", "--write-root", "tests"]
    record += ["--artifact", "out/w/aggregate.json", "--", *argv]
    done = subprocess.run(record, cwd=project, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return project, project / "tests" / "cassettes" / "w"


def replay_elsewhere(cassette: Path, aggregate: Path, tmp_path: Path, timeout: int) -> dict:
    """`rrlab replay --profile ci_replay` of `cassette` from a directory outside its project, the
    recorded `aggregate` removed first: asserts the replay passed and wrote the same bytes
    back, and returns its report (out/rr-report.json)."""
    recorded = aggregate.read_bytes()
    aggregate.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    replay = [str(RRLAB), "replay", "--cassette", str(cassette), "--profile", "ci_replay"]
    done = subprocess.run(replay, cwd=elsewhere, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert aggregate.read_bytes() == recorded
    report = json.loads((elsewhere / "out" / "rr-report.json").read_bytes())
    assert report["verdict"] == "ok"
    return report


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_block(n: int, lo: int = 33000, hi: int = 38900) -> int:
    """A base port with n consecutive free ports (outside the shared 19xxx/2xxxx ranges)."""
    for _ in range(500):
        base = random.randrange(lo, hi - n)
        if all(port_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no free port block")


def recv_kafka_frame(sock: socket.socket) -> bytes | None:
    """The payload of one size-prefixed Kafka frame (size 0 allowed: a SASL v0 success); None
    when the peer closes before sending anything. A close mid-frame fails the test."""
    data = b""
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big", signed=True):
        chunk = sock.recv(65536)
        if not chunk:
            assert not data, f"peer closed mid-frame after {len(data)} bytes"
            return None
        data += chunk
    return data[4:]


@contextmanager
def private_kafka(
    home: Path, impl: str = "apache", port: int | None = None, **kw: Any
) -> Iterator[dict]:
    """A Kafka of our own on free ports (the shared broker on :9092 stays untouched), answering
    before it is handed out and stopped afterwards. The record's "port" is its listener."""
    from rrlab.brokers import control

    port = port or free_block(2, lo=39000, hi=39900)  # listener + controller
    record = control.start_kafka(home, port, impl=impl, timeout=180, **kw)
    try:
        yield {**record, "port": port}
    finally:
        control.stop(record)


class RunningProxy:
    """`rrlab proxy` with --write-root for the test's tmp dir and metrics on a free port."""

    def __init__(self, routes: list[str], cassette: Path, *extra: str, env: dict | None = None):
        self.cassette = cassette
        self.log_path = cassette.parent / f"{cassette.name}.proxy-log.jsonl"
        self.routes = routes
        argv = [str(RRLAB), "proxy", *routes, "--cassette", str(cassette)]
        argv += ["--write-root", str(cassette.parent), "--metrics-port", "0", *extra]
        argv += ["--log-file", str(self.log_path)]  # JSON lines; stderr has the human lines
        self.log_path.write_text("")
        self.stderr_path = cassette.parent / f"{cassette.name}.proxy-stderr.txt"
        self._log = open(self.stderr_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=ROOT, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.metrics_url = ""

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_listening(self, timeout: float = 60) -> RunningProxy:
        """Block until every configured route printed its `listening` line."""
        deadline = time.monotonic() + timeout
        want = len([r for r in self.routes if r.startswith("--")])
        seen = 0
        while seen < want:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(
                    f"proxy not listening (rc={self.proc.poll()}): {self.stdout} "
                    f"{self.stderr_path.read_text()[-2000:]}"
                )
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self.stdout.append(line)
            if " metrics http" in line:
                self.metrics_url = line.split()[-1]
            if " listening " in line:
                seen += 1
        return self

    def drain(self) -> list[str]:
        while True:
            try:
                self.stdout.append(self.lines.get_nowait())
            except queue.Empty:
                return self.stdout

    def metrics(self) -> dict[tuple[str, tuple], float]:
        text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
        out: dict[tuple[str, tuple], float] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def metric_sum(self, name: str, **labels: str) -> float:
        return sum(
            v
            for (n, lbl), v in self.metrics().items()
            if n == name and all(dict(lbl).get(k) == x for k, x in labels.items())
        )

    def logs(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text().splitlines():
            if line.strip():
                events.append(json.loads(line))
        return events

    def stderr(self, tail: int = 4000) -> str:
        """The end of what the proxy wrote on stderr: the message of a failed assertion."""
        if not self._log.closed:
            self._log.flush()
        return "proxy stderr:\n" + self.stderr_path.read_text()[-tail:]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.logs() if e.get("event") == name]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        finally:
            self._log.close()
        self.drain()
        return rc

    def __enter__(self) -> RunningProxy:
        return self.wait_listening()

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.stop()


def worker_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "AMQP_URL", "MQTT_URL")
    }


def run_worker(
    driver: str, address: str, out: Path, *, seed: int, count: int, topic: str, sample=None
) -> tuple[bytes, set[int]]:
    """Run the worker to completion; returns (aggregate.json bytes, remote ports it dialled).

    Remote ports are sampled with psutil every few ms while it runs (a connection shorter than
    that can be missed; the proxy's own count covers those).
    """
    import psutil

    flag = {"kafka": "--kafka-bootstrap", "amqp": "--amqp-url", "mqtt": "--mqtt-url"}[driver]
    argv = [sys.executable, "-m", "worker", "--driver", driver, flag, address, "--count",
            str(count), "--seed", str(seed), "--topic", topic, "--timeout", "30", "--out",
            str(out)]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    ports: set[int] = set()
    own: set[int] = set()  # pika wakes its ioloop through a loopback TCP socket pair
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            for c in ps.net_connections(kind="tcp"):
                if c.raddr:
                    ports.add(c.raddr.port)
                    own.add(c.laddr.port)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            break
        time.sleep(0.003)
    ports -= own
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr.decode()
    return (out / "aggregate.json").read_bytes(), ports
