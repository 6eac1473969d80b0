"""The cassette as the replayer sees it: recorded connections by listener, frames on demand.

Frames are read per connection through the cassette's `FrameIndex` when a live connection binds
to a recorded one (or when the end-of-run report needs them), never the whole file at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rr.cassette import CassetteReader, ConnectionInfo, Manifest
from rr.cassette.reader import FrameIndex
from rr.codecs import Direction, Proto

C2S, S2C = Direction.C2S, Direction.S2C


@dataclass(frozen=True, slots=True)
class RecFrame:
    """One recorded frame of a connection; `index` counts within that connection."""

    index: int
    seq: int
    dir: Direction
    t_us: int
    raw: bytes
    summary: dict[str, Any]


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
                RecFrame(i, f.seq, f.dir, f.t_us, f.raw, f.summary)
                for i, f in enumerate(self._index.frames_of(self.info.id))
            ]
        return self._frames

    def stream(self) -> Iterator[RecFrame]:
        """The frames read one by one and not kept (those already loaded, if they are): for a
        session that reads ahead only as far as the live connection has come."""
        if self._frames is not None:
            yield from self._frames
            return
        for i, f in enumerate(self._index.frames_of(self.info.id)):
            yield RecFrame(i, f.seq, f.dir, f.t_us, f.raw, f.summary)

    def unused_client_frames(self) -> Iterator[RecFrame]:
        """Client frames no live frame consumed, streamed (the end-of-run report reads every
        connection once; a long one is not loaded whole for it)."""
        used = self.used
        return (f for f in self.stream() if f.dir is C2S and f.index not in used)

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

    @classmethod
    def open(cls, path: str | Path) -> Recording:
        """Format, finalization and digest checked (CassetteError says what is wrong)."""
        reader = CassetteReader.open(path)
        return cls(reader.path, reader.manifest, reader.index())

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
