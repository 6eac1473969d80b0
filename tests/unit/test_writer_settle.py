"""`write_frames(..., settle=False)` and `settle()`: the writes and the budgets' counts happen at
once, the digests and the per-connection and per-direction counts when settled (the recorder
settles after the forward). Whatever reads them settles first; a digest covers exactly what
reached its file, also after a write error."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

import rrlab.rr.cassette.writer as writer_module
from rrlab.rr.cassette import CassetteReader, CassetteWriter
from rrlab.rr.cassette.writer import CassetteWriteFailed
from rrlab.rr.codecs import Direction
from rrlab.rr.policy import BudgetExceeded, Budgets
from rrlab.rr.record import RecordingBroken, recorder_for

C2S, S2C = Direction.C2S, Direction.S2C
#: MQTT PINGREQ and PINGRESP: whole frames of two bytes
PING, PONG = b"\xc0\x00", b"\xd0\x00"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def frames(*raws: bytes) -> list[tuple[dict[str, Any], bytes, bool]]:
    return [({"n": i}, raw, False) for i, raw in enumerate(raws)]


def new_writer(tmp_path: Path, **kw: Any) -> tuple[CassetteWriter, int]:
    writer = CassetteWriter.create(tmp_path / "c", **kw)
    return writer, writer.open_connection("mqtt", "127.0.0.1:1", "127.0.0.1:2")


def assert_manifest_is_the_files(writer: CassetteWriter, count: int, c2s: int, s2c: int) -> None:
    m = writer.build_manifest(finalized=False)
    assert m.frames_sha256 == sha(writer.path / "frames.jsonl")
    assert m.raw_sha256 == sha(writer.path / "frames.raw")
    assert m.frame_count == count and m.frame_counts == {"c2s": c2s, "s2c": s2c}
    (conn,) = m.connections
    assert conn.frames == {"c2s": c2s, "s2c": s2c}
    raw = (writer.path / "frames.raw").stat().st_size
    assert sum(conn.bytes.values()) == raw == m.raw_bytes


def test_unsettled_frames_are_on_disk_and_counted_for_the_budgets(tmp_path: Path) -> None:
    writer, conn = new_writer(tmp_path, budgets=Budgets(max_frames=3))
    assert writer.write_frames(conn, C2S, "mqtt", frames(b"ab", b"cd"), settle=False) == 2
    assert (writer.path / "frames.raw").read_bytes() == b"abcd"
    assert (writer.path / "frames.jsonl").read_bytes().count(b"\n") == 2
    assert writer.frame_count == 2  # the seq the next frame gets, and the frame budget
    with pytest.raises(BudgetExceeded):  # the budget saw the unsettled frames
        writer.write_frames(conn, S2C, "mqtt", frames(b"e", b"f"), settle=False)
    # the budget stop rewrote the manifest: it settled the frame written before the stop
    assert_manifest_is_the_files(writer, 3, 2, 1)


@pytest.mark.parametrize("settle_first", [True, False])
def test_a_manifest_settles_what_was_written(tmp_path: Path, settle_first: bool) -> None:
    writer, conn = new_writer(tmp_path)
    writer.write_frames(conn, C2S, "mqtt", frames(b"ab", b"cd"), settle=False)
    writer.write_frames(conn, S2C, "mqtt", frames(b"xyz"), settle=False)  # settles the first
    if settle_first:
        writer.settle()
        writer.settle()  # nothing left: counted once
    assert_manifest_is_the_files(writer, 3, 2, 1)
    writer.close_connection(conn, "done")
    m = writer.finalize()
    assert m.frames_sha256 == sha(writer.path / "frames.jsonl") and m.frame_count == 3
    assert [f.raw for f in CassetteReader.open(writer.path).frames()] == [b"ab", b"cd", b"xyz"]


class FailingWrites:
    """`os` as the cassette writer sees it, whose write(2) to file `name` fails (EIO)."""

    def __init__(self, writer: CassetteWriter, name: str) -> None:
        self.fd = {"frames.raw": writer._raw, "frames.jsonl": writer._fd}[name]

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        if fd == self.fd:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return os.write(fd, data)


@pytest.mark.parametrize("settle", [True, False])
@pytest.mark.parametrize("failing", ["frames.raw", "frames.jsonl"])
def test_after_a_write_error_the_digests_are_of_what_reached_each_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settle: bool, failing: str
) -> None:
    """A batch whose lines failed is not counted and its lines not digested; its sidecar bytes,
    which reached frames.raw, are (as when everything was settled at once). The batch before
    it, written unsettled, is settled whole."""
    writer, conn = new_writer(tmp_path)
    writer.write_frames(conn, C2S, "mqtt", frames(b"ab"), settle=settle)
    monkeypatch.setattr(writer_module, "os", FailingWrites(writer, failing))
    with pytest.raises(CassetteWriteFailed):
        writer.write_frames(conn, S2C, "mqtt", frames(b"xyz"), settle=settle)
    writer.settle()
    assert writer.failed is not None and writer.frame_count == 1
    expected_raw = b"abxyz" if failing == "frames.jsonl" else b"ab"
    assert (writer.path / "frames.raw").read_bytes() == expected_raw
    m = writer.build_manifest(finalized=False)
    assert m.frames_sha256 == sha(writer.path / "frames.jsonl")
    assert m.raw_sha256 == hashlib.sha256(expected_raw).hexdigest()
    assert m.frame_count == 1 and m.frame_counts == {"c2s": 1, "s2c": 0}
    assert m.connections[0].frames == {"c2s": 1, "s2c": 0}
    assert m.connections[0].bytes == {"c2s": 2, "s2c": 0}


def test_the_recorder_settles_after_the_forward(tmp_path: Path) -> None:
    writer, conn = new_writer(tmp_path)
    rec = recorder_for(writer, conn, "mqtt")
    order: list[str] = []
    real_settle = writer.settle

    def settle() -> None:
        if writer._pending is not None:
            order.append("settle")
        real_settle()

    writer.settle = settle  # type: ignore[method-assign]

    def forward(out: bytes) -> None:
        assert (writer.path / "frames.raw").read_bytes().endswith(out)  # written before
        order.append("forward")

    rec.feed(C2S, PING + PING, forward)
    assert order == ["forward", "settle"]
    order.clear()
    rec.feed(S2C, PONG[:1], lambda out: order.append("forward"))  # no whole frame: no settle
    assert order == ["forward"]
    assert_manifest_is_the_files(writer, 2, 2, 0)


def test_the_recorder_settles_when_the_forward_raises(tmp_path: Path) -> None:
    writer, conn = new_writer(tmp_path)
    rec = recorder_for(writer, conn, "mqtt")

    def forward(out: bytes) -> None:
        raise ConnectionError("peer gone")

    with pytest.raises(ConnectionError):
        rec.feed(C2S, PING, forward)
    assert writer._pending is None
    assert_manifest_is_the_files(writer, 1, 1, 0)


def test_the_recorder_settles_the_frames_before_a_framing_error(tmp_path: Path) -> None:
    writer, conn = new_writer(tmp_path)
    rec = recorder_for(writer, conn, "mqtt")
    with pytest.raises(RecordingBroken):
        rec.feed(C2S, PING + b"\x00\x00", lambda out: None)  # packet type 0 is reserved
    assert writer._pending is None and rec.frames[C2S] == 1
    assert_manifest_is_the_files(writer, 1, 1, 0)
