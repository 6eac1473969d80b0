"""rr.stale_artifacts: an earlier run's artifact is moved aside before the command, never lost,
never taken for this run's output."""

from __future__ import annotations

from pathlib import Path

from rrlab.rr.stale_artifacts import ArtifactsAside


def _aside(tmp_path: Path, text: str | None) -> ArtifactsAside:
    path = tmp_path / "out" / "a.json"
    if text is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    aside = ArtifactsAside({"out/a.json": path})
    aside.move()
    return aside


def test_an_earlier_file_is_moved_aside_and_kept_when_the_command_writes_none(tmp_path):
    aside = _aside(tmp_path, "earlier")
    assert not aside.written("out/a.json")  # the earlier file no longer counts as written
    kept = aside.settle()
    assert kept == {"out/a.json": tmp_path / "out" / "a.json.rrlab-previous"}
    assert kept["out/a.json"].read_text() == "earlier"


def test_the_aside_copy_is_dropped_once_the_command_writes_a_new_one(tmp_path):
    aside = _aside(tmp_path, "earlier")
    (tmp_path / "out" / "a.json").write_text("new")
    assert aside.written("out/a.json") and aside.settle() == {}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json"]
    assert (tmp_path / "out" / "a.json").read_text() == "new"


def test_restore_puts_it_back_when_the_command_never_ran(tmp_path):
    aside = _aside(tmp_path, "earlier")
    aside.restore()
    assert (tmp_path / "out" / "a.json").read_text() == "earlier"
    assert not (tmp_path / "out" / "a.json.rrlab-previous").exists()


def test_nothing_there_nothing_moved(tmp_path):
    aside = _aside(tmp_path, None)
    assert aside.moved == {} and aside.settle() == {}
