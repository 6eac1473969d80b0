"""rr.atomic_file: the one write-then-rename the cassette writer, replay report and locks share."""

from __future__ import annotations

from pathlib import Path

import pytest

from rrlab.rr.atomic_file import write_atomic


@pytest.mark.parametrize("durable", [False, True])
def test_replaces_the_file_and_leaves_no_temporary(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "report.json"
    target.write_bytes(b"old")
    write_atomic(target, b"new", durable=durable)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_failed_write_keeps_the_old_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "cassette.json"
    target.write_bytes(b"old")

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("rrlab.rr.atomic_file.os.replace", full_disk)
    with pytest.raises(OSError):
        write_atomic(target, b"new", durable=True)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cassette.json"]
