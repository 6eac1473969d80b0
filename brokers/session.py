"""Brokers for one test session: start what is missing, leave alone what was already running.

Backs the `live_brokers` pytest fixture (tests/conftest.py). At `close()` it stops only the
brokers it started, and restarts with its former impl a Kafka it had to stop to switch impl
(Tansu and Apache Kafka share port 9092).
"""

from __future__ import annotations

import os

from rrlab.brokers import control, state


class LiveBrokers:
    """Call with broker names; returns {name: address}. Close at the end of the session."""

    def __init__(self, ports: dict[str, int] | None = None, timeout: float = 120.0) -> None:
        self.ports = ports
        self.timeout = timeout
        self.started: set[str] = set()
        self.replaced: dict[str, str] = {}  # name -> impl that ran before we switched it

    def __call__(self, *names: str, kafka_impl: str = "tansu", mqtt_impl: str = "amqtt") -> dict:
        """Ensure `names` (default all) run with these impls; {name: address}.

        kafka -> "127.0.0.1:9092" (bootstrap servers), amqp -> the fixture URL with
        credentials and vhost, mqtt -> "127.0.0.1:1883".
        """
        chosen = list(names) or list(control.NAMES)
        wanted = {"kafka": kafka_impl, "mqtt": mqtt_impl}
        for name, impl in wanted.items():
            record = state.load(name)
            if name in chosen and record and control._running(record) and record["impl"] != impl:
                if name not in self.started:
                    self.replaced.setdefault(name, record["impl"])
                control.down([name], out=None)
        results = control.up(
            chosen,
            kafka_impl=kafka_impl,
            mqtt_impl=mqtt_impl,
            timeout=self.timeout,
            out=None,
            ports=self.ports,
        )
        self.started |= {name for name, info in results.items() if info["started"]}
        return {name: _address(name, info) for name, info in results.items()}

    def close(self) -> None:
        """Stop what this session started; bring back a Kafka/MQTT impl it replaced."""
        if os.environ.get("RRLAB_KEEP_BROKERS"):
            return
        if self.started:
            control.down(sorted(self.started), out=None)
        for name, impl in self.replaced.items():
            control.up(
                [name], timeout=self.timeout, out=None, ports=self.ports, **{f"{name}_impl": impl}
            )
        self.started.clear()
        self.replaced.clear()


def _address(name: str, info: dict) -> str:
    return info["address"] if name == "amqp" else f"{info['host']}:{info['port']}"
