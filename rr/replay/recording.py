"""The cassette as the replayer sees it: recorded connections by listener, frames on demand.

Opening checks the whole cassette once (rr.cassette.reader: a bad one is one CassetteError
before anything is served) and builds its `FrameIndex`, each client frame classified by
`classify` (`rr.protocols.client_kind`: the protocols' liveness and closing predicates).
Frames are read per connection through the index when a live connection binds to a recorded
one, never the whole file at once. The end-of-run report counts unused client frames from the
index alone: each client frame's `ClientKind` (its label, and whether it is exempt from
"unused") is decided at open, in the pass that parses every line anyway, so stopping decodes
only the few frames it lists.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from rrlab.rr.cassette import (
    ArtifactMissing,
    CassetteReader,
    ConnectionInfo,
    Manifest,
    read_artifact,
)
from rrlab.rr.cassette.format import parse_summary
from rrlab.rr.cassette.reader import Classifier, FrameIndex
from rrlab.rr.codecs import Direction, Proto

C2S, S2C = Direction.C2S, Direction.S2C


class Role(enum.StrEnum):
    """What a recorded client frame stands for, should the live command never send it (each
    protocol's `roles.client_role` decides; `WireProtocol.role`)."""

    #: what the command did (publish, produce, ack, subscribe, declare): never sent is a miss
    #: in every profile
    BEHAVIOUR = "behaviour"
    #: sent on a clock (heartbeats, pings, polls, metadata refreshes): may stay unused
    LIVENESS = "liveness"
    #: a graceful teardown: how a client closes is not behaviour, may stay unused
    CLOSING = "closing"
    #: the rest (handshakes, channel setup, QoS): unused fails only a strict profile
    SETUP = "setup"


class ClientKind(NamedTuple):
    """What the end-of-run report needs to know of a recorded client frame."""

    label: str
    role: Role

    @property
    def exempt(self) -> bool:
        """Never reported unused, whatever the live client did (liveness, closing)."""
        return self.role is Role.LIVENESS or self.role is Role.CLOSING

    @property
    def behaviour(self) -> bool:
        """Never sent live: a miss in every profile."""
        return self.role is Role.BEHAVIOUR


class RecFrame:
    """One recorded frame of a connection; `index` counts within that connection. Its summary
    may arrive as the line's JSON text (`read_frame_parts`) and is parsed when first read: a
    replay sends most server frames without ever looking at their summaries."""

    __slots__ = ("index", "seq", "dir", "t_us", "raw", "_summary")

    def __init__(
        self,
        index: int,
        seq: int,
        dir: Direction,  # noqa: A002 (the cassette's field name)
        t_us: int,
        raw: bytes,
        summary: dict[str, Any] | bytes,
    ) -> None:
        self.index = index
        self.seq = seq
        self.dir = dir
        self.t_us = t_us
        self.raw = raw
        self._summary = summary

    @property
    def summary(self) -> dict[str, Any]:
        summary = self._summary
        if isinstance(summary, bytes):
            summary = self._summary = parse_summary(summary)
        return summary

    def _key(self) -> tuple[Any, ...]:
        return (self.index, self.seq, self.dir, self.t_us, self.raw, self.summary)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecFrame) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  (a summary is a dict)

    def __repr__(self) -> str:
        return (
            f"RecFrame(index={self.index}, seq={self.seq}, dir={self.dir!s}, t_us={self.t_us}, "
            f"raw={self.raw!r:.60}, summary={self.summary!r:.120})"
        )


class RecordedConn:
    """One recorded connection: its manifest entry, its frames (loaded once, on first use), and
    which of its client frames a live connection has consumed."""

    def __init__(self, info: ConnectionInfo, index: FrameIndex) -> None:
        self.info = info
        self._index = index
        self._frames: list[RecFrame] | None = None
        self.claimed_by: int | None = None  # live connection id
        self.used: set[int] = set()  # indexes of consumed client frames

    @property
    def id(self) -> int:
        return self.info.id

    @property
    def proto(self) -> Proto:
        return self.info.proto

    @property
    def listen_port(self) -> int | None:
        return port_of(self.info.listen)

    @property
    def frames(self) -> list[RecFrame]:
        if self._frames is None:
            self._frames = [
                RecFrame(i, seq, direction, t_us, raw, summary)
                for i, (seq, direction, t_us, raw, summary) in enumerate(
                    self._index.parts_of(self.info.id)
                )
            ]
        return self._frames

    def stream(self) -> Iterator[RecFrame]:
        """The frames read one by one and not kept (those already loaded, if they are): for a
        session that reads ahead only as far as the live connection has come."""
        if self._frames is not None:
            yield from self._frames
            return
        for i, (seq, direction, t_us, raw, summary) in enumerate(
            self._index.parts_of(self.info.id)
        ):
            yield RecFrame(i, seq, direction, t_us, raw, summary)

    def unused_kinds(self) -> Counter[Any]:
        """How many client frames of each kind no live frame consumed, from the index alone."""
        left = Counter(self._index.client_kinds(self.info.id))
        kind = self._index.kind
        for index in self.used:
            seen = kind(self.info.id, index)
            if seen is not None:
                left[seen] -= 1
        return +left

    def unused_client_frames(
        self, skip: Callable[[Any], bool] = lambda _kind: False
    ) -> Iterator[tuple[Any, RecFrame]]:
        """(kind, frame) of the client frames no live frame consumed and whose kind `skip` does
        not reject, in order; the index says which, and only the frames taken are read."""
        used, conn = self.used, self.info.id
        for index, kind in self._index.client_positions(conn):
            if index not in used and not skip(kind):
                f = self._index.read(conn, index)
                yield kind, RecFrame(index, f.seq, f.dir, f.t_us, f.raw, f.summary)

    def __repr__(self) -> str:
        return f"<recorded conn {self.id} {self.proto} {self.info.listen}>"


def port_of(address: str | None) -> int | None:
    if not address or ":" not in address:
        return None
    try:
        return int(address.rsplit(":", 1)[1])
    except ValueError:
        return None


class Recording:
    """A finalized, verified cassette opened for replay."""

    def __init__(self, path: Path, manifest: Manifest, index: FrameIndex) -> None:
        self.path = path
        self.manifest = manifest
        self.index = index
        self.conns = [RecordedConn(info, index) for info in manifest.connections]
        self._by_id = {c.id: c for c in self.conns}
        self.reader: CassetteReader | None = None

    @classmethod
    def open(cls, path: str | Path, *, classify: Classifier | None) -> Recording:
        """The whole cassette checked (CassetteError says what is wrong), its index built with
        each client frame's kind (`classify`: `rr.protocols.client_kind` to serve it, None when
        only its artifacts are read)."""
        reader = CassetteReader.open(path, classify=classify)
        recording = cls(reader.path, reader.manifest, reader.index())
        recording.reader = reader
        return recording

    def artifact(self, name: str) -> bytes:
        """Recorded artifact `name`, read inside the cassette and checked against the manifest's
        digest now (CassetteError otherwise): what a replay compares the command's file with."""
        if self.reader is not None:
            return self.reader.artifact(name)
        expected = self.manifest.artifacts.get(name)
        if expected is None:
            raise ArtifactMissing(self.path, name)
        return read_artifact(self.path, name, expected)

    def conn(self, conn_id: int) -> RecordedConn:
        return self._by_id[conn_id]

    def listeners(self) -> list[tuple[Proto, int]]:
        """Every (protocol, port) the recording was served on: routes, then Kafka nodes."""
        seen: dict[int, Proto] = {}
        for route in self.manifest.routes:
            port = port_of(route.get("listen"))
            if port is not None:
                seen.setdefault(port, Proto(route["proto"]))
        for node in self.manifest.kafka_nodes.values():
            port = node.get("listen_port")
            if isinstance(port, int):
                seen.setdefault(port, Proto.KAFKA)
        for conn in self.conns:  # a connection on a port the routes do not name (old cassettes)
            port = conn.listen_port
            if port is not None:
                seen.setdefault(port, conn.proto)
        return [(proto, port) for port, proto in seen.items()]

    def candidates(self, proto: Proto, port: int | None) -> list[RecordedConn]:
        """Unclaimed recorded connections of `proto` on `port` (None: any port), recorded order."""
        return [
            c
            for c in sorted(self.conns, key=lambda c: (c.info.opened_at_seq, c.id))
            if c.proto is proto and c.claimed_by is None and (port is None or c.listen_port == port)
        ]

    def claim(
        self,
        proto: Proto,
        port: int | None,
        live_id: int,
        fits: Callable[[RecordedConn], bool] | None = None,
    ) -> RecordedConn | None:
        """Bind the first unclaimed connection (recorded order) on `port` that `fits`; if none
        on that port fits, any port of the same protocol. None when nothing is left."""
        for scope in (port, None):
            for rc in self.candidates(proto, scope):
                if fits is None or fits(rc):
                    rc.claimed_by = live_id
                    return rc
        return None
