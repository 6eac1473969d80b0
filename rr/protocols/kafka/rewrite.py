"""Kafka address rewriting and ApiVersions capping, as pure functions on kio entities.

A Kafka client dials whatever broker addresses the cluster advertises. If those reached the client
unchanged it would bypass the proxy after bootstrap, so every host:port a response advertises
(Metadata brokers, FindCoordinator single v0-3 and array v4+, DescribeCluster brokers, KIP-951
node endpoints in Produce/Fetch, ...) is replaced by a proxy listener on loopback. Which entities
carry an address is read off kio's schemas (a nested entity with `host` and `port` fields), so
every API and version kio knows is covered without a hand-kept list.

No byte offsets, no sockets: frames are decoded and re-encoded by `codec` (the one place
that calls kio's reader, behind its bounds walk: kio's native reader aborts the process on a
huge declared length) and changed with `dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kio.schema.index import api_key_map, schema_name_map
from kio.static.constants import EntityType
from kio.static.primitive import i16, i32

from rrlab.rr.codecs.base import Direction

from .apis import (
    API_VERSIONS,
    RESPONSE_HEAD_BYTES,
    response_correlation_id,
)
from .codec import (
    KafkaCodecError,
    decode_response_any,
    encode_response,
    response_schema,
)
from .track import CorrelationTracker


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """One upstream broker address and the proxy listener port that stands in for it."""

    upstream_host: str
    upstream_port: int
    listen_port: int
    node_ids: tuple[int, ...] = ()


@dataclass(slots=True)
class NodeMap:
    """Upstream broker address -> proxy listen port, allocated in discovery order from `base_port`.

    The same address always gets the same port (within a run, and across runs that discover the
    brokers in the same order).
    `on_new` is told about each new node (the proxy opens its listener there) before any
    response naming that port reaches the client.
    """

    base_port: int = 19093
    listen_host: str = "127.0.0.1"
    on_new: Callable[[KafkaNode], None] | None = None
    #: told about a node id learnt for a node already known (e.g. FindCoordinator named the
    #: address first, Metadata its id later), so a crashed recording still has the whole map
    on_new_id: Callable[[KafkaNode, int], None] | None = None
    _nodes: dict[tuple[str, int], KafkaNode] = field(default_factory=dict)

    def port_for(self, host: str, port: int, node_id: int | None = None) -> int:
        key = (host, int(port))
        node = self._nodes.get(key)
        if node is None:
            listen = self.base_port + len(self._nodes)
            ids = () if node_id is None or node_id < 0 else (int(node_id),)
            node = KafkaNode(host, int(port), listen, ids)
            self._nodes[key] = node
            if self.on_new is not None:
                self.on_new(node)
        elif node_id is not None and node_id >= 0 and node_id not in node.node_ids:
            node = dataclasses.replace(node, node_ids=tuple(sorted((*node.node_ids, node_id))))
            self._nodes[key] = node
            if self.on_new_id is not None:
                self.on_new_id(node, int(node_id))
        return node.listen_port

    @property
    def nodes(self) -> list[KafkaNode]:
        return list(self._nodes.values())


# --- which entities carry an address ------------------------------------------------------------


def _nested_types(tp: Any) -> list[type]:
    """Entity classes reachable through one field annotation (tuples, optionals)."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return [tp]
    origin = typing.get_origin(tp)
    if origin in (tuple, types.UnionType, typing.Union):
        return [c for a in typing.get_args(tp) if a is not Ellipsis for c in _nested_types(a)]
    return []


def _is_address(cls: type) -> bool:
    names = {f.name for f in dataclasses.fields(cls)}
    return "host" in names and "port" in names


@functools.cache
def _address_fields(cls: type) -> tuple[str, ...]:
    """Names of `cls`'s fields through which an address entity can be reached."""
    out = []
    for f in dataclasses.fields(cls):
        if any(_is_address(c) or _address_fields(c) for c in _nested_types(f.type)):
            out.append(f.name)
    return tuple(out)


@functools.cache
def _response_cls(api_key: int, version: int) -> type | None:
    try:
        return response_schema(api_key, version)
    except KafkaCodecError:
        return None


@functools.cache
def advertises_addresses(api_key: int, version: int) -> bool:
    """True when the response to (api_key, version) can name a broker address."""
    cls = _response_cls(api_key, version)
    return cls is not None and (_is_address(cls) or bool(_address_fields(cls)))


@functools.cache
def _advertising_apis() -> frozenset[int]:
    """API keys with a broker address in the response of at least one version kio knows."""
    return frozenset(
        key
        for key, name in api_key_map.items()
        if any(advertises_addresses(key, v) for v in schema_name_map.get(name, {}))
    )


def needs_rewrite(api_key: int, version: int) -> bool:
    """Responses the proxy must hold back, decode and re-encode (the rest stream through).

    A version kio does not know of an API that advertises addresses in other versions is held
    too: its rewrite fails loudly rather than let an unread broker address reach the client.
    """
    if api_key == API_VERSIONS or advertises_addresses(api_key, version):
        return True
    return _response_cls(api_key, version) is None and api_key in _advertising_apis()


def rewrite_addresses(entity: Any, node_map: NodeMap) -> tuple[Any, int]:
    """Return `entity` with every advertised host:port replaced by its proxy listener.

    The count is the number of addresses rewritten (0 means `entity` is returned unchanged).
    """
    cls = type(entity)
    changes: dict[str, Any] = {}
    count = 0
    if _is_address(cls) and isinstance(entity.port, int) and entity.host:
        node_id = getattr(entity, "node_id", getattr(entity, "broker_id", None))
        listen = node_map.port_for(entity.host, entity.port, node_id)
        if (entity.host, entity.port) != (node_map.listen_host, listen):
            changes["host"] = node_map.listen_host
            changes["port"] = i32(listen)
            count += 1
    for name in _address_fields(cls):
        value = getattr(entity, name)
        if isinstance(value, tuple):
            new_items = []
            field_count = 0
            for item in value:
                new_item, n = rewrite_addresses(item, node_map)
                new_items.append(new_item)
                field_count += n
            if field_count:
                changes[name] = tuple(new_items)
                count += field_count
        elif value is not None:
            new_value, n = rewrite_addresses(value, node_map)
            if n:
                changes[name] = new_value
                count += n
    if not changes:
        return entity, 0
    return dataclasses.replace(entity, **changes), count


# --- ApiVersions capping ------------------------------------------------------------------------


@functools.cache
def parseable_range(api_key: int, lo: int, hi: int) -> tuple[int, int] | None:
    """The highest contiguous version range within [lo, hi] kio can parse both ways."""
    name = api_key_map.get(api_key)
    if name is None:
        return None
    versions = schema_name_map.get(name, {})
    ok = {
        v
        for v in range(lo, hi + 1)
        if EntityType.request in versions.get(v, {}) and EntityType.response in versions.get(v, {})
    }
    if not ok:
        return None
    top = max(ok)
    bottom = top
    while bottom - 1 in ok:
        bottom -= 1
    return bottom, top


def cap_api_versions(response: Any) -> tuple[Any, int]:
    """Limit an ApiVersions response to versions kio can parse; count of entries changed."""
    kept = []
    changed = 0
    for entry in response.api_keys:
        rng = parseable_range(int(entry.api_key), int(entry.min_version), int(entry.max_version))
        if rng is None:
            changed += 1
            continue
        if rng != (entry.min_version, entry.max_version):
            changed += 1
            entry = dataclasses.replace(entry, min_version=i16(rng[0]), max_version=i16(rng[1]))
        kept.append(entry)
    if not changed:
        return response, 0
    return dataclasses.replace(response, api_keys=tuple(kept)), changed


# --- whole frames -------------------------------------------------------------------------------


class RewriteError(ValueError):
    """A response the rewriter had to change but could not decode or re-encode."""


def _decode(raw: bytes, api_key: int, version: int) -> tuple[Any, int]:
    try:
        return decode_response_any(api_key, version, raw)
    except KafkaCodecError as err:
        raise RewriteError(f"api {api_key} v{version} response not decodable: {err}") from err


def _encode(raw: bytes, api_key: int, version: int, body: Any) -> bytes:
    """Re-encode `body` under the frame's correlation id (header version chosen by the codec)."""
    try:
        return encode_response(api_key, version, response_correlation_id(raw), body)
    except KafkaCodecError as err:
        raise RewriteError(f"api {api_key} v{version} response not encodable: {err}") from err


@dataclass(slots=True)
class RewriteResult:
    raw: bytes
    addresses: int = 0
    api_versions_capped: int = 0


def rewrite_response(raw: bytes, api_key: int, version: int, node_map: NodeMap) -> RewriteResult:
    """Rewrite one whole response frame; returns the original bytes when nothing changed."""
    if api_key == API_VERSIONS:
        return _cap_api_versions_frame(raw, version)
    body, _answered = _decode(raw, api_key, version)
    body, n = rewrite_addresses(body, node_map)
    if not n:
        return RewriteResult(raw)
    return RewriteResult(_encode(raw, api_key, version, body), addresses=n)


#: ApiVersions answers by (version asked, bytes after the correlation id) -> (the capped
#: frame's bytes after its correlation id, or None when nothing changed; entries capped)
_CAPPED: dict[tuple[int, bytes], tuple[bytes | None, int]] = {}
_CAPPED_MAX = 64


def _cap_api_versions_frame(raw: bytes, version: int) -> RewriteResult:
    """An ApiVersions response capped to what kio parses. A client asks on every connection
    and a broker answers the same each time: its header is always v0 (a size, the correlation
    id, then the body), so the capped bytes after the correlation id depend on nothing else
    and are remembered (bounded: cleared when full)."""
    key = (version, raw[8:])
    hit = _CAPPED.get(key)
    if hit is None:
        # (answered in v0 when the broker refused the client's version)
        body, answered = _decode(raw, API_VERSIONS, version)
        body, n = cap_api_versions(body)
        tail = _encode(raw, API_VERSIONS, answered, body)[8:] if n else None
        if len(_CAPPED) >= _CAPPED_MAX:
            _CAPPED.clear()
        hit = _CAPPED[key] = (tail, n)
    tail, n = hit
    if tail is None:
        return RewriteResult(raw)
    return RewriteResult(
        b"".join(((len(tail) + 4).to_bytes(4, "big"), raw[4:8], tail)), api_versions_capped=n
    )


# --- one connection's response stream -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RewriteEvent:
    api_key: int
    version: int
    addresses: int
    api_versions_capped: int
    error: str | None = None


class ResponseRewriter:
    """Which responses of one connection to hold back, and their rewrite (a `StreamRewriter`).

    Pairs responses through the connection's `CorrelationTracker`, the one its decoder keeps:
    a response is held when the request it answers `needs_rewrite` (judged from the first
    `head_bytes` bytes); everything else streams through as it arrives. Raw SASL tokens are
    never held.

    A held response that cannot be rewritten is never released: it may name a real broker
    address, and a client that saw one would bypass the proxy from then on, unrecorded. The
    rewrite raises RewriteError instead (after telling `on_event`); the recorder stops.
    """

    direction = Direction.S2C
    head_bytes = RESPONSE_HEAD_BYTES

    def __init__(
        self,
        node_map: NodeMap,
        tracker: CorrelationTracker,
        on_event: Callable[[RewriteEvent], None] | None = None,
    ) -> None:
        self.node_map = node_map
        self.tracker = tracker
        self.on_event = on_event
        self.failed: str | None = None  # why a held response could not be rewritten
        self._current: tuple[int, int] | None = None

    def should_hold(self, head: bytes) -> bool:
        """Given the first `head_bytes` bytes of a response (fewer: a frame that short)."""
        self._current = None
        if len(head) < RESPONSE_HEAD_BYTES or self.tracker.raw_sasl:
            return False  # a raw SASL token (a PLAIN success is 4 bytes, size 0)
        paired = self.tracker.peek(response_correlation_id(head))
        if paired is None or not needs_rewrite(*paired):
            return False
        self._current = paired
        return True

    def rewrite(self, raw: bytes) -> bytes:
        """The rewritten frame of a response `should_hold` held."""
        assert self._current is not None
        api_key, version = self._current
        self._current = None
        try:
            result = rewrite_response(raw, api_key, version, self.node_map)
        except Exception as exc:  # RewriteError, or anything unforeseen: never forward it as is
            self.failed = (
                f"kafka api {api_key} v{version} response (correlation id "
                f"{response_correlation_id(raw)}) cannot be rewritten, not forwarded: "
                f"{type(exc).__name__}: {exc}"
            )
            if self.on_event is not None:
                self.on_event(RewriteEvent(api_key, version, 0, 0, self.failed))
            raise RewriteError(self.failed) from exc
        if self.on_event is not None and (result.addresses or result.api_versions_capped):
            self.on_event(
                RewriteEvent(api_key, version, result.addresses, result.api_versions_capped)
            )
        return result.raw
