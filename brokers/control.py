"""up / down / status over the three brokers: start in parallel, wait for protocol readiness.

`up` is idempotent: a broker we started that still answers is left alone. A port taken by a
process that is not ours is an error, never something we stop.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from rrlab.brokers import kafka, mqtt, probes, process, rabbitmq, state
from rrlab.brokers.ports import port_holder

NAMES = ("kafka", "amqp", "mqtt")
DEFAULT_TIMEOUT_S = 60.0
#: The module that starts each broker name.
MODULES = {"kafka": kafka, "amqp": rabbitmq, "mqtt": mqtt}
DEFAULT_PORTS = {"kafka": kafka.PORT, "amqp": rabbitmq.PORT, "mqtt": mqtt.PORT}


class BrokerError(Exception):
    """A broker could not be started or stopped; the message names what and where to look."""


def _names(names: Iterable[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(names or NAMES))
    unknown = [n for n in chosen if n not in NAMES]
    if unknown:
        raise BrokerError(f"unknown broker {unknown[0]!r}: choose from {', '.join(NAMES)}")
    return chosen


def _running(record: dict) -> bool:
    """True when every process we recorded for a broker still runs."""
    procs = record.get("procs", {}).values()
    return bool(procs) and all(process.alive(p["pid"], p.get("start")) for p in procs)


def _stop_record(record: dict, grace_s: float = process.GRACE_S) -> bool:
    """Stop a broker's processes, last started first (RabbitMQ before its epmd)."""
    stopped = False
    for proc in reversed(list(record.get("procs", {}).values())):
        stopped = process.stop(proc, grace_s) or stopped
    return stopped


def address(name: str, record: dict) -> str:
    if name == "amqp":
        return record["url"]
    scheme = "mqtt" if name == "mqtt" else "kafka"
    return f"{scheme}://{record['host']}:{record['port']}"


def _log_tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as fh:
            tail = fh.read().strip().splitlines()[-lines:]
    except OSError:
        return ""
    return " | ".join(line.strip() for line in tail)


def up(
    names: Iterable[str] | None = None,
    kafka_impl: str = kafka.AUTO,
    mqtt_impl: str = "amqtt",
    timeout: float = DEFAULT_TIMEOUT_S,
    out: TextIO | None | str = "stdout",
    mqtt_users: dict[str, str] | None = None,
    ports: dict[str, int] | None = None,
) -> dict[str, dict]:
    """Start the named brokers (default all) and wait until each answers its protocol.

    Returns {name: {"address", "impl", "host", "port", "pid", "log", "ready_s", "started"}};
    `started` is False for a broker that was already running (then `ready_s` is None).
    Raises BrokerError (wrong impl running, port taken, not ready within `timeout`).
    `kafka_impl="auto"` (the default) takes a Kafka rrlab already runs as it is, else starts
    what `kafka.choose_impl` picks and says which and why; the result names the concrete impl.
    `ports` moves a broker off its default port (tests that must not disturb the shared
    brokers use it with their own RRLAB_STATE_DIR); `mqtt_users` makes MQTT require a password.
    """
    chosen = _names(names)
    impls = {"kafka": kafka_impl, "amqp": "rabbitmq", "mqtt": mqtt_impl}
    if kafka_impl not in (kafka.AUTO, *kafka.IMPLS):
        raise BrokerError(
            f"unknown --kafka-impl {kafka_impl!r}: choose {', '.join((kafka.AUTO, *kafka.IMPLS))}"
        )
    if mqtt_impl not in mqtt.IMPLS:
        raise BrokerError(f"unknown --mqtt-impl {mqtt_impl!r}: choose {' or '.join(mqtt.IMPLS)}")

    with state.locked():
        return _up(chosen, impls, kafka_impl, mqtt_impl, timeout, out, mqtt_users, ports or {})


def _up(
    chosen: list[str],
    impls: dict[str, str],
    kafka_impl: str,
    mqtt_impl: str,
    timeout: float,
    out: TextIO | None | str,
    mqtt_users: dict[str, str] | None,
    ports: dict[str, int],
) -> dict[str, dict]:
    """`up` under the state lock: reuse, clean up or spawn each broker, then wait for all."""
    results: dict[str, dict] = {}
    pending: dict[str, tuple[dict, float]] = {}
    if "kafka" in chosen and kafka_impl == kafka.AUTO:
        kafka_impl = impls["kafka"] = _auto_kafka_impl(out)
    try:
        for name in chosen:
            record = state.load(name)
            if record and _running(record):
                if record["impl"] != impls[name]:
                    raise BrokerError(
                        f"{name} is running as {record['impl']}, not {impls[name]}: "
                        f"run `rrlab brokers down {name}` first"
                    )
                if MODULES[name].probe(record) is None:
                    results[name] = _result(name, record, started=False, ready_s=None)
                    _say(
                        out,
                        f"{name} ({record['impl']}) already running on "
                        f"{record['host']}:{record['port']} (pid {_pid(record)})",
                    )
                    continue
                # ours but not answering yet (e.g. `up` interrupted): wait for it below
                pending[name] = (record, time.monotonic())
                continue
            if record:
                _stop_record(record)  # leftovers of a crashed broker
                state.forget(name)
            port = ports.get(name, DEFAULT_PORTS[name])
            if probes.port_open("127.0.0.1", port):
                holder = port_holder(port) or "a process rrlab did not start"
                raise BrokerError(
                    f"port 127.0.0.1:{port} for {name} is taken by {holder}; stop it first"
                )
            state.forget(name)  # the log an earlier `down` kept
            home = state.broker_dir(name)
            home.mkdir(parents=True, exist_ok=True)
            began = time.monotonic()
            try:
                if name == "kafka":
                    record = kafka.start(home, impl=kafka_impl, port=port, controller_port=port + 1)
                elif name == "amqp":
                    record = rabbitmq.start(home, port=port)
                else:
                    record = mqtt.start(home, impl=mqtt_impl, port=port, users=mqtt_users)
            except (RuntimeError, OSError) as exc:
                raise BrokerError(f"{name}: {exc}") from exc
            state.save(name, record)
            pending[name] = (record, began)
        _wait(pending, timeout, results, out)
    except BaseException:
        for name, (record, _) in pending.items():
            if name not in results:
                _stop_record(record, grace_s=3.0)  # keep its files: the error names its log
        raise
    return {name: results[name] for name in chosen}


def _auto_kafka_impl(out: TextIO | None | str) -> str:
    """`auto`: a Kafka rrlab started and still runs is kept whichever it is (no "running as"
    error); else the impl `kafka.choose_impl` picks, with one line saying which and why."""
    record = state.load("kafka")
    if record and _running(record):
        return record["impl"]
    impl, why = kafka.choose_impl()
    _say(out, f"kafka: auto chose {impl} ({why})")
    return impl


def _wait(
    pending: dict[str, tuple[dict, float]], timeout: float, results: dict, out: TextIO | None | str
) -> None:
    """Probe every pending broker until it answers; fail on the first one that cannot."""
    deadline = time.monotonic() + timeout
    waiting = dict(pending)
    while waiting:
        for name, (record, began) in list(waiting.items()):
            reason = MODULES[name].probe(record)
            if reason is None:
                ready_s = time.monotonic() - began
                results[name] = _result(name, record, started=True, ready_s=ready_s)
                del waiting[name]
                _say(
                    out,
                    f"{name} ({record['impl']}) ready on {record['host']}:{record['port']} "
                    f"in {ready_s:.1f} s (log {record['log']})",
                )
            elif not _running(record):
                raise BrokerError(
                    f"{name} ({record['impl']}) exited during start-up; see {record['log']}: "
                    f"{_log_tail(record['log'])}"
                )
            elif time.monotonic() > deadline:
                raise BrokerError(
                    f"{name} ({record['impl']}) not ready after {timeout:g} s ({reason}); "
                    f"see {record['log']}"
                )
        if waiting:
            time.sleep(0.1)


def start_kafka(
    home: Path,
    port: int,
    advertised_port: int | None = None,
    impl: str = "tansu",
    timeout: float = DEFAULT_TIMEOUT_S,
    sasl_users: dict[str, str] | None = None,
) -> dict:
    """A private Kafka, not tracked by up/down (e.g. a benchmark's Tansu that advertises a
    relay's port): started under `home`, returned once it answers; stop it with `stop(record)`.
    The record holds "ready_s", "log" and the pids. `sasl_users` (impl="apache" only): the
    client listener takes SASL_PLAINTEXT: PLAIN or SCRAM-SHA-256 for these users, and unsecured
    OAUTHBEARER (see brokers.kafka)."""
    began = time.monotonic()
    try:
        record = kafka.start(
            home,
            impl=impl,
            port=port,
            advertised_port=advertised_port,
            controller_port=port + 1,
            sasl_users=sasl_users,
        )
    except (RuntimeError, OSError, ValueError) as exc:
        raise BrokerError(f"kafka: {exc}") from exc
    results: dict[str, dict] = {}
    try:
        _wait({"kafka": (record, began)}, timeout, results, out=None)
    except BaseException:
        _stop_record(record)
        raise
    return {**record, "ready_s": results["kafka"]["ready_s"]}


def stop(record: dict) -> bool:
    """Stop the processes of a record from `start_kafka` (or any broker record)."""
    return _stop_record(record)


def _pid(record: dict) -> int:
    procs = record["procs"]
    return (procs.get("broker") or procs.get("server"))["pid"]


def _result(name: str, record: dict, started: bool, ready_s: float | None) -> dict:
    return {
        "address": address(name, record),
        "impl": record["impl"],
        "host": record["host"],
        "port": record["port"],
        "pid": _pid(record),
        "log": record["log"],
        "ready_s": None if ready_s is None else round(ready_s, 2),
        "started": started,
    }


def down(names: Iterable[str] | None = None, out: TextIO | None | str = "stdout") -> list[str]:
    """Stop the named brokers we started (default: all), drop their state; return those stopped."""
    chosen = _names(names)
    stopped = []
    with state.locked():
        for name in chosen:
            if _down_one(name, out):
                stopped.append(name)
    return stopped


def _down_one(name: str, out: TextIO | None | str) -> bool:
    record = state.load(name)
    if record is None:
        _say(out, f"{name}: not started by rrlab")
        return False
    began = time.monotonic()
    was_running = _stop_record(record)
    state.forget(name, keep=record.get("log"))
    kept = f" (log kept until the next up: {record['log']})" if record.get("log") else ""
    if was_running:
        _say(out, f"{name} ({record['impl']}) stopped in {time.monotonic() - began:.1f} s{kept}")
    else:
        _say(out, f"{name} ({record['impl']}) was not running; state removed{kept}")
    return was_running


def _kept_log(name: str) -> str:
    """The log a `down` kept (until the next `up`), or "-"."""
    home = state.broker_dir(name)
    logs = sorted(home.rglob("*.log")) if home.is_dir() else []
    return str(logs[0]) if logs else "-"


def status(names: Iterable[str] | None = None) -> list[dict]:
    """One row per broker: name, impl, port, pid, state (ready | not answering | down), log."""
    rows = []
    for name in _names(names):
        record = state.load(name)
        if record is None or not _running(record):
            port = record["port"] if record else DEFAULT_PORTS[name]
            holder = port_holder(port) if probes.port_open("127.0.0.1", port) else None
            rows.append(
                {
                    "broker": name,
                    "impl": record["impl"] if record else "-",
                    "port": port,
                    "pid": None,
                    "state": f"down; port taken by {holder}" if holder else "down",
                    "log": record["log"] if record else _kept_log(name),
                }
            )
            continue
        if MODULES[name].probe(record) is None:
            condition = "ready"
        else:
            condition = "not answering"
        rows.append(
            {
                "broker": name,
                "impl": record["impl"],
                "port": record["port"],
                "pid": _pid(record),
                "state": condition,
                "log": record["log"],
            }
        )
    return rows


def _say(out: TextIO | None | str, line: str) -> None:
    """Print progress to `out`: "stdout" (resolved now, so pytest's capsys sees it) or None."""
    if out is not None:
        print(line, file=sys.stdout if out == "stdout" else out, flush=True)
