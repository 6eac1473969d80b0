"""Which session class serves each protocol, and what of a protocol's frames is liveness.

The one place that maps a protocol to its replay module; each module exports `Session` (a
`replayer.session.Session` subclass), `is_liveness(summary)`, `is_closing(summary)` and
optionally `prepare(ctx)` (shared state built once per run, e.g. Kafka's partition logs).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from rr.codecs import Proto
from rr.protocols import protocol_for

_MODULES = {Proto.KAFKA: "replayer.kafka", Proto.AMQP: "replayer.amqp", Proto.MQTT: "replayer.mqtt"}


def module_for(proto: Proto | str) -> ModuleType:
    return importlib.import_module(_MODULES[Proto(proto)])


def is_liveness(proto: Proto, summary: dict[str, Any]) -> bool:
    """Frames a client sends on a clock (heartbeats, pings, polls): never reported unused."""
    return bool(module_for(proto).is_liveness(summary))


def is_closing(proto: Proto, summary: dict[str, Any]) -> bool:
    """A graceful close (MQTT DISCONNECT, AMQP Connection/Channel.Close, Kafka LeaveGroup): how
    a client tears down is not behaviour, a recorded one it skipped is never reported unused."""
    return bool(module_for(proto).is_closing(summary))


def label(proto: Proto, summary: dict[str, Any]) -> str:
    """A short, low-cardinality name for a frame: Kafka api, AMQP method/frame, MQTT packet."""
    return protocol_for(proto).label(summary)
