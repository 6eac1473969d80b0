"""A cassette that cannot be written (issue J.3): disk full, I/O error, read-only file system.

The disk is injected: the cassette writer's `os` is replaced by one whose `write` has a few
bytes of room left and then fails with ENOSPC (after writing part of the line, as a real full
disk does). The proxy's own protocols run on in-memory transports, as in test_proxy_limits.
"""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path
from typing import Any

import pytest
from test_proxy_limits import Transport, connect, publish
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs

import rrlab.rr.atomic_file as atomic_file
import rrlab.rr.cassette.writer as writer_module
from rrlab.proxy.app import ProxyApp
from rrlab.proxy.forward import Pair, Route, ServerSide, UpstreamSide
from rrlab.rr.cassette import CassetteReader, CassetteWriter, verify
from rrlab.rr.cassette.paths import CassetteDir
from rrlab.rr.cassette.writer import CassetteWriteFailed
from rrlab.rr.codecs import Direction
from rrlab.rr.record import recorder_for

ROUTE = Route("mqtt", "127.0.0.1", 11883, "127.0.0.1", 1883)


class FillingDisk:
    """`os` as the cassette writer sees it, with `room` bytes left on the disk (None: plenty)."""

    def __init__(self, room: int | None = None, code: int = errno.ENOSPC) -> None:
        self.room = room
        self.code = code

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        if self.room is None:
            return os.write(fd, data)
        if len(data) > self.room:
            if self.room:
                os.write(fd, bytes(data[: self.room]))  # a torn line, as on a real full disk
                self.room = 0
            raise OSError(self.code, os.strerror(self.code))
        self.room -= len(data)
        return os.write(fd, data)


def _full_open(path: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
    """`open` on a full disk: a file opened for writing is created, its write fails."""
    handle = open(path, mode, *args, **kw)
    if "w" not in mode:
        return handle
    handle.close()
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> FillingDisk:
    fake = FillingDisk()
    monkeypatch.setattr(writer_module, "os", fake)
    return fake


@pytest.fixture
def app(tmp_path: Path, disk: FillingDisk) -> ProxyApp:
    writer = CassetteWriter.create(tmp_path / "c")
    return ProxyApp(
        MemoryReactorClock(),
        writer,
        [ROUTE],
        allowed_upstreams=[],
        max_frame_bytes=1 << 20,
        say=lambda line: None,
    )


def test_disk_full_is_one_error_closes_every_connection_and_forwards_nothing_more(
    app: ProxyApp, disk: FillingDisk, tmp_path: Path
) -> None:
    """Before: each chunk was forwarded although its frames never reached the cassette, the
    connection died with an `Unhandled Error` traceback, and the proxy went on accepting."""
    one, c1 = connect(app)
    two, c2 = connect(app)
    first = publish(40)
    c1.dataReceived(first)
    assert one.upstream.transport.value() == first
    disk.room = 60  # less than the next frame's line
    with capturedLogs() as events:
        c1.dataReceived(publish(50))
        c2.dataReceived(publish(60))
        app.reactor.advance(1)
    assert one.upstream.transport.value() == first  # the unrecorded frame never went out
    assert two.upstream.transport.value() == b""
    errors = [e for e in events if e.get("event") == "cassette_write_failed"]
    assert len(errors) == 1, events
    text = errors[0]["message"]
    assert str(tmp_path / "c") in text and "disk full" in text and "ENOSPC" in text
    assert "rrlab verify --repair" in text
    for side in (c1, c2, one.upstream, two.upstream):
        assert side.transport.disconnecting
    assert app.exit_code == 1 and app.stopping and not app.writer.finalized
    assert app.ports == [] or all(p.disconnecting for p in app.ports)
    assert not list((tmp_path / "c").glob(".*.tmp"))

    disk.room = None  # space freed: the cassette repairs and keeps the frame that went out
    report = verify(tmp_path / "c", repair=True)
    assert report.repaired and report.frames == 1
    (frame,) = CassetteReader.open(tmp_path / "c").frames()
    assert frame.raw == first


def test_a_connection_opened_on_a_full_disk_is_closed_and_said_once(
    app: ProxyApp, disk: FillingDisk
) -> None:
    disk.room = 0  # the connection journal cannot take its line
    with capturedLogs() as events:
        pairs = [Pair(app, ROUTE) for _ in range(2)]
        for pair in pairs:
            client = ServerSide()
            client.pair = pair
            client.makeConnection(Transport())
            upstream = UpstreamSide()
            upstream.pair = pair
            upstream.makeConnection(Transport())
            assert client.transport.producerState == "paused"  # never read
            client.dataReceived(publish(20))  # (were it read all the same)
            assert upstream.transport.value() == b""
            assert client.transport.disconnecting and upstream.transport.disconnecting
    assert [e["event"] for e in events if e.get("log_level").name == "error"] == [
        "cassette_write_failed"
    ]


def test_finalize_on_a_full_disk_fails_once_and_leaves_no_temporary_file(
    app: ProxyApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: finalize raised [Errno 28] out of the shutdown, the proxy exited 0 and left
    `.cassette.json.tmp`."""
    _pair, client = connect(app)
    client.dataReceived(publish(40))

    monkeypatch.setattr(atomic_file, "open", _full_open, raising=False)  # the manifest
    with capturedLogs() as events:
        app.shutdown()
        app.shutdown()  # the reactor's own shutdown trigger comes again: nothing more
    monkeypatch.undo()
    assert [e.get("event") for e in events].count("cassette_write_failed") == 1
    assert app.exit_code == 1 and not app.writer.finalized
    assert not list((tmp_path / "c").glob(".*.tmp"))
    assert verify(tmp_path / "c", repair=True).frames == 1


def test_recorder_forwards_nothing_the_cassette_did_not_take(
    tmp_path: Path, disk: FillingDisk
) -> None:
    writer = CassetteWriter.create(tmp_path / "c")
    recorder = recorder_for(writer, writer.open_connection("mqtt", None, None), "mqtt")
    sent: list[bytes] = []
    disk.room = 0
    with pytest.raises(CassetteWriteFailed, match="disk full"):
        recorder.feed(Direction.C2S, publish(30), sent.append)
    assert recorder.feed(Direction.C2S, publish(30), sent.append) == b""
    assert recorder.feed(Direction.S2C, b"\x20\x02\x00\x00", sent.append) == b""
    assert sent == []


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.EIO, "I/O error"), (errno.EROFS, "read-only file system")],
)
def test_other_write_errors_say_their_own_words(
    tmp_path: Path, disk: FillingDisk, code: int, words: str
) -> None:
    writer = CassetteWriter.create(tmp_path / "c")
    conn = writer.open_connection("mqtt", None, None)
    disk.room, disk.code = 0, code
    with pytest.raises(CassetteWriteFailed) as caught:
        writer.write_frame(conn, "c2s", "mqtt", {"type": "PINGREQ"}, b"\xc0\x00")
    assert words in str(caught.value) and errno.errorcode[code] in str(caught.value)


def test_verify_repair_on_a_full_disk_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a traceback ([Errno 28] from writing the repaired manifest)."""
    from rrlab.cassette_cli import run_verify

    writer = CassetteWriter.create(tmp_path / "c")
    conn = writer.open_connection("mqtt", None, None)
    writer.write_frame(conn, "c2s", "mqtt", {"type": "PINGREQ"}, b"\xc0\x00")
    writer._release()  # a crash: no finalize  # noqa: SLF001

    def full_disk(self: CassetteDir, name: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(CassetteDir, "write_atomic", full_disk)  # where repair writes
    code = run_verify(argparse.Namespace(cassette=str(tmp_path / "c"), repair=True, strict=False))
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "disk full" in err and "ENOSPC" in err, err
