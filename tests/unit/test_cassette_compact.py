"""Compacted cassettes (format 4): stored gzipped at finalize over a threshold, read like plain
ones, migrated both ways byte for byte, damage and gzip bombs refused with bounded memory."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest

from rrlab.rr.cassette import (
    CassetteReader,
    CassetteWriter,
    DigestMismatch,
    UnsupportedFormat,
    verify,
)
from rrlab.rr.cassette.compact import GZIP_LEVEL, should_compact
from rrlab.rr.cassette.errors import CassetteError, CompactedDamaged
from rrlab.rr.cassette.format import (
    FORMAT,
    FORMAT_V1,
    FORMAT_V2,
    FORMAT_V4,
    GZ_NAMES,
    Manifest,
)
from rrlab.rr.cassette.migrate import migrate
from rrlab.rr.policy import PolicyError, get_profile, parse_compact_over

PLAIN = ("cassette.json", "frames.jsonl", "frames.raw", "frames.timing", ".gitattributes")


def record(path: Path, frames: int = 300, compact_over: int | None = 0) -> Path:
    """An AMQP-like cassette of `frames` small frames on two connections."""
    ticks = iter(range(0, 10**12, 1000))
    with CassetteWriter.create(
        path, compact_over=compact_over, clock_ns=lambda: next(ticks)
    ) as writer:
        writer.add_route("amqp", "127.0.0.1:15672", "127.0.0.1:5672")
        a = writer.open_connection("amqp", "127.0.0.1:15672", "127.0.0.1:5672")
        b = writer.open_connection("amqp", "127.0.0.1:15672", "127.0.0.1:5672")
        for i in range(frames):
            conn = a if i % 3 else b
            direction = "c2s" if i % 2 else "s2c"
            summary = {"method": "Basic.Ack", "delivery_tag": i, "n": i % 7}
            writer.write_frame(conn, direction, "amqp", summary, b"\x01\x00\x01" + i.to_bytes(8))
        writer.close_connection(a)
        writer.close_connection(b)
    return path


def files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def test_threshold_decides_and_never_or_always_are_settings():
    assert not should_compact(10**9, None)
    assert should_compact(0, 0)
    assert should_compact(1025, 1024) and not should_compact(1024, 1024)
    assert parse_compact_over("never") is None
    assert parse_compact_over("always") == 0
    assert parse_compact_over("2048") == 2048
    with pytest.raises(PolicyError, match="byte count"):
        parse_compact_over("1M")
    assert get_profile("os_record").compact_over_bytes == 1024 * 1024


def test_a_small_cassette_stays_plain_format_3(tmp_path):
    path = record(tmp_path / "c", compact_over=1 << 20)
    assert json.loads((path / "cassette.json").read_bytes())["format"] == FORMAT
    assert set(files(path)) == set(PLAIN)


def test_over_the_threshold_it_is_stored_compacted_and_reads_the_same(tmp_path):
    plain = record(tmp_path / "plain", compact_over=None)
    path = record(tmp_path / "c", compact_over=1000)
    manifest = json.loads((path / "cassette.json").read_bytes())
    assert manifest["format"] == FORMAT_V4
    assert set(files(path)) == {"cassette.json", ".gitattributes", *GZ_NAMES.values()}
    attributes = (path / ".gitattributes").read_bytes()
    assert all(f"{gz} binary".encode() in attributes for gz in GZ_NAMES.values())
    entry = manifest["frames_file"]
    stored = (path / "frames.jsonl.gz").read_bytes()
    assert entry["name"] == "frames.jsonl.gz"
    assert entry["bytes"] == len(stored) and entry["sha256"] == hashlib.sha256(stored).hexdigest()
    assert entry["plain"]["bytes"] == (plain / "frames.jsonl").stat().st_size
    # deterministic gzip: no name, mtime 0, the fixed level
    assert stored[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + stored[8:10]
    assert zlib.decompress(stored, 31) == (plain / "frames.jsonl").read_bytes()
    with CassetteReader.open(plain) as a, CassetteReader.open(path) as b:
        assert list(a.frames()) == list(b.frames())
        assert list(a.frames_for(2)) == list(b.frames_for(2))
        assert a.index().read(1, 5) == b.index().read(1, 5)
        assert list(a.index().parts_of(1)) == list(b.index().parts_of(1))
    report = verify(path)
    assert report.frames == 300 and not report.repaired
    assert "stored compacted (rrlab.cassette/4" in report.summary()
    assert "compacted" not in verify(plain).summary()


def test_diff_of_a_plain_and_a_compacted_recording_finds_them_equal(tmp_path):
    plain = record(tmp_path / "plain", compact_over=None)
    path = record(tmp_path / "c", compact_over=0)
    done = subprocess.run(
        [sys.executable, "-m", "rrlab", "diff", str(plain), str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "300 frames compare equal" in done.stdout


def test_compaction_is_deterministic(tmp_path):
    a = record(tmp_path / "a", compact_over=0)
    b = record(tmp_path / "b", compact_over=0)
    assert files(a) == files(b)
    assert GZIP_LEVEL == 6


def test_migrate_compact_then_expand_gives_back_the_plain_files_byte_for_byte(tmp_path):
    path = record(tmp_path / "c", compact_over=None)
    before = files(path)
    report = migrate(path, "compact")
    assert (report.found, report.result) == (FORMAT, FORMAT_V4)
    assert "compacted" in report.summary()
    assert json.loads((path / "cassette.json").read_bytes())["format"] == FORMAT_V4
    assert not (path / "frames.jsonl").exists()
    assert migrate(path, "compact").summary().endswith("unchanged")
    assert migrate(path).result == FORMAT_V4  # plain migrate keeps the storage
    report = migrate(path, "plain")
    assert (report.found, report.result) == (FORMAT_V4, FORMAT)
    assert files(path) == before


def test_cli_migrate_compact_and_expand(tmp_path):
    path = record(tmp_path / "c", compact_over=None)
    before = files(path)
    for flag, fmt in (("--compact", FORMAT_V4), ("--expand", FORMAT)):
        done = subprocess.run(
            [sys.executable, "-m", "rrlab", "migrate", flag, str(path)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads((path / "cassette.json").read_bytes())["format"] == fmt
    assert files(path) == before


def test_inspect_prints_the_same_lines_for_a_compacted_cassette(tmp_path):
    plain = record(tmp_path / "plain", compact_over=None)
    path = record(tmp_path / "c", compact_over=0)

    def inspect(p: Path) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "rrlab", "inspect", str(p)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.replace(str(p), "CASSETTE")

    shown, compacted = inspect(plain), inspect(path)
    assert compacted.startswith(f"cassette {FORMAT_V4} ")  # the header says how it is stored
    assert compacted.replace(FORMAT_V4, FORMAT, 1) == shown  # every frame line the same


@pytest.mark.parametrize("name", sorted(GZ_NAMES.values()))
def test_a_tampered_gz_is_refused_by_its_digest_and_repair_says_what_to_do(tmp_path, name):
    path = record(tmp_path / "c")
    data = bytearray((path / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / name).write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match=name):
        CassetteReader.open(path)
    with pytest.raises(DigestMismatch, match="refusing to repair"):
        verify(path, repair=True)


def _restamp(path: Path, name: str) -> None:
    """Make the manifest agree with the (edited) stored file, as a hostile author would."""
    doc = json.loads((path / "cassette.json").read_bytes())
    key = {
        "frames.jsonl.gz": "frames_file",
        "frames.raw.gz": "raw_file",
        "frames.timing.gz": "timing_file",
    }
    data = (path / name).read_bytes()
    doc[key[name]]["bytes"] = len(data)
    doc[key[name]]["sha256"] = hashlib.sha256(data).hexdigest()
    (path / "cassette.json").write_bytes(Manifest.from_dict(doc, path=path).to_json())


@pytest.mark.parametrize("name", sorted(GZ_NAMES.values()))
def test_a_truncated_gz_is_corruption_with_advice_not_a_crash(tmp_path, name):
    path = record(tmp_path / "c")
    data = (path / name).read_bytes()
    (path / name).write_bytes(data[: len(data) - 12])
    _restamp(path, name)  # past the digest: the gzip stream itself must catch it
    with pytest.raises(CompactedDamaged, match="truncated|ends early") as caught:
        CassetteReader.open(path)
    assert "record it again" in str(caught.value)
    with pytest.raises(CompactedDamaged, match="verify --repair` cannot mend it"):
        verify(path, repair=True)


def test_a_missing_gz_says_so(tmp_path):
    path = record(tmp_path / "c")
    (path / "frames.raw.gz").unlink()
    with pytest.raises(CompactedDamaged, match="frames.raw.gz is damaged: it is missing"):
        verify(path)


def _bomb(path: Path, name: str, size: int) -> None:
    """Replace stored file `name` by the gzip of `size` zero bytes, digests restamped."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    with open(path / name, "wb") as out:
        for _ in range(size >> 20):
            out.write(deflater.compress(block))
        out.write(deflater.flush())
    _restamp(path, name)


def test_a_gzip_bomb_stops_at_the_declared_size_in_bounded_memory(tmp_path):
    path = record(tmp_path / "c")
    _bomb(path, "frames.raw.gz", 64 << 20)  # 64 MiB of zeros, about 64 KB stored
    assert (path / "frames.raw.gz").stat().st_size < 128 << 10
    tracemalloc.start()
    try:
        with pytest.raises(CompactedDamaged, match="decompresses past the"):
            CassetteReader.open(path)
        with pytest.raises(CompactedDamaged, match="decompresses past the"):
            verify(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_declared_sizes_over_the_cassette_budget_are_refused_before_decompressing(tmp_path):
    path = record(tmp_path / "c")
    doc = json.loads((path / "cassette.json").read_bytes())
    doc["raw_file"]["plain"]["bytes"] = 1 << 40
    (path / "cassette.json").write_bytes(Manifest.from_dict(doc, path=path).to_json())
    with pytest.raises(CassetteError, match="over the cassette budget"):
        CassetteReader.open(path)


def test_timing_declared_longer_than_its_frames_take_is_refused(tmp_path):
    path = record(tmp_path / "c")
    doc = json.loads((path / "cassette.json").read_bytes())
    doc["timing_file"]["plain"]["bytes"] = 10**9
    (path / "cassette.json").write_bytes(Manifest.from_dict(doc, path=path).to_json())
    with pytest.raises(CassetteError, match="more than 300 frames' times take"):
        CassetteReader.open(path)


def test_an_older_rrlab_refuses_format_4_with_its_newer_format_error(tmp_path, monkeypatch):
    from rrlab.rr.cassette import format as fmt

    path = record(tmp_path / "c")
    monkeypatch.setattr(fmt, "READABLE_FORMATS", (FORMAT, FORMAT_V2, FORMAT_V1))  # as before 4
    with pytest.raises(UnsupportedFormat, match="a newer rrlab wrote it"):
        CassetteReader.open(path)


def test_a_stored_name_other_than_the_gz_is_a_malformed_manifest(tmp_path):
    path = record(tmp_path / "c")
    doc = json.loads((path / "cassette.json").read_bytes())
    doc["frames_file"]["name"] = "../frames.jsonl.gz"
    (path / "cassette.json").write_bytes(json.dumps(doc).encode())
    with pytest.raises(CassetteError, match="format 4 stores frames.jsonl as frames.jsonl.gz"):
        CassetteReader.open(path)


def test_rewrite_replaces_a_compacted_cassette(tmp_path):
    path = record(tmp_path / "c", compact_over=0)
    ticks = iter(range(0, 10**12, 1000))
    with CassetteWriter.create(
        path, mode="rewrite", compact_over=None, clock_ns=lambda: next(ticks)
    ) as writer:
        writer.open_connection("amqp", None, None)
    assert set(files(path)) == set(PLAIN)
    assert verify(path).frames == 0


def test_compaction_that_fails_leaves_the_plain_cassette_finalized(tmp_path, monkeypatch):
    from rrlab.rr.cassette import compact as compact_module

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(compact_module, "_deflate", full)
    ticks = iter(range(0, 10**12, 1000))
    writer = CassetteWriter.create(tmp_path / "c", compact_over=0, clock_ns=lambda: next(ticks))
    conn = writer.open_connection("amqp", None, None)
    writer.write_frame(conn, "c2s", "amqp", {"m": 1}, b"abc")
    manifest = writer.finalize()
    assert manifest.format == FORMAT
    assert isinstance(writer.compact_failed, OSError)
    assert verify(tmp_path / "c").frames == 1
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "c").iterdir())
    assert os.listdir(tmp_path / "c")


def test_frames_far_larger_than_their_gzip_read_back_whole(tmp_path):
    """Each 1 MiB of zeros takes a few hundred bytes of gzip: output is taken a chunk at a time
    from one input chunk, and what zlib holds when a chunk fills up is read too."""
    ticks = iter(range(0, 10**12, 1000))
    path = tmp_path / "c"
    with CassetteWriter.create(path, compact_over=0, clock_ns=lambda: next(ticks)) as writer:
        conn = writer.open_connection("kafka", None, None)
        for size in (1 << 20, (3 << 20) + 1, 1, 2 << 20):
            writer.write_frame(conn, "s2c", "kafka", {"api": "Fetch"}, bytes(size))
    assert (path / "frames.raw.gz").stat().st_size < 64 << 10
    with CassetteReader.open(path) as reader:
        assert [len(f.raw) for f in reader.frames()] == [1 << 20, (3 << 20) + 1, 1, 2 << 20]
    assert verify(path).raw_bytes == (6 << 20) + 2


def test_a_cassette_over_the_budget_a_default_rrlab_reads_stays_plain(tmp_path, monkeypatch):
    """Compacted, a recording bigger than a default reader's cassette budget could never be
    replayed (check_declared refuses it before decompressing); plain, it is read at any size."""
    from rrlab.rr.cassette import compact as compact_module
    from rrlab.rr.policy import Budgets

    monkeypatch.setattr(compact_module, "Budgets", lambda: Budgets(max_cassette_bytes=4096))
    ticks = iter(range(0, 10**12, 1000))
    writer = CassetteWriter.create(tmp_path / "c", compact_over=0, clock_ns=lambda: next(ticks))
    conn = writer.open_connection("amqp", None, None)
    for i in range(100):
        writer.write_frame(conn, "c2s", "amqp", {"n": i}, bytes(64))
    manifest = writer.finalize()
    assert manifest.format == FORMAT
    assert isinstance(writer.compact_failed, CassetteError)
    assert "it stays plain" in str(writer.compact_failed)
    assert set(files(tmp_path / "c")) == set(PLAIN)
    assert verify(tmp_path / "c").frames == 100
    with pytest.raises(CassetteError, match="could not be replayed"):
        migrate(tmp_path / "c", storage="compact")
    assert set(files(tmp_path / "c")) == set(PLAIN)
