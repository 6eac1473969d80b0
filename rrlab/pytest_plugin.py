"""pytest plugin: one cassette per test, recorded through `rrlab proxy`, replayed by `rrlab serve`.

A test asks for the `rrlab` fixture and names the real brokers it talks to with the marker::

    @pytest.mark.rrlab(kafka="127.0.0.1:9092", amqp="127.0.0.1:5672")
    def test_order(rrlab):
        producer = KafkaProducer(bootstrap_servers=rrlab.kafka)  # "127.0.0.1:PORT"

`--rrlab-record` takes VCR.py's record modes (`RecordMode`); the marker's `cassette=` moves the
cassette (relative to the test file's directory), which is `cassettes/<module>/<test>` by default.
A marked test gets its proxy or fake broker even without asking for the fixture, and for the
test's duration the addresses are also in the environment as RRLAB_KAFKA, RRLAB_AMQP and
RRLAB_MQTT (for a service the test starts as a subprocess).

Why subprocesses: the proxy and the fake broker run on a Twisted reactor, which cannot be
restarted in one process (and must not share the test's threads), so each test gets its own
`python -m rrlab proxy|serve` on its own ports (replay: free ones; recording: the same ones
each time when free, see STABLE_PORTS); under pytest-xdist every worker picks its own ports.
Why the verdict is taken in `pytest_runtest_call`: a miss found after the test body must fail
*the test*, with the field diff in its message, not be reported as an error in teardown.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rrlab.children import terminate

#: the default upstream of each protocol (`rrlab brokers up`), for `kafka=True` and the like
DEFAULT_UPSTREAMS = {"kafka": "127.0.0.1:9092", "amqp": "127.0.0.1:5672", "mqtt": "127.0.0.1:1883"}
PROTOS = tuple(DEFAULT_UPSTREAMS)
LOOPBACK = "127.0.0.1"
#: seconds a proxy or fake broker may take to listen, and to finish (finalize, report)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 120.0
#: environment values of CI that do not mean "in CI"
NOT_CI = {"", "0", "false", "no", "off"}
#: where a recording's ports come from when free: a block of PORT_BLOCK chosen by the cassette's
#: name, below Linux's ephemeral range, so recording the same test again writes the same
#: addresses into its cassette (fewer changed lines to review); a taken block means free ports
STABLE_PORTS = range(20000, 30000)
PORT_BLOCK = 4
#: seconds the proxy is given, after the test, for the client's last closes to reach it
#: (a connection still open at SIGTERM is recorded as closed by the proxy, not the client)
CLOSE_GRACE = 2.0
ACTIVE_METRIC = "rrlab_proxy_connections_active{"


class RecordMode(enum.StrEnum):
    """VCR.py's record modes, as far as a broker cassette allows (it is one conversation, so
    VCR's `new_episodes`, which appends new requests to old answers, has no equivalent).

    none: replay only; a missing cassette fails the test (the default when CI is set).
    once: record a missing cassette, else replay (the default otherwise).
    rewrite: always record, replacing the cassette once the test passes.
    all: VCR's name for the same (record everything, never replay).
    """

    NONE = "none"
    ONCE = "once"
    REWRITE = "rewrite"
    ALL = "all"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rrlab", "record and replay message-broker traffic (rrlab)")
    group.addoption(
        "--rrlab-record",
        choices=[m.value for m in RecordMode],
        default=None,
        help="none: replay cassettes only (default when $CI is set); once: record a missing "
        "cassette, else replay (default otherwise); rewrite/all: record every rrlab test against "
        "the real brokers, replacing its cassette when the test passes",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "rrlab(cassette=None, kafka=None, amqp=None, mqtt=None): record or replay this test's "
        "broker traffic; kafka/amqp/mqtt name the real broker (host:port, True for the local "
        "default) the `rrlab` fixture stands in for; cassette: its directory (default "
        "cassettes/<module>/<test> beside the test file)",
    )


def record_mode(config: pytest.Config) -> RecordMode:
    given = config.getoption("--rrlab-record")
    if given:
        return RecordMode(given)
    in_ci = os.environ.get("CI", "").strip().lower() not in NOT_CI
    return RecordMode.NONE if in_ci else RecordMode.ONCE


@dataclasses.dataclass(frozen=True, slots=True)
class Brokers:
    """What the `rrlab` fixture yields: the worker-facing address of each protocol
    (`127.0.0.1:PORT`, the proxy's when recording, the fake broker's when replaying)."""

    recording: bool
    cassette: Path
    addresses: dict[str, str]

    @property
    def kafka(self) -> str:
        return self.address("kafka")

    @property
    def amqp(self) -> str:
        return self.address("amqp")

    @property
    def mqtt(self) -> str:
        return self.address("mqtt")

    def address(self, proto: str) -> str:
        try:
            return self.addresses[proto]
        except KeyError:
            raise LookupError(
                f"rrlab: no {proto} address for this test (it has {', '.join(self.addresses)}): "
                f"name it in @pytest.mark.rrlab({proto}=...)"
                + ("" if self.recording else ", then record again (--rrlab-record=rewrite)")
            ) from None

    def port(self, proto: str) -> int:
        return int(self.address(proto).rpartition(":")[2])


def cassette_for(item: pytest.Item, marker: pytest.Mark | None) -> Path:
    """The marker's `cassette=` (relative to the test file's directory), else
    `cassettes/<module>/<test name>` beside the test file."""
    base = Path(str(item.path)).parent
    given = marker.kwargs.get("cassette") if marker else None
    if given:
        return (base / Path(given)).resolve()
    module = Path(str(item.path)).stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", item.name).strip("_") or "test"
    return base / "cassettes" / module / name


def upstreams_of(marker: pytest.Mark | None) -> dict[str, str]:
    """{proto: host:port} of the real brokers the marker names (True: the local default)."""
    if marker is None:
        return {}
    unknown = set(marker.kwargs) - {"cassette", *PROTOS}
    if unknown or marker.args:
        pytest.fail(
            f"@pytest.mark.rrlab takes cassette=, {'=, '.join(PROTOS)}= keywords only; "
            f"got {', '.join(sorted(unknown)) or repr(marker.args)}",
            pytrace=False,
        )
    out = {}
    for proto in PROTOS:
        value = marker.kwargs.get(proto)
        if value is True:
            value = DEFAULT_UPSTREAMS[proto]
        if value:
            out[proto] = str(value)
    return out


def stable_ports(key: str, n: int) -> list[int] | None:
    """The `n` ports of `key`'s block in STABLE_PORTS when all are free now, else None."""
    blocks = len(STABLE_PORTS) // PORT_BLOCK
    first = STABLE_PORTS.start + zlib.crc32(key.encode()) % blocks * PORT_BLOCK
    ports = list(range(first, first + min(n, PORT_BLOCK)))
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                return None
    return ports if len(ports) == n else None


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free on loopback now (held together so none repeats)."""
    held = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


class ChildFailed(Exception):
    """The proxy or fake broker did not come up; the message says why, in its words."""


class Child:
    """`python -m rrlab ...` as a child process: its stdout watched for `listening` lines, its
    stderr kept for the failure message."""

    def __init__(self, argv: list[str], prefix: str, expect: int) -> None:
        self.argv = argv
        self.prefix = prefix
        self.expect = expect
        self.out: list[str] = []
        self.err: list[str] = []
        self.listening = 0
        self.metrics_url: str | None = None
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rrlab", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl-C at the terminal reaches pytest, which stops us
        )
        self._pumps = [
            threading.Thread(target=self._pump_out, daemon=True),
            threading.Thread(target=self._pump_err, daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    def _pump_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.append(line.rstrip("\n"))
            found = re.search(r" metrics (http://\S+)", line)
            if found:
                self.metrics_url = found[1]
            if line.startswith(self.prefix):
                self.listening += 1
                if self.listening >= self.expect:
                    self.ready.set()
        self.ready.set()  # exited: the waiter looks at the exit code

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line.rstrip("\n"))

    def wait_listening(self, what: str) -> None:
        if not self.ready.wait(START_TIMEOUT):
            self.stop()
            raise ChildFailed(f"rrlab: {what} did not listen within {START_TIMEOUT:g} s")
        if self.listening < self.expect:
            code = self.proc.wait()
            for pump in self._pumps:
                pump.join(5)
            raise ChildFailed(f"rrlab: {what} could not start (exit {code}): {self.said()}")

    def wait_closed(self, grace: float) -> None:
        """Until the proxy's metrics say no connection is open, at most `grace` seconds."""
        deadline = time.monotonic() + grace
        while self.metrics_url and time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=grace) as answer:
                    text = answer.read().decode()
            except OSError:
                return
            active = [ln for ln in text.splitlines() if ln.startswith(ACTIVE_METRIC)]
            if not any(float(ln.rsplit(" ", 1)[1]) for ln in active):
                return
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM, then wait for the cassette or the report to be written."""
        code = terminate(self.proc, STOP_TIMEOUT)
        for pump in self._pumps:
            pump.join(5)
        return code

    def said(self) -> str:
        lines = [line for line in self.err if line.strip()] or self.out
        return "\n".join(lines[-20:]) or "(nothing said)"


class Session:
    """One test's proxy (record) or fake broker (replay); `finish` judges it."""

    def __init__(self, brokers: Brokers, child: Child, staging: Path | None, report: Path | None):
        self.brokers = brokers
        self.child = child
        self.staging = staging
        self.report = report
        self.finished = False
        #: what happened, for the test's report ("Captured rrlab call")
        self.note = ""

    def finish(self, test_passed: bool) -> str | None:
        """Stop the child; the reason the test fails (None: it does not fail for us)."""
        if self.finished:
            return None
        self.finished = True
        if self.staging is not None:
            self.child.wait_closed(CLOSE_GRACE)
        code = self.child.stop()
        if self.staging is not None:
            return self._keep_recording(code, test_passed)
        return self._judge_replay(code, test_passed)

    def _keep_recording(self, code: int, test_passed: bool) -> str | None:
        cassette, staging = self.brokers.cassette, self.staging
        assert staging is not None
        if code != 0 or not test_passed or not (staging / "cassette.json").is_file():
            shutil.rmtree(staging, ignore_errors=True)
            self.note = f"recording discarded (the test failed): {cassette} left as it was"
            if code != 0:
                return (
                    f"rrlab: the recording proxy failed (exit {code}); {cassette} left as it "
                    f"was:\n{self.child.said()}"
                )
            return None  # the test failed on its own: its failure is the message
        if cassette.exists():
            shutil.rmtree(cassette)
        staging.rename(cassette)
        self.note = f"recorded {cassette} ({self._addresses()})"
        return None

    def _addresses(self) -> str:
        return ", ".join(f"{proto} {address}" for proto, address in self.brokers.addresses.items())

    def _judge_replay(self, code: int, test_passed: bool) -> str | None:
        """A miss fails the test (a failed one too: the miss is why); frames a failed test
        left unsent are only noted, since its own failure says why it stopped early."""
        assert self.report is not None
        try:
            report = json.loads(self.report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return (
                f"rrlab: the fake broker for {self.brokers.cassette} wrote no report "
                f"(exit {code}):\n{self.child.said()}"
            )
        self.note = f"replayed {self.brokers.cassette} ({self._addresses()})"
        if report.get("verdict") == "ok" and code == 0:
            return None
        if not test_passed and not report.get("misses"):
            self.note += "\n" + replay_failure(self.brokers.cassette, report)
            return None
        return replay_failure(self.brokers.cassette, report)


def replay_failure(cassette: Path, report: dict[str, Any]) -> str:
    """The assertion message of a replay that missed or left recorded frames unused: each miss
    with its field diff, each unused frame, and what to do about it."""
    totals = report.get("totals", {})
    lines = [
        f"rrlab: replay of {cassette}: {report.get('verdict')} ({totals.get('matched', 0)} "
        f"matched, {totals.get('missed', 0)} missed, {totals.get('unused', 0)} unused)"
    ]
    for miss in report.get("misses", []):
        where = f"live conn {miss.get('live_conn')}"
        if miss.get("recorded_conn") is not None:
            where += f" (recorded conn {miss['recorded_conn']})"
        lines.append(f"MISS {miss.get('proto')} {miss.get('api')} on {where}: {miss.get('reason')}")
        lines.extend(f"    {d}" for d in miss.get("diff", []))
    for frame in report.get("unused", []):
        lines.append(
            f"UNUSED {frame.get('api')} recorded conn {frame.get('recorded_conn')} seq "
            f"{frame.get('seq')}: the test never sent it"
        )
    lines.append(
        "if the change is intended, record again: pytest --rrlab-record=rewrite (real brokers "
        "needed)"
    )
    return "\n".join(lines)


def start_recording(cassette: Path, upstreams: dict[str, str]) -> Session:
    """The proxy on free ports in front of `upstreams`, writing beside the cassette."""
    if not upstreams:
        pytest.fail(
            "rrlab: recording needs the real brokers: name them in the marker, e.g. "
            '@pytest.mark.rrlab(kafka="127.0.0.1:9092")',
            pytrace=False,
        )
    cassette.parent.mkdir(parents=True, exist_ok=True)
    staging = cassette.with_name(f".{cassette.name}.rrlab-recording-{os.getpid()}")
    failed = ""
    needed = len(upstreams) + ("kafka" in upstreams)  # Kafka: its broker node's listener too
    stable = stable_ports(f"{cassette.parent.name}/{cassette.name}", needed)
    for ports in (stable, free_ports(needed)):  # another process may take the stable ones first
        if ports is None:
            continue
        shutil.rmtree(staging, ignore_errors=True)
        argv = ["proxy", "--cassette", str(staging), "--write-root", str(cassette.parent)]
        argv += ["--metrics-port", "0"]
        addresses = {}
        for (proto, upstream), port in zip(upstreams.items(), ports, strict=False):
            argv += [f"--{proto}", f"{LOOPBACK}:{port}={upstream}", "--allow-upstream", upstream]
            addresses[proto] = f"{LOOPBACK}:{port}"
        if "kafka" in upstreams:
            argv += ["--kafka-node-base-port", str(ports[-1])]
        child = Child(argv, "rrlab proxy: listening ", expect=len(upstreams))
        try:
            child.wait_listening(f"the recording proxy for {cassette}")
        except ChildFailed as exc:
            failed = str(exc)
            continue
        return Session(Brokers(True, cassette, addresses), child, staging, None)
    shutil.rmtree(staging, ignore_errors=True)
    pytest.fail(failed, pytrace=False)


def start_replay(cassette: Path, report_dir: Path) -> Session:
    """The fake broker for the cassette, every recorded listener moved to a free port."""
    from rrlab.rr.cassette import CassetteError
    from rrlab.rr.replay.recording import Recording, port_of

    try:
        recording = Recording.open(cassette, classify=None)
    except CassetteError as exc:
        pytest.fail(f"rrlab: cannot replay {cassette}: {exc}", pytrace=False)
    listeners = recording.listeners()
    moved = dict(zip((port for _p, port in listeners), free_ports(len(listeners)), strict=True))
    addresses: dict[str, str] = {}
    for route in recording.manifest.routes:
        port = port_of(route.get("listen"))
        if port in moved:
            addresses.setdefault(str(route["proto"]), f"{LOOPBACK}:{moved[port]}")
    report = report_dir / "replay-report.json"
    argv = ["serve", "--cassette", str(cassette), "--strict", "--report", str(report)]
    for recorded, live in moved.items():
        argv += ["--listen", f"{recorded}={live}"]
    child = Child(argv, "rrlab serve: listening ", expect=len(listeners))
    try:
        child.wait_listening(f"the fake broker for {cassette}")
    except ChildFailed as exc:
        pytest.fail(str(exc), pytrace=False)
    return Session(Brokers(False, cassette, addresses), child, None, report)


SESSION = pytest.StashKey[Session]()


@pytest.fixture
def rrlab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Brokers]:
    """The worker-facing broker addresses of this test: a recording proxy in front of the
    marker's real brokers, or the fake broker serving the test's cassette (--rrlab-record)."""
    item = request.node
    marker = item.get_closest_marker("rrlab")
    upstreams = upstreams_of(marker)
    cassette = cassette_for(item, marker)
    mode = record_mode(request.config)
    exists = (cassette / "cassette.json").is_file()
    if mode is RecordMode.NONE and not exists:
        pytest.fail(
            f"rrlab: no cassette at {cassette} and --rrlab-record=none (the default when CI is "
            "set) replays only: record it with `pytest --rrlab-record=once` against real brokers "
            "(`rrlab brokers up`), then commit it",
            pytrace=False,
        )
    record = mode in (RecordMode.REWRITE, RecordMode.ALL) or not exists
    if record:
        session = start_recording(cassette, upstreams)
    else:
        session = start_replay(cassette, tmp_path_factory.mktemp("rrlab"))
    item.stash[SESSION] = session
    try:
        with pytest.MonkeyPatch.context() as env:
            for proto, address in session.brokers.addresses.items():
                env.setenv(f"RRLAB_{proto.upper()}", address)
            yield session.brokers
    finally:
        session.finish(test_passed=False)  # only when the call phase did not (setup failed)


@pytest.fixture(autouse=True)
def _rrlab_for_marked_tests(request: pytest.FixtureRequest) -> None:
    """A test marked rrlab runs with its proxy or fake broker, fixture asked for or not."""
    if request.node.get_closest_marker("rrlab") and "rrlab" not in request.fixturenames:
        request.getfixturevalue("rrlab")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After the test body: stop its proxy or fake broker, and fail the test on a miss."""
    __tracebackhide__ = True  # the failure is the diff, not where this hook raised it
    session = item.stash.get(SESSION, None)
    try:
        result = yield
    except BaseException as exc:
        if session is not None:
            why = session.finish(test_passed=False)
            item.add_report_section("call", "rrlab", session.note)
            if why is not None:
                raise AssertionError(why) from exc
        raise
    if session is not None:
        why = session.finish(test_passed=True)
        item.add_report_section("call", "rrlab", session.note)
        if why is not None:
            raise AssertionError(why)
    return result
