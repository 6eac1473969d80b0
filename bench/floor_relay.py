"""The floor of a write-before-forward recorder in Python: the proxy's relay, recording nothing but
what any such recorder must do before it forwards.

bench_proxy runs it as the path "floor" beside `rrlab proxy` and socat. It is the proxy's own
relay (`proxy.forward`: the same Twisted protocols, write-at-once transports and flow control)
with a recorder that frames each chunk with the protocol's framer and writes the frames' bytes
and one fixed line per frame with two write(2) calls, then forwards. No decoding, no summary, no
redaction, no budgets, no metrics. What `rrlab proxy` adds over this path is what its recording
costs beyond the least a recorder of whole frames, written before they are forwarded, can cost
on this machine; what this path adds over socat is Python and Twisted.

Not a product: its files are not cassettes.

    .venv/bin/python bench/floor_relay.py --proto amqp --listen PORT --upstream HOST:PORT --dir DIR
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import reactor

from rrlab.proxy.forward import ListenFactory, Pair, Route, Side
from rrlab.rr.codecs import Direction
from rrlab.rr.protocols import protocol_for
from rrlab.tcp import listen_tcp

#: the line written per frame: a frame line's shape with a constant summary
LINE = b'{"conn":1,"dir":"c2s","proto":"x","size":%d,"summary":{}}\n'


class FloorRecorder:
    """`ConnectionRecorder.feed`'s contract reduced to framing and two writes before forwarding."""

    def __init__(self, proto: str, raw_fd: int, lines_fd: int) -> None:
        protocol = protocol_for(proto)
        self.framers = {d: protocol.framer(d) for d in Direction}
        self.raw_fd = raw_fd
        self.lines_fd = lines_fd

    def feed(self, direction: Direction, data: bytes, forward: Callable[[bytes], None]) -> None:
        raws = self.framers[direction].feed_raws(data)
        if raws:
            os.write(self.raw_fd, b"".join(raws))
            os.write(self.lines_fd, b"".join([LINE % len(raw) for raw in raws]))
        forward(data)

    def close(self, reason: str) -> str:
        return reason


class FloorOwner:
    """The `PairOwner` of the floor relay: every pair gets a `FloorRecorder`, nothing is
    limited or counted."""

    def __init__(self, proto: str, raw_fd: int, lines_fd: int) -> None:
        self.reactor = reactor
        self.proto = proto
        self.raw_fd = raw_fd
        self.lines_fd = lines_fd

    def pair_connected(self, pair: Pair) -> Any:
        return FloorRecorder(self.proto, self.raw_fd, self.lines_fd)

    def after_read(self, pair: Pair, side: Side) -> None:
        pass

    def recording_failed(self, pair: Pair, exc: Exception) -> None:
        pair.abort(str(exc))

    def upstream_failed(self, pair: Pair, message: str) -> None:
        print(f"floor relay: upstream failed: {message}", file=sys.stderr)

    def pair_closed(self, pair: Pair, reason: str | None) -> None:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proto", required=True, choices=["kafka", "amqp", "mqtt"])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="HOST:PORT")
    ap.add_argument("--dir", type=Path, required=True, help="where its two files go")
    args = ap.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    args.dir.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    raw_fd = os.open(args.dir / f"floor-{args.proto}.raw", flags, 0o600)
    lines_fd = os.open(args.dir / f"floor-{args.proto}.jsonl", flags, 0o600)
    route = Route(args.proto, "127.0.0.1", args.listen, host, int(port))
    listen_tcp(reactor, args.listen, ListenFactory(FloorOwner(args.proto, raw_fd, lines_fd), route),
               "127.0.0.1")  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    print(f"floor relay listening 127.0.0.1:{args.listen} -> {args.upstream}", flush=True)
    reactor.run(installSignalHandlers=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
